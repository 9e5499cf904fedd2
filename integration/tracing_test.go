package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/internal/client/triggers"
	"github.com/wikimedia/conveyor/internal/dev/fakegerrit"
	"github.com/wikimedia/conveyor/internal/dev/gittest"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
)

// tracingNamespace keeps this test's workflows to the worker it starts.
const tracingNamespace = "conveyor-tracing-it"

// TestOneTraceFromWebhookToVote delivers patchset-created to the real receiver
// (conveyor gerrit serve) and lets the real worker verify the change, both
// exporting to the stack's Jaeger as the stack's configuration says. The
// Verified vote the fake Gerrit receives carries a traceparent; the trace it
// names holds the webhook request (the root), the workflows it started, their
// activities, the BuildKit and Helm calls and the vote itself.
func TestOneTraceFromWebhookToVote(t *testing.T) {
	nsCfg := stacktest.Namespace(t, tracingNamespace)
	if nsCfg.Tracing.Endpoint == "" {
		t.Fatal("the stack's configuration sets no tracing.endpoint: restart the stack (make down up) with this tree")
	}
	image := uniqueImage(t, "traced")
	project := "it/" + image
	const change = 4301
	dir, ref := serviceRepo(t, image, change, nil)
	revision := gittest.Git(t, dir, "rev-parse", ref)
	fake := fakegerrit.New(t, "conveyor-bot", "http-password-"+randomHex(t)[:8])
	gerritEnv := []string{
		"CONVEYOR_GERRIT_URL=" + fake.URL,
		"CONVEYOR_GERRIT_USERNAME=" + fake.Username,
		"CONVEYOR_GERRIT_PASSWORD=" + fake.Password,
	}
	startLoggedWorker(t, gerritEnv, "--namespace", tracingNamespace, "--pools", "build,deploy")
	endpoint := startReceiver(t, gerritEnv, fmt.Sprintf("projects: [{name: %q, repo: %q, branches: [main]}]\n", project, dir))

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	code, err := fakegerrit.Deliver(ctx, http.DefaultClient, endpoint, "https://gerrit.example.org/r/", patchsetCreated(project, change, revision))
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("delivering patchset-created: %d %v", code, err)
	}
	review, err := fake.WaitForReview(ctx, func(r fakegerrit.Review) bool { return r.Change == fmt.Sprintf("%s~%d", project, change) })
	if err != nil {
		t.Fatalf("no review for %s~%d: %v", project, change, err)
	}
	if review.Labels["Verified"] != 1 {
		t.Fatalf("review %+v, want Verified +1", review)
	}
	// traceparent: version-traceid-parentid-flags.
	parts := strings.Split(review.TraceParent, "-")
	if len(parts) != 4 || len(parts[1]) != 32 {
		t.Fatalf("the vote's traceparent header is %q: want 00-<trace id>-<span id>-<flags>", review.TraceParent)
	}
	traceID := parts[1]

	// What the trace must hold: service and operation (a prefix ending in ":"
	// matches any workflow or activity type).
	want := []struct{ service, op string }{
		{"conveyor-gerrit", "gerrit event"},
		{"conveyor-gerrit", "StartWorkflow:"},
		{"conveyor-worker", "RunWorkflow:"},
		{"conveyor-worker", "RunActivity:BuildVariant"},
		{"conveyor-worker", "buildkit solve"},
		{"conveyor-worker", "helm install"},
		{"conveyor-worker", "helm test"},
		{"conveyor-worker", "e2e GET"},
		{"conveyor-worker", "RunActivity:PostReview"},
		{"conveyor-worker", "gerrit review"},
		{"conveyor-worker", "gerrit POST"},
	}
	var spans []stacktest.Span
	stacktest.WaitFor(t, 90*time.Second, "Jaeger holding trace "+traceID, func() error {
		if spans, err = stacktest.Trace(ctx, traceID); err != nil {
			return err
		}
		var missing []string
		for _, w := range want {
			if !slices.ContainsFunc(spans, func(s stacktest.Span) bool { return s.Service == w.service && strings.HasPrefix(s.Operation, w.op) }) {
				missing = append(missing, w.service+" "+w.op)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%d spans, none of %q", len(spans), missing)
		}
		return nil
	})

	byID := map[string]stacktest.Span{}
	var roots []stacktest.Span
	for _, s := range spans {
		byID[s.SpanID] = s
		if s.Parent == "" {
			roots = append(roots, s)
		}
	}
	if len(roots) != 1 || roots[0].Operation != "gerrit event" || roots[0].Tags["gerrit.project"] != project {
		t.Errorf("roots of the trace: %+v, want the one webhook request of %s", roots, project)
	}
	// The vote's span is under the PostReview activity, and records the vote.
	for _, s := range spans {
		if s.Operation != "gerrit review" {
			continue
		}
		if parent := byID[s.Parent]; parent.Operation != "RunActivity:PostReview" {
			t.Errorf("the vote's span is a child of %q, want RunActivity:PostReview", parent.Operation)
		}
		if v := fmt.Sprint(s.Tags["gerrit.verified"]); v != "1" {
			t.Errorf("the vote's span records gerrit.verified=%s, want 1", v)
		}
	}
}

// startReceiver runs `conveyor gerrit serve` with the stack's configuration and
// the triggers file triggersYAML, in tracingNamespace, and returns its events
// endpoint once /readyz answers.
func startReceiver(t *testing.T, env []string, triggersYAML string) string {
	t.Helper()
	dir := t.TempDir()
	tf := filepath.Join(dir, "triggers.yaml")
	if err := os.WriteFile(tf, []byte(triggersYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	out := &syncBuffer{}
	cmd := exec.Command(filepath.Join(binDir, "conveyor"), "--config", stackConfigPath(), "gerrit", "serve",
		"--triggers", tf, "--listen", addr, "--no-sync", "--namespace", tracingNamespace)
	cmd.Env = append(append(os.Environ(), env...), "CONVEYOR_WEBHOOK_SECRET="+webhookSecret)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// SIGTERM: the receiver sends its last spans as it stops.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_, _ = cmd.Process.Wait()
		if t.Failed() {
			t.Logf("receiver output:\n%s", out.String())
		}
	})
	stacktest.WaitForOK(t, 60*time.Second, "http://"+addr+"/readyz")
	return "http://" + addr + triggers.EventsPath + "/" + webhookSecret
}
