package health_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/internal/client/health"
	"github.com/wikimedia/conveyor/internal/dev/devstack"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
)

// devServer starts a throwaway Temporal dev server on a free loopback port, or
// fails the test saying how to build it.
func devServer(t *testing.T) *devstack.DevServer {
	t.Helper()
	s, err := devstack.StartDevServer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

func TestReadinessFollowsTemporalAndRecoversWithoutARestart(t *testing.T) {
	srv := devServer(t)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	// A lazy client, as a process started before Temporal would hold.
	cl, err := client.NewLazyClient(client.Options{HostPort: srv.Address, Logger: quiet{}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	probe, err := health.New(cl, health.WithInterval(200*time.Millisecond), health.WithTimeout(time.Second), health.WithTemporalAddress(srv.Address))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go probe.Run(ctx)
	hs := httptest.NewServer(probe.Handler())
	defer hs.Close()
	live, ready := hs.URL+health.LivePath, hs.URL+health.ReadyPath

	stacktest.WaitFor(t, 30*time.Second, "/readyz before Temporal is up", stacktest.Answers(ready, http.StatusServiceUnavailable, "temporal: unreachable at "+srv.Address+": "))
	if err := stacktest.Answers(live, http.StatusOK, "ok")(); err != nil {
		t.Error(err)
	}
	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	stacktest.ReadinessThroughOutage(t, srv, hs.URL)

	probe.Drain()
	for _, url := range []string{live, ready} {
		if err := stacktest.Answers(url, http.StatusServiceUnavailable, "shutting down")(); err != nil {
			t.Errorf("after Drain: %v", err)
		}
	}
}

func TestReadinessNamesTheFailingCheck(t *testing.T) {
	srv := devServer(t)
	cl, err := client.Dial(client.Options{HostPort: srv.Address, Logger: quiet{}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var broken atomic.Bool
	broken.Store(true)
	probe, err := health.New(cl, health.WithInterval(100*time.Millisecond),
		health.WithCheck("pool build", func(context.Context) error {
			if broken.Load() {
				return fmt.Errorf("no pollers\nyet")
			}
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go probe.Run(ctx)
	hs := httptest.NewServer(probe.Handler())
	defer hs.Close()
	stacktest.WaitFor(t, 10*time.Second, "a failing check", stacktest.Answers(hs.URL+health.ReadyPath, http.StatusServiceUnavailable, "not ready:\npool build: no pollers yet\n"))
	broken.Store(false)
	stacktest.WaitFor(t, 10*time.Second, "the check passing", stacktest.Answers(hs.URL+health.ReadyPath, http.StatusOK, "ready"))
}

func TestPollersCheckWaitsForTheWorkersPollers(t *testing.T) {
	srv := devServer(t)
	cl, err := client.Dial(client.Options{HostPort: srv.Address, Logger: quiet{}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const queue, identity = "health-test", "42@test@health-test"
	var started atomic.Bool
	check := health.PollersCheck(cl, queue, identity, &started)
	ctx := context.Background()
	if err := check(ctx); err == nil || !strings.Contains(err.Error(), "has not started") {
		t.Errorf("before the start: %v, want an error saying the worker has not started", err)
	}
	started.Store(true)
	if err := check(ctx); err == nil || !strings.Contains(err.Error(), "no workflow poller of "+identity) {
		t.Errorf("started but not polling: %v, want an error naming the missing poller", err)
	}
	w := worker.New(cl, queue, worker.Options{Identity: identity})
	w.RegisterWorkflowWithOptions(func(workflow.Context) error { return nil }, workflow.RegisterOptions{Name: "Noop"})
	w.RegisterActivityWithOptions(func(context.Context) error { return nil }, activity.RegisterOptions{Name: "Noop"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	stacktest.WaitFor(t, 30*time.Second, "the worker's pollers on "+queue, func() error { return check(ctx) })
}

func TestOptionsRefuseBadValues(t *testing.T) {
	cl, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		opt  health.Option
		want string
	}{
		{health.WithInterval(0), "health.WithInterval: want a positive duration"},
		{health.WithTimeout(-time.Second), "health.WithTimeout: want a positive duration"},
		{health.WithCheck("", nil), "health.WithCheck: want a name and a check"},
		{health.WithTemporalAddress(""), "health.WithTemporalAddress: empty address"},
	} {
		if _, err := health.New(cl, tc.opt); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New: %v, want an error containing %q", err, tc.want)
		}
	}
	if _, err := health.New(nil); err == nil {
		t.Error("New(nil) succeeded")
	}
}

// quiet keeps the SDK from logging every failed call while Temporal is down.
type quiet struct{}

func (quiet) Debug(string, ...any) {}
func (quiet) Info(string, ...any)  {}
func (quiet) Warn(string, ...any)  {}
func (quiet) Error(string, ...any) {}
