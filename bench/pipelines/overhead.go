package main

// -overhead: what metrics and tracing cost. The same stubbed pipelines run on
// bare pools (no metrics handler, no interceptor: the SDK's no-op defaults) and
// on instrumented ones, set up as conveyor-worker sets itself up with
// tracing.endpoint: the SDK's and conveyor's metrics into a Prometheus registry
// that is scraped every 2 s (as the stack's Prometheus does), and Temporal's
// tracing interceptor on the client and the workers, every trace sampled and
// exported over OTLP/HTTP. The two alternate -rounds times, so that a drift of
// the server (its database growing) weighs on both alike.

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"text/tabwriter"
	"time"

	"go.temporal.io/sdk/client"

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
// endpoint, serves its metrics on a loopback port and scrapes them every
// scrapeEvery.
func dialInstrumented(ctx context.Context, cfg config.Temporal, identity, endpoint string, logger *slog.Logger) (*instrumentedClient, error) {
	metrics, err := telemetry.NewMetrics(logger)
	if err != nil {
		return nil, err
	}
	ratio := 1.0
	tracing, err := telemetry.NewTracing(ctx, config.Tracing{Endpoint: endpoint, SampleRatio: &ratio}, "conveyor-bench-pipelines", "bench")
	if err != nil {
		return nil, err
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
	done := make(chan struct{})
	scraped := make(chan struct{})
	go func() {
		defer close(scraped)
		url := "http://" + ln.Addr().String() + telemetry.MetricsPath
		tick := time.NewTicker(scrapeEvery)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			resp, err := http.Get(url)
			if err != nil {
				logger.Error("Scraping the metrics", "error", err)
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	return &instrumentedClient{Client: cl, close: func() {
		close(done)
		<-scraped
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

// overheadRound is one bare and one instrumented load on a server.
type overheadRound struct {
	bare, instrumented measurement
}

// runOverhead measures -n pipelines bare and instrumented, -rounds times, on
// each server, and prints the ratio against overheadTarget.
func runOverhead(o options, servers []server) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	fmt.Printf("Telemetry overhead: %d stubbed pipelines (%d activities each) bare, then with metrics (scraped every %s) and tracing (every trace exported to %s), %d round(s), on %d server(s); namespace %s\n",
		o.n, activitiesPerPipeline(o.publish), scrapeEvery, o.otlpEndpoint, o.rounds, len(servers), o.namespace)
	results := map[string][]overheadRound{}
	for _, s := range servers {
		cfg, err := prepareNamespace(ctx, o, s)
		if err != nil {
			return fmt.Errorf("%s (%s): %w", s.name, s.address, err)
		}
		for round := range o.rounds {
			var r overheadRound
			for _, v := range []struct {
				name     string
				endpoint string
				m        *measurement
			}{{"bare", "", &r.bare}, {"instrumented", o.otlpEndpoint, &r.instrumented}} {
				m, err := overheadLoad(ctx, o, cfg, v.endpoint, fmt.Sprintf("%s-r%d-%s", time.Now().UTC().Format("20060102t150405"), round+1, v.name))
				if err != nil {
					return fmt.Errorf("%s, round %d, %s: %w", s.name, round+1, v.name, err)
				}
				*v.m = m
				fmt.Printf("%s round %d %s: %d pipelines in %s: %.1f/s\n", s.name, round+1, v.name, m.n, m.wall.Round(time.Millisecond), m.rate())
			}
			results[s.name] = append(results[s.name], r)
		}
	}
	return reportOverhead(os.Stdout, servers, results)
}

// overheadLoad runs one load of pipelines on pools (and a starting client)
// instrumented when endpoint is set.
func overheadLoad(ctx context.Context, o options, cfg config.Temporal, endpoint, tag string) (measurement, error) {
	logger := quietLogger()
	identity := fmt.Sprintf("%s%d/client", identityPrefix, os.Getpid())
	var cl client.Client
	if endpoint != "" {
		ic, err := dialInstrumented(ctx, cfg, identity, endpoint, logger)
		if err != nil {
			return measurement{}, err
		}
		defer ic.close()
		cl = ic.Client
	} else {
		c, err := temporalclient.Dial(ctx, cfg, logger, temporalclient.WithIdentity(identity))
		if err != nil {
			return measurement{}, err
		}
		defer c.Close()
		cl = c
	}
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

func reportOverhead(out io.Writer, servers []server, results map[string][]overheadRound) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSERVER\tROUND\tBARE /S\tINSTRUMENTED /S\tINSTRUMENTED ÷ BARE")
	worst := 2.0
	for _, s := range servers {
		var bare, inst measurement
		for i, r := range results[s.name] {
			fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.3f\n", s.name, i+1, r.bare.rate(), r.instrumented.rate(), r.instrumented.rate()/r.bare.rate())
			bare.n, bare.wall = bare.n+r.bare.n, bare.wall+r.bare.wall
			inst.n, inst.wall = inst.n+r.instrumented.n, inst.wall+r.instrumented.wall
		}
		ratio := inst.rate() / bare.rate()
		worst = min(worst, ratio)
		fmt.Fprintf(tw, "%s\tall\t%.1f\t%.1f\t%.3f (target ≥ %.2f: overhead %.1f %%)\n", s.name, bare.rate(), inst.rate(), ratio, overheadTarget, 100*(1-ratio))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verdict := "meets"
	if worst < overheadTarget {
		verdict = "MISSES"
	}
	_, err := fmt.Fprintf(out, "\nTelemetry overhead %s the target: worst ratio %.3f, target ≥ %.2f.\n", verdict, worst, overheadTarget)
	return err
}
