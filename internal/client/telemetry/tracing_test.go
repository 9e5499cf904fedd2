package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/internal/lib/tracing"
)

func TestTracingOffWithoutAnEndpoint(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	tr, err := NewTracing(context.Background(), config.Tracing{}, "conveyor-test", "v0")
	if err != nil || tr != nil {
		t.Fatalf("NewTracing without an endpoint = %v, %v; want nil, nil", tr, err)
	}
	if ics := tr.ClientInterceptors(); len(ics) != 0 {
		t.Errorf("%d interceptors while tracing is off", len(ics))
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}

// TestTracingExportsOverOTLP checks what a collector receives: a POST to
// /v1/traces under tracing.endpoint, holding the span with its service name.
func TestTracingExportsOverOTLP(t *testing.T) {
	type post struct {
		path string
		req  *collectortrace.ExportTraceServiceRequest
	}
	got := make(chan post, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		req := &collectortrace.ExportTraceServiceRequest{}
		if err := proto.Unmarshal(b, req); err != nil {
			t.Errorf("the export is not OTLP protobuf: %v", err)
		}
		got <- post{r.URL.Path, req}
		w.Header().Set("Content-Type", "application/x-protobuf")
		b, _ = proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		_, _ = w.Write(b)
	}))
	defer srv.Close()
	prev := otel.GetTracerProvider()
	defer otel.SetTracerProvider(prev)

	ctx := context.Background()
	tr, err := NewTracing(ctx, config.Tracing{Endpoint: srv.URL + "/"}, "conveyor-test", "v0")
	if err != nil || tr == nil {
		t.Fatalf("NewTracing: %v, %v", tr, err)
	}
	if len(tr.ClientInterceptors()) != 1 {
		t.Errorf("%d client interceptors, want the tracing one", len(tr.ClientInterceptors()))
	}
	_, span := tracing.Span(ctx, "unit of work")
	tracing.End(span, nil)
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	p := <-got
	if p.path != "/v1/traces" {
		t.Errorf("exported to %s, want /v1/traces", p.path)
	}
	var service, name string
	for _, rs := range p.req.GetResourceSpans() {
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				name = s.GetName()
			}
		}
	}
	if service != "conveyor-test" || name != "unit of work" {
		t.Errorf("exported service %q span %q, want conveyor-test and \"unit of work\"", service, name)
	}
}
