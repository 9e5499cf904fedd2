package promote

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"go.temporal.io/sdk/temporal"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/charts"
)

const testImage = "localhost:5000/hello@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestReleaseValuesOfEachTrack(t *testing.T) {
	env := "containerPort: 8080\nimage: {pullPolicy: Always, tag: old}\nservice: {port: 8080}\n"
	stable, err := releaseValues(env, "hello", "stable", testImage, 3)
	if err != nil {
		t.Fatal(err)
	}
	img := asMap(stable["image"])
	if img["repository"] != "localhost:5000/hello" || !strings.HasPrefix(img["digest"].(string), "sha256:") || img["pullPolicy"] != "Always" || img["tag"] != nil {
		t.Errorf("image values %v: want repository and digest set, the environment's pullPolicy kept, no tag", img)
	}
	if stable["appName"] != "hello" || stable["track"] != "stable" || stable["replicaCount"] != 3 {
		t.Errorf("stable values %v", stable)
	}
	canary, err := releaseValues(env, "hello", "canary", testImage, 1)
	if err != nil {
		t.Fatal(err)
	}
	if asMap(canary["service"])["enabled"] != false || asMap(canary["service"])["port"] != float64(8080) || asMap(canary["test"])["enabled"] != false {
		t.Errorf("canary values %v: want no Service and no test hook of its own, the port kept", canary)
	}

	// Rendered, the canary's pods join the stable release's Service and its
	// Deployment's selector does not overlap the stable one's.
	dir, err := charts.ExtractService(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	render := func(name string, vals map[string]any) string {
		ch, err := loader.LoadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		rv, err := chartutil.ToRenderValuesWithSchemaValidation(ch, vals, chartutil.ReleaseOptions{Name: name, Namespace: "ns"}, chartutil.DefaultCapabilities, false)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out, err := engine.Render(ch, rv)
		if err != nil {
			t.Fatal(err)
		}
		var all strings.Builder
		for _, v := range out {
			all.WriteString(v)
		}
		return all.String()
	}
	s, c := render(stableRelease("hello"), stable), render(canaryRelease("hello"), canary)
	if !strings.Contains(s, "kind: Service") || strings.Contains(c, "kind: Service") {
		t.Error("want a Service in the stable release only")
	}
	for _, want := range []string{"name: hello-canary", "app.kubernetes.io/instance: hello-canary", "track: canary"} {
		if !strings.Contains(c, want) {
			t.Errorf("canary manifest lacks %q", want)
		}
	}
}

func TestReleaseValuesRefuseBadInput(t *testing.T) {
	for _, image := range []string{"localhost:5000/hello:latest", "@sha256:" + strings.Repeat("a", 64), "hello@sha256:abc"} {
		_, err := releaseValues("", "hello", "stable", image, 1)
		var app *temporal.ApplicationError
		if !errors.As(err, &app) || app.Type() != contract.ErrPromotionInput || !app.NonRetryable() {
			t.Errorf("image %q: %v, want a non-retryable %s", image, err, contract.ErrPromotionInput)
		}
	}
	if _, err := releaseValues("- a list", "hello", "stable", testImage, 1); err == nil {
		t.Error("values that are a YAML list were accepted")
	}
}

func TestSameValuesSurvivesAReleaseRoundTrip(t *testing.T) {
	vals, err := releaseValues("env: {A: b}\nprobes: {readiness: {periodSeconds: 1}}\n", "hello", "stable", testImage, 4)
	if err != nil {
		t.Fatal(err)
	}
	// Helm stores values as JSON: numbers come back as float64.
	b, _ := json.Marshal(vals)
	var stored map[string]any
	if err := json.Unmarshal(b, &stored); err != nil {
		t.Fatal(err)
	}
	if !sameValues(stored, vals) {
		t.Error("stored values differ from the same values before storing")
	}
	other, _ := releaseValues("env: {A: b}\nprobes: {readiness: {periodSeconds: 1}}\n", "hello", "stable", testImage, 3)
	if sameValues(stored, other) {
		t.Error("values with another replica count compare equal")
	}
}
