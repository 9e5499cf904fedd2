package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTracingSettings(t *testing.T) {
	t.Setenv("CONVEYOR_TRACING_ENDPOINT", "")
	for _, tc := range []struct {
		yaml, wantErr string
		endpoint      string
		ratio         float64
	}{
		{yaml: "tracing: {endpoint: http://127.0.0.1:4318, sampleRatio: 0.25}\n", endpoint: "http://127.0.0.1:4318", ratio: 0.25},
		{yaml: "tracing: {endpoint: 'https://otel.example.org:4318/'}\n", endpoint: "https://otel.example.org:4318/", ratio: -1},
		{yaml: "tracing: {endpoint: 127.0.0.1:4318}\n", wantErr: "tracing.endpoint"},
		{yaml: "tracing: {endpoint: 'grpc://collector:4317'}\n", wantErr: "OTLP/HTTP base URL"},
		{yaml: "tracing: {sampleRatio: 1.5}\n", wantErr: "tracing.sampleRatio 1.5"},
		{yaml: "tracing: {sampleRatio: -0.1}\n", wantErr: "tracing.sampleRatio"},
	} {
		path := filepath.Join(t.TempDir(), "conveyor.yaml")
		if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path, true)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want one naming %q", tc.yaml, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.yaml, err)
			continue
		}
		if c.Tracing.Endpoint != tc.endpoint {
			t.Errorf("%q: endpoint %q, want %q", tc.yaml, c.Tracing.Endpoint, tc.endpoint)
		}
		if got := c.Tracing.SampleRatio; (tc.ratio < 0) != (got == nil) || (got != nil && *got != tc.ratio) {
			t.Errorf("%q: sampleRatio %v, want %v", tc.yaml, got, tc.ratio)
		}
	}

	t.Setenv("CONVEYOR_TRACING_ENDPOINT", "http://10.0.0.1:4318")
	c, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), false)
	if err != nil || c.Tracing.Endpoint != "http://10.0.0.1:4318" {
		t.Errorf("CONVEYOR_TRACING_ENDPOINT: endpoint %q, err %v", c.Tracing.Endpoint, err)
	}
}
