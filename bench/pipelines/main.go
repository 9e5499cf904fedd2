// Command pipelines is benchmark P5 of issue 14: -n change pipelines in flight at
// once, their steps stubbed, on the production Temporal (Temporal's own server on
// PostgreSQL, `conveyor dev up --with temporal-postgres`) and on the dev server.
// It runs the real changes.Pipeline workflow, started through launch.Pipeline, on
// workers of its own for the build and deploy pools (registered as
// conveyor-worker registers them, the pipeline's activities replaced by stubs
// under the contract's names that return at once), in a namespace of its own on
// each server, so no worker of the stack takes its tasks. For a baseline it runs
// as many of a trivial workflow, conveyor's Ping with one activity, on the same
// server and workers.
//
// It prints the completions per second (first start to last completion) of each,
// the ratios against the target 0.8 (pipelines: production Temporal ÷ dev server;
// pipelines ÷ trivial on each server), and the RSS of each pool's worker process
// at idle and at its peak under each load.
//
//	make bench-pipelines                       # 1,000 of each on both servers
//	go run ./bench/pipelines -n 200 -only dev  # smaller, on one server
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/internal/client/temporalsetup"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// target is P5's: each ratio at least 0.8.
const target = 0.8

type options struct {
	n, concurrency int
	prodAddress    string
	devAddress     string
	only           string
	namespace      string
	inline         bool
	publish        bool
	timeout        time.Duration
	overhead       bool
	otlpEndpoint   string
	rounds         int
}

// server is one Temporal the benchmark measures.
type server struct {
	name, address string
	// hint says how to get it running.
	hint string
}

func main() {
	if pool := os.Getenv(envPool); pool != "" {
		if err := servePool(pool); err != nil {
			log.Fatalf("bench worker: %v", err)
		}
		return
	}
	var o options
	flag.IntVar(&o.n, "n", 1000, "pipelines in flight at once, and as many trivial workflows")
	flag.IntVar(&o.concurrency, "concurrency", 64, "starts sent at once")
	flag.StringVar(&o.prodAddress, "prod-address", "127.0.0.1:7333", "the production Temporal's frontend (Temporal's server on PostgreSQL)")
	flag.StringVar(&o.devAddress, "dev-address", "127.0.0.1:7233", "the dev server's frontend")
	flag.StringVar(&o.only, "only", "", "measure one server only: `prod` or dev (default both)")
	flag.StringVar(&o.namespace, "namespace", "conveyor-bench-pipelines", "Temporal namespace of the benchmark on each server (created if missing)")
	flag.BoolVar(&o.inline, "inline", false, "run the pools' workers in this process instead of one process per pool (RSS is then the sum of both pools and the client)")
	flag.BoolVar(&o.publish, "publish", true, "run the publish step (9 activities a pipeline; false: verify only, 8)")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up after this long")
	flag.BoolVar(&o.overhead, "overhead", false, "measure the overhead of metrics and tracing instead: the pipelines bare, then instrumented as conveyor-worker is (target: ≥ 0.98 of bare)")
	flag.StringVar(&o.otlpEndpoint, "otlp-endpoint", "http://127.0.0.1:4318", "with -overhead: the OTLP/HTTP collector the instrumented run sends its traces to (the stack's Jaeger)")
	flag.IntVar(&o.rounds, "rounds", 2, "with -overhead: how many times bare and instrumented alternate")
	flag.Usage = usage
	flag.Parse()
	log.SetFlags(0)
	if flag.NArg() > 0 {
		log.Fatalf("bench: unexpected arguments %q: every setting is a flag (-help lists them)", flag.Args())
	}
	if o.n <= 0 || o.concurrency <= 0 || o.rounds <= 0 {
		log.Fatalf("bench: -n %d -concurrency %d -rounds %d: each must be at least 1", o.n, o.concurrency, o.rounds)
	}
	servers, err := pick(o)
	if err != nil {
		log.Fatalf("bench: %v", err)
	}
	if o.overhead {
		err = runOverhead(o, servers)
	} else {
		err = run(o, servers)
	}
	if err != nil {
		log.Fatalf("bench: %v", err)
	}
}

func usage() {
	out := flag.CommandLine.Output()
	fmt.Fprint(out, `bench/pipelines: benchmark P5 (issue 14), pipelines in flight with stubbed steps.

Runs -n real Pipeline workflows at once (activities stubbed, on workers of its own
for the build and deploy pools) and -n trivial workflows (Ping, one activity) on
the production Temporal (PostgreSQL) and on the dev server, each in a namespace of
its own, and prints completions/s, the ratios against the target 0.8
(pipelines prod ÷ dev; pipelines ÷ trivial per server) and each pool's worker RSS
at idle and under load.

Needs both servers: `+"`conveyor dev up --with temporal-postgres`"+` (the local stack
with the production Temporal beside the dev server).

  make bench-pipelines                          # the full run: -n 1000, both servers
  make bench-pipelines BENCHFLAGS='-n 200'
  go run ./bench/pipelines -only dev -n 50
  go run ./bench/pipelines -only dev -overhead  # metrics + tracing against none

Flags:
`)
	flag.PrintDefaults()
}

