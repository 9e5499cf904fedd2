package stacktest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/wikimedia/conveyor/internal/dev/devstack"
)

// Span is one span of a trace the stack's Jaeger holds.
type Span struct {
	SpanID    string
	Operation string
	// Service is the process's service.name (conveyor-worker, conveyor-gerrit).
	Service string
	// Parent is the span this one is a child of, "" for a root.
	Parent string
	Tags   map[string]any
}

// Trace returns the spans of trace id (32 hex digits) that the stack's Jaeger
// has received so far; none (and no error) while it has none.
func Trace(ctx context.Context, id string) ([]Span, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, devstack.JaegerURL+"/api/traces/"+url.PathEscape(id), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the stack's Jaeger (make up): %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	var body struct {
		Data []struct {
			Spans []struct {
				SpanID        string `json:"spanID"`
				OperationName string `json:"operationName"`
				ProcessID     string `json:"processID"`
				References    []struct {
					RefType string `json:"refType"`
					SpanID  string `json:"spanID"`
				} `json:"references"`
				Tags []struct {
					Key   string `json:"key"`
					Value any    `json:"value"`
				} `json:"tags"`
			} `json:"spans"`
			Processes map[string]struct {
				ServiceName string `json:"serviceName"`
			} `json:"processes"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("GET /api/traces/%s: %s: %w", id, resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/traces/%s: %s", id, resp.Status)
	}
	var out []Span
	for _, tr := range body.Data {
		for _, s := range tr.Spans {
			sp := Span{SpanID: s.SpanID, Operation: s.OperationName, Service: tr.Processes[s.ProcessID].ServiceName, Tags: map[string]any{}}
			for _, r := range s.References {
				if r.RefType == "CHILD_OF" {
					sp.Parent = r.SpanID
				}
			}
			for _, tag := range s.Tags {
				sp.Tags[tag.Key] = tag.Value
			}
			out = append(out, sp)
		}
	}
	return out, nil
}
