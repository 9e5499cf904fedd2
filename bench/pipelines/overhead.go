package main

// -overhead: what metrics and tracing cost. The same stubbed pipelines run on
// bare pools (no metrics handler, no interceptor: the SDK's no-op defaults), on
// pools with metrics (the SDK's and conveyor's into a Prometheus registry scraped
// every 2 s, as the stack's Prometheus does), and on pools set up as
// conveyor-worker sets itself up with tracing.endpoint too (Temporal's tracing
// interceptor on the client and the workers, every trace sampled and exported
// over OTLP/HTTP), once to the collector (the stack's Jaeger) and once to a
// receiver in this process that discards the spans: on a small machine the
// collector's own CPU competes with the server's. The variants alternate
// -rounds times, so that a drift of the server (its database growing) weighs on
// each alike.

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/bench/internal/scrape"
	"github.com/wikimedia/conveyor/internal/client/telemetry"
	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// overheadTarget: instrumented ÷ bare completions per second, at least this
// (overhead ≤ 2 %).
const overheadTarget = 0.98

// scrapeEvery is how often an instrumented process's metrics are read.
const scrapeEvery = 2 * time.Second

// instrumentedClient is a Temporal client with conveyor's metrics and tracing.
type instrumentedClient struct {
	client.Client
	close func()
}

// dialInstrumented dials as conveyor-worker does with tracing.endpoint set to
// endpoint (no tracing when endpoint is metricsOnly), serves its metrics on a
// loopback port and scrapes them every scrapeEvery.
func dialInstrumented(ctx context.Context, cfg config.Temporal, identity, endpoint string, logger *slog.Logger) (*instrumentedClient, error) {
	metrics, err := telemetry.NewMetrics(logger)
	if err != nil {
		return nil, err
	}
	var tracing *telemetry.Tracing
	if endpoint != metricsOnly {
		ratio := 1.0
		if tracing, err = telemetry.NewTracing(ctx, config.Tracing{Endpoint: endpoint, SampleRatio: &ratio}, "conveyor-bench-pipelines", "bench"); err != nil {
			return nil, err
		}
	}
	cl, err := temporalclient.Dial(ctx, cfg, logger, temporalclient.WithIdentity(identity),
		temporalclient.WithMetricsHandler(metrics.Handler()), temporalclient.WithInterceptors(tracing.ClientInterceptors()...))
	if err != nil {
		_ = tracing.Shutdown(ctx)
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cl.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	metrics.Register(mux)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	stopScraping := scrape.Every("http://"+ln.Addr().String()+telemetry.MetricsPath, scrapeEvery,
		func(err error) { logger.Error("Scraping the metrics", "error", err) })
	return &instrumentedClient{Client: cl, close: func() {
		stopScraping()
		_ = srv.Close()
		cl.Close()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tracing.Shutdown(sctx); err != nil {
			logger.Error("Sending the last spans", "error", err)
		}
		_ = metrics.Shutdown(sctx)
	}}, nil
}

// metricsOnly is the telemetry setting of a pool with metrics and no tracing.
const metricsOnly = "metrics"

// overheadVariant is one way the pools and the client are set up: telemetry is
// "" (bare), metricsOnly, or the OTLP endpoint that gets the traces.
type overheadVariant struct {
	name, telemetry string
}

// runOverhead measures -n pipelines bare, with metrics, and with metrics and
// tracing (to the -otlp-endpoint collector and to a receiver in this process
// that discards what it gets, which tells the collector's own CPU apart on a
// small machine), -rounds times on each server, and prints the ratios against
// overheadTarget.
func runOverhead(o options, servers []server) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	sink, err := startSink()
	if err != nil {
		return err
	}
	defer sink.Close()
	variants := []overheadVariant{
		{"bare", ""},
		{"metrics", metricsOnly},
		{"metrics+tracing→collector", o.otlpEndpoint},
		{"metrics+tracing→discard", "http://" + sink.Addr().String()},
	}
	fmt.Printf("Telemetry overhead: %d stubbed pipelines (%d activities each) per load; the pools and the client bare, with metrics (scraped every %s), and with metrics and tracing (every trace exported to %s, or to a receiver here that discards them); %d round(s), on %d server(s); namespace %s\n",
		o.n, activitiesPerPipeline(o.publish), scrapeEvery, o.otlpEndpoint, o.rounds, len(servers), o.namespace)
	results := map[string][][]measurement{}
	for _, s := range servers {
		cfg, err := prepareNamespace(ctx, o, s)
		if err != nil {
			return fmt.Errorf("%s (%s): %w", s.name, s.address, err)
		}
		for round := range o.rounds {
			var r []measurement
			for _, v := range variants {
				m, err := overheadLoad(ctx, o, cfg, v.telemetry, fmt.Sprintf("%s-r%d-v%d", time.Now().UTC().Format("20060102t150405"), round+1, len(r)))
				if err != nil {
					return fmt.Errorf("%s, round %d, %s: %w", s.name, round+1, v.name, err)
				}
				r = append(r, m)
				fmt.Printf("%s round %d %s: %d pipelines in %s: %.1f/s\n", s.name, round+1, v.name, m.n, m.wall.Round(time.Millisecond), m.rate())
			}
			results[s.name] = append(results[s.name], r)
		}
	}
	return reportOverhead(os.Stdout, servers, variants, results)
}