// pick returns the servers -only asks for.
func pick(o options) ([]server, error) {
	prod := server{name: "prod", address: o.prodAddress,
		hint: "start the production Temporal with `conveyor dev up --with temporal-postgres` (with the running stack's --state-dir), give its frontend with -prod-address, or measure the dev server alone with -only dev"}
	dev := server{name: "dev", address: o.devAddress,
		hint: "start the local stack with `conveyor dev up --with temporal-postgres` (or `make up` for the dev server alone), give its address with -dev-address, or measure the production Temporal alone with -only prod"}
	switch o.only {
	case "":
		return []server{prod, dev}, nil
	case "prod":
		return []server{prod}, nil
	case "dev":
		return []server{dev}, nil
	}
	return nil, fmt.Errorf("-only %q: give prod, dev, or nothing for both", o.only)
}

func run(o options, servers []server) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	fmt.Printf("P5: %d pipelines in flight, stubbed steps (%d activities each), and %d trivial workflows, on %d server(s); namespace %s\n",
		o.n, activitiesPerPipeline(o.publish), o.n, len(servers), o.namespace)
	fmt.Println("trivial workflow: conveyor's Ping on the build pool, one activity (the real health Ping, which returns at once).")
	fmt.Println("  One activity, not none: each pipeline step is an activity task and the workflow task after it, so the")
	fmt.Println("  baseline runs that cycle once; a workflow of none would time only a start and a completion.")
	var runs []serverRun
	for _, s := range servers {
		r, err := benchServer(ctx, o, s)
		if err != nil {
			return fmt.Errorf("%s (%s): %w", s.name, s.address, err)
		}
		runs = append(runs, r)
	}
	return report(os.Stdout, o, runs)
}

// activitiesPerPipeline is how many activities one pipeline runs.
func activitiesPerPipeline(publish bool) int {
	if publish {
		return 9
	}
	return 8
}

// serverRun is what the benchmark measured on one server.
type serverRun struct {
	server
	pipelines, trivial measurement
	procs              []process
	// idle, underPipelines and underTrivial are each process's RSS.
	idle, underPipelines, underTrivial []int64
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

// prepareNamespace registers the benchmark's namespace on s and returns the
// configuration of its clients.
func prepareNamespace(ctx context.Context, o options, s server) (config.Temporal, error) {
	cfg := config.Defaults().Temporal
	cfg.Address = s.address
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	admin, err := temporalsetup.Dial(dctx, client.Options{HostPort: s.address, Logger: tlog.NewStructuredLogger(quietLogger())})
	cancel()
	if err != nil {
		return cfg, fmt.Errorf("%w: %s", err, s.hint)
	}
	err = temporalsetup.Register(ctx, admin, temporalsetup.RegisterOptions{Namespace: o.namespace,
		Description: "conveyor's benchmark P5 (bench/pipelines)", Retention: 24 * time.Hour})
	admin.Close()
	cfg.Namespace = o.namespace
	return cfg, err
}

// benchServer measures both workloads on s.
func benchServer(ctx context.Context, o options, s server) (serverRun, error) {
	r := serverRun{server: s}
	cfg, err := prepareNamespace(ctx, o, s)
	if err != nil {
		return r, err
	}
	logger := quietLogger()
	cl, err := temporalclient.Dial(ctx, cfg, logger, temporalclient.WithIdentity(fmt.Sprintf("%s%d/client", identityPrefix, os.Getpid())))
	if err != nil {
		return r, err
	}
	defer cl.Close()
	ps, err := startPools(ctx, cl, cfg, o.inline, "")
	if err != nil {
		return r, err
	}
	defer func() {
		for _, p := range ps {
			if err := p.stop(); err != nil {
				log.Printf("bench: stopping the %s pool's worker: %v", p.pool, err)
			}
		}
	}()
	r.procs = processes(ps)
	if r.idle, err = rssNow(r.procs); err != nil {
		return r, err
	}
	tag := time.Now().UTC().Format("20060102t150405")
	fmt.Printf("\n%s (%s): workers ready; warming up with one of each...\n", s.name, s.address)
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, wl := range []workload{pipelines(cl, tag+"-warmup", o.publish), trivial(cl, tag+"-warmup", time.Minute)} {
		if _, err := load(wctx, wl, 1, 1); err != nil {
			return r, fmt.Errorf("warming up: %w", err)
		}
	}
	for _, step := range []struct {
		wl  workload
		m   *measurement
		rss *[]int64
	}{
		{pipelines(cl, tag, o.publish), &r.pipelines, &r.underPipelines},
		{trivial(cl, tag, o.timeout), &r.trivial, &r.underTrivial},
	} {
		fmt.Printf("%s: %d %s workflows...\n", s.name, o.n, step.wl.name)
		sampler := sampleRSS(r.procs, 100*time.Millisecond)
		m, err := load(ctx, step.wl, o.n, o.concurrency)
		*step.rss = sampler.Stop()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("%w (after -timeout %s)", err, o.timeout)
			}
			return r, err
		}
		*step.m = m
		fmt.Printf("%s: %d %s workflows completed in %s: %.1f/s\n", s.name, m.n, step.wl.name, m.wall.Round(time.Millisecond), m.rate())
		if step.m.activityWait, step.m.workflowTaskWait, err = scheduleToStart(ctx, cl, m.sample); err != nil {
			return r, err
		}
	}
	return r, nil
}
