package config

import (
	"fmt"
	"net/url"
)

// Tracing is where traces go (docs/operating.md, "Traces"): OpenTelemetry
// spans of the webhook requests, the workflows, their activities and the calls
// those make (BuildKit, Helm, the registry, Gerrit, OpenStack), exported over
// OTLP/HTTP. Tracing is off when no endpoint is set here or in the standard
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT variables.
type Tracing struct {
	// Endpoint is the collector's OTLP/HTTP base URL, such as
	// http://127.0.0.1:4318 (spans go to its /v1/traces); https:// verifies the
	// collector with the system's roots.
	Endpoint string `yaml:"endpoint,omitempty"`
	// SampleRatio is the share of new traces recorded, from 0 to 1 (default 1:
	// all). A trace started elsewhere (a traceparent header on a webhook) keeps
	// its own decision.
	SampleRatio *float64 `yaml:"sampleRatio,omitempty"`
}

// check refuses an endpoint that is not an http(s) URL and a ratio outside 0..1.
func (t Tracing) check() error {
	if t.Endpoint != "" {
		u, err := url.Parse(t.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("tracing.endpoint %q: want the collector's OTLP/HTTP base URL, such as http://127.0.0.1:4318", t.Endpoint)
		}
	}
	if r := t.SampleRatio; r != nil && (*r < 0 || *r > 1) {
		return fmt.Errorf("tracing.sampleRatio %v: want a share from 0 (none) to 1 (every trace)", *r)
	}
	return nil
}
