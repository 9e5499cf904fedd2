package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/internal/client/health"
	"github.com/wikimedia/conveyor/internal/client/telemetry"
	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/workers/pools"
	"github.com/wikimedia/conveyor/workflows"
)

// interrupt delivers SIGINT and SIGTERM; a test replaces it.
var interrupt = worker.InterruptCh

// run is conveyor-worker's action: flags and environment, configuration, client,
// health endpoints, then wait for Temporal, one worker per pool, then wait for a
// signal and drain.
func run(c *cli.Context) error {
	// Listening for the signals first means one that arrives during the start is
	// not lost: it drains whatever has started.
	stop := interrupt()
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: conveyor-worker takes only flags (see --help)", c.Args().Slice())
	}
	selected, err := workflows.ParsePools(c.StringSlice("pools"))
	if err != nil {
		return fmt.Errorf("--pools: %w", err)
	}
	deployment, err := deploymentOptions(c)
	if err != nil {
		return err
	}
	logger, err := newLogger(c.App.ErrWriter, c.String("log-format"), c.String("log-level"))
	if err != nil {
		return err
	}
	cfgPath := c.String("config")
	cfg, err := config.Load(config.Path(cfgPath), cfgPath != "")
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	temporalclient.ApplyFlags(c, &cfg.Temporal)

	host, err := os.Hostname()
	if err != nil {
		host = "unknown-host"
	}
	base := fmt.Sprintf("%d@%s@conveyor-worker", os.Getpid(), host)
	// The activities and the client are built before Temporal is reached: a
	// configuration they cannot use (a secret file that is missing, a kubeconfig
	// that does not load) stops the start whether Temporal is up or not.
	var sets []pools.Set
	defer func() {
		for _, s := range sets {
			if err := s.Close(); err != nil {
				logger.Warn("Closing activities", "error", err)
			}
		}
	}()
	for _, p := range selected {
		set, err := pools.For(c.Context, p, pools.Deps{Pool: p, Identity: base + "/" + p, Config: cfg, Logger: logger.With("pool", p)})
		if err != nil {
			return err
		}
		sets = append(sets, set)
	}
	metrics, err := telemetry.NewMetrics(logger)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	tracing, err := telemetry.NewTracing(c.Context, cfg.Tracing, "conveyor-worker", version)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tracing.Shutdown(sctx); err != nil {
			logger.Warn("Sending the last spans", "error", err)
		}
	}()
	cl, err := temporalclient.NewLazy(cfg.Temporal, logger, temporalclient.WithIdentity(base),
		temporalclient.WithMetricsHandler(metrics.Handler()), temporalclient.WithInterceptors(tracing.ClientInterceptors()...))
	if err != nil {
		return err
	}
	defer cl.Close()

	started := make([]atomic.Bool, len(selected))
	checks := []health.Option{health.WithTemporalAddress(cfg.Temporal.Address)}
	for i, p := range selected {
		checks = append(checks, health.WithCheck("pool "+p, health.PollersCheck(cl, workflows.TaskQueue(p), base+"/"+p, &started[i])))
	}
	probe, err := health.New(cl, checks...)
	if err != nil {
		return err
	}
	if addr := c.String("health-listen"); addr != "" {
		mux := http.NewServeMux()
		probe.Register(mux)
		metrics.Register(mux)
		srv, err := health.Listen(addr, mux, logger)
		if err != nil {
			return fmt.Errorf("--health-listen: %w", err)
		}
		defer func() {
			if err := srv.Shutdown(5 * time.Second); err != nil {
				logger.Warn("Stopping the health endpoints", "error", err)
			}
		}()
		pctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go probe.Run(pctx)
		logger.Info("Serving health endpoints", "address", srv.Addr().String(), "live", health.LivePath, "ready", health.ReadyPath, "metrics", telemetry.MetricsPath)
	}

	// Until Temporal answers the process is live and not ready; a signal ends the
	// wait, and the process exits 0 with nothing to drain.
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	signalled := make(chan struct{})
	go func() {
		select {
		case <-stop:
			close(signalled)
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := temporalclient.Wait(ctx, cl, cfg.Temporal, logger); err != nil {
		if ctx.Err() != nil {
			probe.Drain()
			logger.Info("Stopping: signal received while waiting for Temporal", "address", cfg.Temporal.Address)
			return nil
		}
		return err
	}

	fatal := make(chan error, len(selected))
	var workers []worker.Worker
	// Readiness goes false before anything stops, so that no new traffic is routed
	// here; all pools stop together, each giving its running activities
	// --shutdown-timeout. The activities close after (the defer above).
	defer func() {
		probe.Drain()
		stopAll(workers)
	}()
	for i, p := range selected {
		id := base + "/" + p
		w := worker.New(cl, workflows.TaskQueue(p), worker.Options{
			Identity:          id,
			WorkerStopTimeout: c.Duration("shutdown-timeout"),
			OnFatalError:      func(err error) { fatal <- fmt.Errorf("worker for pool %s stopped: %w", p, err) },
			DeploymentOptions: deployment,
		})
		sets[i].Register(w, deployment.UseVersioning)
		if err := w.Start(); err != nil {
			return fmt.Errorf("starting the worker for pool %s: %w", p, err)
		}
		workers = append(workers, w)
		started[i].Store(true)
		logger.Info("Worker started", "pool", p, "taskQueue", workflows.TaskQueue(p), "identity", id)
	}
	logger.Info("Serving", "version", version, "pools", strings.Join(selected, ","), "address", cfg.Temporal.Address, "namespace", cfg.Temporal.Namespace,
		"deployment", deployment.Version.DeploymentName, "buildID", deployment.Version.BuildID)

	select {
	case err := <-fatal:
		return err
	case <-ctx.Done():
	}
	select {
	case <-signalled:
		logger.Info("Draining: signal received; /readyz answers 503, the workers stop polling and running activities get --shutdown-timeout",
			"shutdownTimeout", c.Duration("shutdown-timeout").String())
	default:
	}
	return nil
}

// deploymentOptions are the worker deployment options of --deployment and
// --build-id: none without a deployment.
func deploymentOptions(c *cli.Context) (worker.DeploymentOptions, error) {
	name, build := strings.TrimSpace(c.String("deployment")), strings.TrimSpace(c.String("build-id"))
	if name == "" {
		if c.IsSet("build-id") {
			return worker.DeploymentOptions{}, errors.New("--build-id is set but --deployment is not: a build id names a version of a worker deployment; give --deployment NAME too, or neither to run unversioned")
		}
		return worker.DeploymentOptions{}, nil
	}
	if build == "" {
		build = version
	}
	if strings.Contains(name, ".") {
		return worker.DeploymentOptions{}, fmt.Errorf("--deployment %q: a deployment name may not contain '.' (Temporal joins name and build id with one)", name)
	}
	return worker.DeploymentOptions{
		UseVersioning: true,
		Version:       worker.WorkerDeploymentVersion{DeploymentName: name, BuildID: build},
		// Each workflow's own behavior is given at registration (pools.Behavior).
		DefaultVersioningBehavior: workflow.VersioningBehaviorPinned,
	}, nil
}

// stopAll stops the workers at once, so that none keeps polling while another
// drains, and returns when all have stopped.
func stopAll(workers []worker.Worker) {
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.Stop()
		}()
	}
	wg.Wait()
}

// newLogger returns the process's logger, writing to w in format ("text" or "json")
// at level and above.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
