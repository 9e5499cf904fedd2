package main

// The benchmark's worker pools: one Temporal worker per pool, registered as
// conveyor-worker registers it (the workflows of workers/pools.Registry and the
// health activities) but with the pipeline's activities stubbed. By default each
// pool runs in a process of its own, this program started again with the
// environment below, so that its RSS is the pool's alone.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/wikimedia/conveyor/activities/health"
	inthealth "github.com/wikimedia/conveyor/internal/client/health"
	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/workers/pools"
	"github.com/wikimedia/conveyor/workflows"
)

// The environment of a pool's process: the pool, the Temporal it polls, and its
// identity. Set, the program serves that pool until its standard input closes.
const (
	envPool      = "CONVEYOR_BENCH_POOL"
	envAddress   = "CONVEYOR_BENCH_ADDRESS"
	envNamespace = "CONVEYOR_BENCH_NAMESPACE"
	envIdentity  = "CONVEYOR_BENCH_IDENTITY"
	// envTelemetry is the OTLP endpoint of an instrumented pool (-overhead);
	// empty, the pool has neither metrics nor tracing.
	envTelemetry = "CONVEYOR_BENCH_TELEMETRY"
)

// identityPrefix starts the identity of every worker of the benchmark; a poller
// of the benchmark's queues without it is someone else's.
const identityPrefix = "conveyor-bench-pipelines/"

// newPoolWorker makes pool's worker on cl: production's worker options, the
// workflows workers/pools runs on the pool, the health activities and the stubs.
func newPoolWorker(cl client.Client, pool, identity string, fatal func(error)) worker.Worker {
	w := worker.New(cl, workflows.TaskQueue(pool), worker.Options{Identity: identity, OnFatalError: fatal})
	set := pools.Set{Activities: []any{&health.Activities{Pool: pool, Identity: identity}}}
	for _, e := range pools.Registry {
		if slices.Contains(e.Pools, pool) {
			set.Workflows = append(set.Workflows, e.Workflows...)
		}
	}
	set.Register(w, false)
	registerStubs(w, pool)
	return w
}

// runningPool is one pool's worker, started.
type runningPool struct {
	pool, identity string
	// pid is its process, 0 for this one.
	pid  int
	stop func() error
}

// startPools starts the benchmark's pools, in processes of their own unless
// inline, and returns once Temporal lists their pollers.
// With a telemetry endpoint the pools are instrumented as conveyor-worker is
// with tracing on (instrument).
func startPools(ctx context.Context, cl client.Client, cfg config.Temporal, inline bool, telemetryEndpoint string) ([]*runningPool, error) {
	var out []*runningPool
	stopAll := func() {
		for _, p := range out {
			_ = p.stop()
		}
	}
	for _, pool := range benchPools {
		identity := fmt.Sprintf("%s%d/%s", identityPrefix, os.Getpid(), pool)
		var p *runningPool
		var err error
		if inline {
			p, err = startInline(ctx, cl, cfg, pool, identity, telemetryEndpoint)
		} else {
			p, err = spawnPool(ctx, cfg, pool, identity, telemetryEndpoint)
		}
		if err != nil {
			stopAll()
			return nil, fmt.Errorf("starting the %s pool's worker: %w", pool, err)
		}
		out = append(out, p)
	}
	if err := awaitPollers(ctx, cl, out); err != nil {
		stopAll()
		return nil, err
	}
	return out, nil
}

// startInline starts pool's worker in this process: on cl when bare, on a
// client of its own when instrumented.
func startInline(ctx context.Context, cl client.Client, cfg config.Temporal, pool, identity, telemetryEndpoint string) (*runningPool, error) {
	closeClient := func() {}
	if telemetryEndpoint != "" {
		var err error
		if cl, closeClient, err = dialPool(ctx, cfg, identity, telemetryEndpoint, quietLogger()); err != nil {
			return nil, err
		}
	}
	w := newPoolWorker(cl, pool, identity, nil)
	if err := w.Start(); err != nil {
		closeClient()
		return nil, err
	}
	return &runningPool{pool: pool, identity: identity, stop: func() error { w.Stop(); closeClient(); return nil }}, nil
}

// spawnPool runs pool's worker in a process of its own: this program again, with
// the pool in its environment. It returns once the process says it started.
func spawnPool(ctx context.Context, cfg config.Temporal, pool, identity, telemetryEndpoint string) (*runningPool, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), envPool+"="+pool, envAddress+"="+cfg.Address, envNamespace+"="+cfg.Namespace, envIdentity+"="+identity, envTelemetry+"="+telemetryEndpoint)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() error {
		_ = stdin.Close()
		return cmd.Wait()
	}
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("said %q instead of ready", line)
		}
		ready <- err
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case err = <-ready:
	case <-time.After(time.Minute):
		err = errors.New("not started after a minute")
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		_ = cmd.Process.Kill()
		_ = stop()
		return nil, fmt.Errorf("the worker process (pid %d): %w", cmd.Process.Pid, err)
	}
	return &runningPool{pool: pool, identity: identity, pid: cmd.Process.Pid, stop: stop}, nil
}

// servePool is the main of a pool's process: it serves the pool named in the
// environment, says "ready" on its standard output once the worker started, and
// stops when its standard input closes (the benchmark is done or died).
func servePool(pool string) error {
	cfg := config.Defaults().Temporal
	cfg.Address, cfg.Namespace = os.Getenv(envAddress), os.Getenv(envNamespace)
	identity := os.Getenv(envIdentity)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	cl, closeClient, err := dialPool(context.Background(), cfg, identity, os.Getenv(envTelemetry), logger)
	if err != nil {
		return err
	}
	defer closeClient()
	fatal := make(chan error, 1)
	w := newPoolWorker(cl, pool, identity, func(err error) { fatal <- err })
	if err := w.Start(); err != nil {
		return err
	}
	defer w.Stop()
	fmt.Println("ready")
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	select {
	case <-eof:
		return nil
	case err := <-fatal:
		return fmt.Errorf("the %s pool's worker stopped: %w", pool, err)
	}
}

// awaitPollers waits until Temporal lists every pool's pollers on both sides of
// its queue, then checks that no worker but the benchmark's polls the queues: a
// namespace of its own should see no other.
func awaitPollers(ctx context.Context, cl client.Client, ps []*runningPool) error {
	var started atomic.Bool
	started.Store(true)
	for _, p := range ps {
		check := inthealth.PollersCheck(cl, workflows.TaskQueue(p.pool), p.identity, &started)
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := check(ctx)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the %s pool's worker does not poll after 30s: %w", p.pool, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
		for _, typ := range []enumspb.TaskQueueType{enumspb.TASK_QUEUE_TYPE_WORKFLOW, enumspb.TASK_QUEUE_TYPE_ACTIVITY} {
			resp, err := cl.DescribeTaskQueue(ctx, workflows.TaskQueue(p.pool), typ)
			if err != nil {
				return fmt.Errorf("describing task queue %s: %w", workflows.TaskQueue(p.pool), err)
			}
			for _, poller := range resp.GetPollers() {
				if !strings.HasPrefix(poller.GetIdentity(), identityPrefix) {
					return fmt.Errorf("task queue %s of the benchmark's namespace is also polled by %s: that worker would take the benchmark's tasks; stop it or give another -namespace",
						workflows.TaskQueue(p.pool), poller.GetIdentity())
				}
			}
		}
	}
	return nil
}
