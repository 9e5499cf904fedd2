package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"go.temporal.io/sdk/worker"

	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/workers/pools"
	"github.com/wikimedia/conveyor/workflows"
)

// run is conveyor-worker's action: flags and environment, configuration, client,
// one worker per pool, then wait for a signal.
func run(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: conveyor-worker takes only flags (see --help)", c.Args().Slice())
	}
	selected, err := workflows.ParsePools(c.StringSlice("pools"))
	if err != nil {
		return fmt.Errorf("--pools: %w", err)
	}
	logger, err := newLogger(c.App.ErrWriter, c.String("log-format"), c.String("log-level"))
	if err != nil {
		return err
	}
	cfgPath := c.String("config")
	cfg, err := config.Load(config.Path(cfgPath), cfgPath != "")
	if err != nil {
		return err
	}
	temporalclient.ApplyFlags(c, &cfg.Temporal)

	host, err := os.Hostname()
	if err != nil {
		host = "unknown-host"
	}
	base := fmt.Sprintf("%d@%s@conveyor-worker", os.Getpid(), host)
	cl, err := temporalclient.Dial(c.Context, cfg.Temporal, logger, temporalclient.WithIdentity(base))
	if err != nil {
		return err
	}
	defer cl.Close()

	fatal := make(chan error, len(selected))
	var workers []worker.Worker
	var sets []pools.Set
	defer func() {
		for i := len(workers) - 1; i >= 0; i-- {
			workers[i].Stop()
		}
		for _, s := range sets {
			if err := s.Close(); err != nil {
				logger.Warn("Closing activities", "error", err)
			}
		}
	}()
	for _, p := range selected {
		id := base + "/" + p
		set, err := pools.For(c.Context, p, pools.Deps{Pool: p, Identity: id, Config: cfg, Logger: logger.With("pool", p)})
		if err != nil {
			return err
		}
		sets = append(sets, set)
		w := worker.New(cl, workflows.TaskQueue(p), worker.Options{
			Identity:          id,
			WorkerStopTimeout: c.Duration("shutdown-timeout"),
			OnFatalError:      func(err error) { fatal <- fmt.Errorf("worker for pool %s stopped: %w", p, err) },
		})
		set.Register(w)
		if err := w.Start(); err != nil {
			return fmt.Errorf("starting the worker for pool %s: %w", p, err)
		}
		workers = append(workers, w)
		logger.Info("Worker started", "pool", p, "taskQueue", workflows.TaskQueue(p), "identity", id)
	}
	logger.Info("Serving", "version", version, "pools", strings.Join(selected, ","), "address", cfg.Temporal.Address, "namespace", cfg.Temporal.Namespace)

	select {
	case <-worker.InterruptCh():
		logger.Info("Stopping workers: signal received")
		return nil
	case err := <-fatal:
		return err
	case <-c.Context.Done():
		return nil
	}
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
