// Package tracing is how conveyor's code makes spans and carries traces over
// HTTP, with OpenTelemetry's global provider: a no-op one until a process sets
// up its traces (internal/client/telemetry, when tracing.endpoint is set), so
// that code below the clients (activities, libraries) can trace without
// knowing whether anything records.
package tracing

import (
	"context"
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TracerName names conveyor's tracer.
const TracerName = "github.com/wikimedia/conveyor"

// Propagator is how a trace crosses processes: W3C trace context and baggage,
// in HTTP headers (traceparent) and in Temporal's headers alike.
var Propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Span starts a span named name under ctx's span. End it with End.
func Span(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return otel.Tracer(TracerName).Start(ctx, name, trace.WithAttributes(attrs...))
}

// End ends span, recording err (when not nil) as its error status.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// Transport wraps rt (http.DefaultTransport when nil) so that each request to
// service (gerrit, openstack, registry) is a client span named "service
// METHOD", and carries the trace in a traceparent header.
func Transport(service string, rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return otelhttp.NewTransport(rt,
		otelhttp.WithPropagators(Propagator),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return service + " " + r.Method }),
	)
}

// Handler wraps h so that each request is a server span named operation,
// continuing the trace of the request's traceparent header when it has one.
func Handler(h http.Handler, operation string) http.Handler {
	return otelhttp.NewHandler(h, operation, otelhttp.WithPropagators(Propagator),
		otelhttp.WithSpanNameFormatter(func(string, *http.Request) string { return operation }))
}
