// Package telemetry gives a conveyor process its metrics: a Prometheus registry
// served on /metrics, with the Temporal SDK's metrics (through the SDK's
// OpenTelemetry handler and OpenTelemetry's Prometheus exporter), conveyor's own
// workflow metrics (which workflows record through workflow.GetMetricsHandler, so
// that replays record nothing), and the process's Go runtime metrics.
package telemetry

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/opentelemetry"
)

// MetricsPath is where a process serves its metrics.
const MetricsPath = "/metrics"

// DurationBuckets are the histogram buckets of every duration (seconds): from
// schedule-to-start latencies (alerts at 1 s) to hour-long builds.
var DurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

// Metrics is one process's metrics.
type Metrics struct {
	// Registry is where the process's own collectors register too.
	Registry *prometheus.Registry
	provider *sdkmetric.MeterProvider
	handler  client.MetricsHandler
}

// NewMetrics makes the registry and the Temporal metrics handler writing into
// it; errors of the SDK's instruments are logged to logger.
func NewMetrics(logger *slog.Logger) (*Metrics, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, err
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithView(sdkmetric.NewView(
		sdkmetric.Instrument{Kind: sdkmetric.InstrumentKindHistogram, Unit: "s"},
		sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: DurationBuckets}},
	)))
	h := opentelemetry.NewMetricsHandler(opentelemetry.MetricsHandlerOptions{
		Meter:                provider.Meter("conveyor"),
		UseMonotonicCounters: true,
		OnError:              func(err error) { logger.Warn("A metric could not be recorded", "error", err) },
	})
	return &Metrics{Registry: reg, provider: provider, handler: h}, nil
}

// Handler is the Temporal metrics handler, for client.Options.MetricsHandler.
func (m *Metrics) Handler() client.MetricsHandler { return m.handler }

// Register serves GET MetricsPath on mux.
func (m *Metrics) Register(mux *http.ServeMux) {
	mux.Handle("GET "+MetricsPath, promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
}

// Shutdown stops the meter provider.
func (m *Metrics) Shutdown(ctx context.Context) error { return m.provider.Shutdown(ctx) }