// startSink serves an OTLP/HTTP receiver on loopback that answers every export
// with an empty success and keeps nothing.
func startSink() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	})}
	go func() { _ = srv.Serve(ln) }()
	return ln, nil
}

// dialPool dials the client of a pool or of the benchmark: bare when telemetry
// is empty, else instrumented (dialInstrumented).
func dialPool(ctx context.Context, cfg config.Temporal, identity, telemetry string, logger *slog.Logger) (client.Client, func(), error) {
	if telemetry != "" {
		ic, err := dialInstrumented(ctx, cfg, identity, telemetry, logger)
		if err != nil {
			return nil, nil, err
		}
		return ic.Client, ic.close, nil
	}
	c, err := temporalclient.Dial(ctx, cfg, logger, temporalclient.WithIdentity(identity))
	if err != nil {
		return nil, nil, err
	}
	return c, c.Close, nil
}

// overheadLoad runs one load of pipelines on pools (and a starting client)
// instrumented when endpoint is set.
func overheadLoad(ctx context.Context, o options, cfg config.Temporal, endpoint, tag string) (measurement, error) {
	cl, closeClient, err := dialPool(ctx, cfg, fmt.Sprintf("%s%d/client", identityPrefix, os.Getpid()), endpoint, quietLogger())
	if err != nil {
		return measurement{}, err
	}
	defer closeClient()
	ps, err := startPools(ctx, cl, cfg, o.inline, endpoint)
	if err != nil {
		return measurement{}, err
	}
	defer func() {
		for _, p := range ps {
			if err := p.stop(); err != nil {
				log.Printf("bench: stopping the %s pool's worker: %v", p.pool, err)
			}
		}
	}()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := load(wctx, pipelines(cl, tag+"-warmup", o.publish), 1, 1); err != nil {
		return measurement{}, fmt.Errorf("warming up: %w", err)
	}
	return load(ctx, pipelines(cl, tag, o.publish), o.n, o.concurrency)
}

func reportOverhead(out io.Writer, servers []server, variants []overheadVariant, results map[string][][]measurement) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "\nSERVER\tROUND")
	for _, v := range variants {
		fmt.Fprintf(tw, "\t%s /S", strings.ToUpper(v.name))
	}
	fmt.Fprintln(tw)
	for _, s := range servers {
		totals := make([]measurement, len(variants))
		for i, r := range results[s.name] {
			fmt.Fprintf(tw, "%s\t%d", s.name, i+1)
			for j, m := range r {
				fmt.Fprintf(tw, "\t%.2f", m.rate())
				totals[j].n, totals[j].wall = totals[j].n+m.n, totals[j].wall+m.wall
			}
			fmt.Fprintln(tw)
		}
		fmt.Fprintf(tw, "%s\tall", s.name)
		for _, m := range totals {
			fmt.Fprintf(tw, "\t%.2f", m.rate())
		}
		fmt.Fprintf(tw, "\n%s\t÷ bare", s.name)
		for _, m := range totals {
			fmt.Fprintf(tw, "\t%.3f", m.rate()/totals[0].rate())
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(out, "\nTarget: each instrumented ÷ bare ≥ %.2f (overhead ≤ 2 %%). With the collector on the same machine its CPU counts too; the discarding receiver leaves only conveyor's own cost.\n", overheadTarget)
	return err
}
