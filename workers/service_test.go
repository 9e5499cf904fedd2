package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/internal/dev/bintest"
	"github.com/wikimedia/conveyor/internal/dev/devstack"
	"github.com/wikimedia/conveyor/internal/dev/fakegerrit"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/workflows"
)

// serviceConfig is a configuration every pool starts with while no outside
// system but Temporal and Gerrit answers: buildkitd and the cluster are never
// contacted before an activity needs them. Empty fields take working values.
type serviceConfig struct {
	Address    string // temporal.address
	Temporal   string // more fields of temporal, e.g. "tlsCA: /x"
	GerritURL  string
	GerritAuth string // default "password: s3cret"
	Kubeconfig string // default a kubeconfig of an unreachable cluster
	Extra      string // more top-level sections
}

// write writes the configuration into a temporary directory and returns its path.
func (c serviceConfig) write(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if c.Kubeconfig == "" {
		c.Kubeconfig = filepath.Join(dir, "kubeconfig")
		write(t, c.Kubeconfig, `apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
`)
	}
	if c.GerritAuth == "" {
		c.GerritAuth = "password: s3cret"
	}
	path := filepath.Join(dir, "conveyor.yaml")
	write(t, path, fmt.Sprintf(`temporal: {address: %q, %s}
buildkit: {address: "unix://%s/no-buildkitd.sock"}
kubernetes: {kubeconfig: %q}
gerrit: {url: %q, username: bot, %s}
stateDir: %q
%s`, c.Address, c.Temporal, dir, c.Kubeconfig, c.GerritURL, c.GerritAuth, dir, c.Extra))
	return path
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// postReview runs one PostReview on the build pool's task queue, as a
// verification does: it holds an activity on the worker under test.
func postReview(ctx workflow.Context) (contract.ReviewOutput, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           workflows.TaskQueue(workflows.PoolBuild),
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	var out contract.ReviewOutput
	err := workflows.Execute(ctx, contract.PostReview, contract.ReviewInput{
		Project: "hello", Change: 1, Patchset: 1, BuiltCommit: "0123456789abcdef0123456789abcdef01234567",
		Verified: 1, Outcome: contract.OutcomeSucceeded, WorkflowID: "health-test",
	}).Get(ctx, &out)
	return out, err
}

// reviewQueue is where reviewStarter's worker runs postReview.
const reviewQueue = "health-test-starter"

// reviewStarter runs a worker of postReview on reviewQueue, against Temporal at
// address, and returns a client to start it with; both stop when the test ends.
func reviewStarter(t *testing.T, address string) client.Client {
	t.Helper()
	cl, err := client.Dial(client.Options{HostPort: address, Logger: log.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	w := worker.New(cl, reviewQueue, worker.Options{})
	w.RegisterWorkflow(postReview)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return cl
}

var healthAddr = regexp.MustCompile(`"msg":"Serving health endpoints","address":"([^"]+)"`)

// TestWorkerServiceReadinessAndDrain runs the built conveyor-worker with every
// pool against a dev server of its own: /readyz follows Temporal through an outage
// without a restart, and SIGTERM turns it 503 at once while a running activity
// finishes, then the process exits 0.
func TestWorkerServiceReadinessAndDrain(t *testing.T) {
	srv, err := devstack.StartDevServer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	gerrit := fakegerrit.New(t, "bot", "s3cret")
	cfg := serviceConfig{Address: srv.Address, GerritURL: gerrit.URL}.write(t)
	bin := bintest.Build(t, ".")
	p := bintest.Start(t, bin, "--config", cfg, "--health-listen", "127.0.0.1:0", "--log-format", "json", "--shutdown-timeout", "1m")
	base := "http://" + p.WaitForMatch(t, healthAddr, time.Minute)
	live, ready := base+"/healthz", base+"/readyz"

	stacktest.ReadinessThroughOutage(t, srv, base)

	// An activity in flight on the worker under test.
	cl := reviewStarter(t, srv.Address)
	arrived, release := gerrit.Hold()
	defer release()
	run, err := cl.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: reviewQueue}, postReview)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-arrived:
	case <-time.After(time.Minute):
		t.Fatalf("PostReview never reached Gerrit; the worker's output:\n%s", p.Output())
	}

	p.Signal(t, syscall.SIGTERM)
	stacktest.WaitFor(t, 10*time.Second, "/readyz after SIGTERM", stacktest.Answers(ready, http.StatusServiceUnavailable, "shutting down"))
	if err := stacktest.Answers(live, http.StatusServiceUnavailable, "shutting down")(); err != nil {
		t.Error(err)
	}
	if p.Exited() {
		t.Fatalf("the worker exited with an activity running; its output:\n%s", p.Output())
	}
	release()
	code, err := p.Wait(time.Minute)
	if err != nil || code != 0 {
		t.Fatalf("after the drain: exit code %d, %v, want 0; output:\n%s", code, err, p.Output())
	}
	var out contract.ReviewOutput
	if err := run.Get(context.Background(), &out); err != nil || out.Labels["Verified"] != 1 {
		t.Errorf("the activity running at SIGTERM: %+v, %v; want it finished with Verified +1", out, err)
	}
	if !strings.Contains(p.Output(), `"msg":"Draining: signal received`) {
		t.Errorf("the worker did not log its drain:\n%s", p.Output())
	}
}

// TestWorkerRefusesABadConfiguration runs the built conveyor-worker with a
// configuration naming a file that does not exist: it exits non-zero before
// reaching Temporal, naming the configuration key and the file.
func TestWorkerRefusesABadConfiguration(t *testing.T) {
	bin := bintest.Build(t, ".")
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		name  string
		pools string
		cfg   serviceConfig
		want  string
	}{
		{"gerrit password", "build", serviceConfig{GerritAuth: "passwordFile: " + missing},
			"gerrit.passwordFile: open " + missing + ": no such file or directory"},
		{"openstack password", "migrate", serviceConfig{Extra: "openstack: {passwordFile: " + missing + "}"},
			"openstack.passwordFile: open " + missing + ": no such file or directory"},
		{"kubeconfig", "deploy", serviceConfig{Kubeconfig: missing},
			`kubernetes.kubeconfig: reading kubeconfig "` + missing + `"`},
		{"temporal CA", "build", serviceConfig{Temporal: "tlsCA: " + missing},
			"(temporal.tlsCA): open " + missing + ": no such file or directory"},
		{"temporal API key", "build", serviceConfig{Temporal: "apiKeyFile: " + missing},
			"(temporal.apiKeyFile): open " + missing + ": no such file or directory"},
		{"temporal client certificate", "build", serviceConfig{Temporal: "tlsCert: " + missing + ", tlsKey: " + missing},
			"(temporal.tlsCert " + missing + ", temporal.tlsKey " + missing + "): open " + missing + ": no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Nothing listens on port 1: no case may get as far as dialing Temporal.
			tc.cfg.Address, tc.cfg.GerritURL = "127.0.0.1:1", "http://127.0.0.1:1"
			code, out := bintest.Run(t, bin, "--config", tc.cfg.write(t), "--pools", tc.pools)
			if code == 0 || !strings.Contains(out, tc.want) {
				t.Errorf("exit code %d, output:\n%s\nwant a non-zero exit and %q", code, out, tc.want)
			}
		})
	}
	t.Run("config file", func(t *testing.T) {
		code, out := bintest.Run(t, bin, "--config", missing)
		if want := "--config: reading configuration: open " + missing + ": no such file or directory"; code == 0 || !strings.Contains(out, want) {
			t.Errorf("exit code %d, output:\n%s\nwant a non-zero exit and %q", code, out, want)
		}
	})
}
