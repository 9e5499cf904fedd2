package devstack

import (
	"context"
	"fmt"
	"time"
)

const (
	jaegerOTLPAddr   = "127.0.0.1:4318"
	jaegerQueryAddr  = "127.0.0.1:16686"
	jaegerHealthAddr = "127.0.0.1:13133"
)

// TracingEndpoint is the OTLP/HTTP endpoint of the stack's trace store, which
// the stack's configuration gives the workers and the receiver
// (tracing.endpoint).
const TracingEndpoint = "http://" + jaegerOTLPAddr

// JaegerURL is the stack's trace store's query API: GET /api/traces/<trace id>,
// /api/services, /api/traces?service=… (Jaeger built from the Go module proxy
// has no UI assets embedded; its page says so and the API answers).
const JaegerURL = "http://" + jaegerQueryAddr

// jaegerComponent is Jaeger v2 (an OpenTelemetry Collector distribution) with
// its in-memory store: OTLP in over HTTP, the query API out, all on loopback.
// Its traces last as long as the process.
func jaegerComponent() component {
	return component{
		name:    "jaeger",
		tool:    "jaeger",
		process: true,
		address: func(*stack) string { return JaegerURL + " (OTLP " + TracingEndpoint + ")" },
		timeout: time.Minute,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			if err := s.mkdirs("jaeger"); err != nil {
				return nil, err
			}
			conf := fmt.Sprintf(`# Written by conveyor dev up: the local stack's trace store.
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: none
    logs:
      level: warn
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: %s
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: %s
    grpc:
      endpoint: 127.0.0.1:16685
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      http:
        endpoint: %s
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`, jaegerHealthAddr, jaegerQueryAddr, jaegerOTLPAddr)
			if err := writeFile(s.path("jaeger", "jaeger.yaml"), conf, 0o644); err != nil {
				return nil, err
			}
			return &process{Name: "jaeger", Bin: s.tool("jaeger", "jaeger"), Args: []string{"--config", s.path("jaeger", "jaeger.yaml")}}, nil
		},
		ready: func(ctx context.Context, s *stack) error {
			if err := httpOK(ctx, nil, "http://"+jaegerHealthAddr+"/status"); err != nil {
				return err
			}
			return httpOK(ctx, nil, JaegerURL+"/api/services")
		},
	}
}
