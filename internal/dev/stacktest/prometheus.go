package stacktest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/wikimedia/conveyor/internal/dev/devstack"
)

// Scrape makes the stack's Prometheus scrape http://addr/metrics, labelled
// instance=name, until the test ends.
func Scrape(t testing.TB, name, addr string) {
	t.Helper()
	dir := filepath.Join(Config(t).StateDir, devstack.PrometheusTargetsDir)
	b, err := json.Marshal([]map[string]any{{"targets": []string{addr}, "labels": map[string]string{"instance": name}}})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, name+".json")
	tmp := f + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatalf("the stack's Prometheus targets (make up makes %s): %v", dir, err)
	}
	if err := os.Rename(tmp, f); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(f) })
}

// PromQuery runs an instant query on the stack's Prometheus and returns its
// result's series: each one's labels and value.
func PromQuery(ctx context.Context, query string) ([]PromSample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, devstack.PrometheusURL+"/api/v1/query?query="+url.QueryEscape(query), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the stack's Prometheus (make up): %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("query %q: %s: %w", query, resp.Status, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", query, body.Error)
	}
	var out []PromSample
	for _, r := range body.Data.Result {
		v, _ := r.Value[1].(string)
		out = append(out, PromSample{Labels: r.Metric, Value: v})
	}
	return out, nil
}

// PromSample is one series of a query's result.
type PromSample struct {
	Labels map[string]string
	Value  string
}
