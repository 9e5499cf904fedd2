package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/internal/dev/bintest"
	"github.com/wikimedia/conveyor/internal/dev/devstack"
	"github.com/wikimedia/conveyor/internal/dev/fakegerrit"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
)

// unreachable matches the worker's log of a failed attempt to reach Temporal;
// its group is the delay before the next one.
var unreachable = regexp.MustCompile(`"msg":"Temporal is unreachable: trying again".*?"retryIn":"([^"]+)"`)

// absentTemporal returns the address of a loopback port nothing listens on, and
// the port, for a dev server started there later.
func absentTemporal(t *testing.T) (string, int) {
	t.Helper()
	port, err := devstack.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), port
}

// startWorker starts the built conveyor-worker with the build pool against
// Temporal at address (and namespace, if not empty), and returns it with the base
// URL of its health endpoints.
func startWorker(t *testing.T, address, namespace string) (*bintest.Process, string) {
	t.Helper()
	gerrit := fakegerrit.New(t, "bot", "s3cret")
	extra := ""
	if namespace != "" {
		extra = "namespace: " + namespace
	}
	cfg := serviceConfig{Address: address, Temporal: extra, GerritURL: gerrit.URL}.write(t)
	p := bintest.Start(t, bintest.Build(t, "."), "--config", cfg, "--pools", "build", "--health-listen", "127.0.0.1:0", "--log-format", "json")
	return p, "http://" + p.WaitForMatch(t, healthAddr, time.Minute)
}

// TestWorkerStartedBeforeTemporal runs the built conveyor-worker against an
// address where nothing listens yet: it stays up, live and not ready, saying
// Temporal is unreachable there and retrying with a growing backoff; once a dev
// server starts on that address it becomes ready and runs an activity, without a
// restart.
func TestWorkerStartedBeforeTemporal(t *testing.T) {
	address, port := absentTemporal(t)
	p, base := startWorker(t, address, "")
	stacktest.WaitFor(t, 30*time.Second, "/readyz before Temporal is up",
		stacktest.Answers(base+"/readyz", http.StatusServiceUnavailable, "temporal: unreachable at "+address+": "))
	if err := stacktest.Answers(base+"/healthz", http.StatusOK, "ok")(); err != nil {
		t.Error(err)
	}
	// The retries back off: the fourth waits 4s, so the log is not flooded.
	p.WaitForMatch(t, regexp.MustCompile(`"msg":"Temporal is unreachable: trying again".*"retryIn":"4s"`), time.Minute)
	if n := len(unreachable.FindAllString(p.Output(), -1)); n > 4 {
		t.Errorf("%d failed attempts logged before the one that waits 4s, want 4:\n%s", n, p.Output())
	}

	srv, err := devstack.StartDevServer(context.Background(), devstack.WithPort(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	stacktest.WaitFor(t, time.Minute, "/readyz once Temporal is up", stacktest.Answers(base+"/readyz", http.StatusOK, "ready"))
	p.WaitForMatch(t, regexp.MustCompile(`"msg":"Temporal answers","address":"`+regexp.QuoteMeta(address)+`"`), time.Second)

	cl := reviewStarter(t, address)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := cl.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: reviewQueue}, postReview)
	if err != nil {
		t.Fatal(err)
	}
	var out contract.ReviewOutput
	if err := run.Get(ctx, &out); err != nil || out.Labels["Verified"] != 1 {
		t.Fatalf("PostReview on the worker started before Temporal: %+v, %v; want Verified +1; its output:\n%s", out, err, p.Output())
	}
	p.Signal(t, syscall.SIGTERM)
	if code, err := p.Wait(time.Minute); err != nil || code != 0 {
		t.Fatalf("after SIGTERM: exit code %d, %v, want 0; output:\n%s", code, err, p.Output())
	}
}

// TestWorkerStopsPromptlyWhileWaitingForTemporal sends SIGTERM to a worker that
// has never reached Temporal: it exits 0 at once.
func TestWorkerStopsPromptlyWhileWaitingForTemporal(t *testing.T) {
	address, _ := absentTemporal(t)
	p, _ := startWorker(t, address, "")
	p.WaitForMatch(t, unreachable, time.Minute)
	p.Signal(t, syscall.SIGTERM)
	if code, err := p.Wait(5 * time.Second); err != nil || code != 0 {
		t.Fatalf("SIGTERM while waiting for Temporal: exit code %d, %v, want 0 within 5s; output:\n%s", code, err, p.Output())
	}
	if out := p.Output(); !strings.Contains(out, `"msg":"Stopping: signal received while waiting for Temporal"`) {
		t.Errorf("the worker did not say why it stopped:\n%s", out)
	}
}

// TestWorkerRefusesANamespaceThatDoesNotExist starts the built conveyor-worker
// before Temporal, with a namespace that the dev server then started does not
// have: once Temporal answers the worker exits non-zero naming the namespace.
func TestWorkerRefusesANamespaceThatDoesNotExist(t *testing.T) {
	address, port := absentTemporal(t)
	p, _ := startWorker(t, address, "conveyor-nosuch")
	p.WaitForMatch(t, unreachable, time.Minute)
	srv, err := devstack.StartDevServer(context.Background(), devstack.WithPort(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	code, err := p.Wait(time.Minute)
	want := fmt.Sprintf(`namespace "conveyor-nosuch" does not exist on Temporal at %s: set temporal.namespace`, address)
	if err != nil || code == 0 || !strings.Contains(p.Output(), want) {
		t.Fatalf("exit code %d, %v, output:\n%s\nwant a non-zero exit and %q", code, err, p.Output(), want)
	}
}
