package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"

	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/internal/lib/tracing"
)

// Tracing is one process's traces: a provider exporting over OTLP/HTTP, set as
// OpenTelemetry's global one so that the spans and HTTP transports of
// internal/lib/tracing record into it, and the Temporal interceptor that carries a
// trace from the client that starts a workflow into the workflow, its
// activities and its children.
type Tracing struct {
	provider    *sdktrace.TracerProvider
	interceptor interceptor.Interceptor
}

// Enabled says whether cfg (or the standard OTEL_EXPORTER_OTLP_* variables)
// names a collector.
func Enabled(cfg config.Tracing) bool {
	return cfg.Endpoint != "" || os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// NewTracing sets up the traces of the process called service
// (service.name; OTEL_SERVICE_NAME overrides it). When tracing is off (Enabled
// is false) it returns nil and no error: a nil *Tracing has no interceptors and
// shuts down at once, and internal/lib/tracing's spans record nothing.
func NewTracing(ctx context.Context, cfg config.Tracing, service, version string) (*Tracing, error) {
	if !Enabled(cfg) {
		return nil, nil
	}
	var opts []otlptracehttp.Option
	if cfg.Endpoint != "" {
		opts = append(opts, otlptracehttp.WithEndpointURL(strings.TrimRight(cfg.Endpoint, "/")+"/v1/traces"))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing.endpoint: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service), attribute.String("service.version", version)),
		resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithHost())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("tracing: describing the process: %w", err)
	}
	ratio := 1.0
	if cfg.SampleRatio != nil {
		ratio = *cfg.SampleRatio
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
	)
	ic, err := Interceptor(tp.Tracer(tracing.TracerName))
	if err != nil {
		_ = tp.Shutdown(ctx)
		return nil, err
	}
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(tracing.Propagator)
	return &Tracing{provider: tp, interceptor: ic}, nil
}

// Interceptor is the Temporal tracing interceptor the workers and clients use,
// with tracer. Replays use it too (with a tracer that records nothing), so that
// a history is replayed through the same interceptors as it ran.
func Interceptor(tracer trace.Tracer) (interceptor.Interceptor, error) {
	ic, err := opentelemetry.NewTracingInterceptor(opentelemetry.TracerOptions{Tracer: tracer, TextMapPropagator: tracing.Propagator})
	if err != nil {
		return nil, fmt.Errorf("tracing: the Temporal interceptor: %w", err)
	}
	return ic, nil
}

// ReplayInterceptors are the worker interceptors of a replay: the tracing
// interceptor with a tracer that records nothing.
func ReplayInterceptors() ([]interceptor.WorkerInterceptor, error) {
	ic, err := Interceptor(noop.NewTracerProvider().Tracer(tracing.TracerName))
	if err != nil {
		return nil, err
	}
	return []interceptor.WorkerInterceptor{ic}, nil
}

// ClientInterceptors are the interceptors for client.Options.Interceptors
// (the workers made from the client use them too); none when t is nil.
func (t *Tracing) ClientInterceptors() []interceptor.ClientInterceptor {
	if t == nil {
		return nil
	}
	return []interceptor.ClientInterceptor{t.interceptor}
}

// Shutdown sends the spans still buffered and stops the provider.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}
