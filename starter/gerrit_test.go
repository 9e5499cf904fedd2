package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/workflows/changes"

	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// TestGerritHookStartsAVerification runs the hooks plugin's script line against
// the real dev server (in a namespace of its own, with no worker).
func TestGerritHookStartsAVerification(t *testing.T) {
	cfg := stacktest.Namespace(t, "conveyor-triggers-test")
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	project := "it/hook-" + hex.EncodeToString(b)
	triggersFile := filepath.Join(t.TempDir(), "triggers.yaml")
	if err := os.WriteFile(triggersFile, []byte("projects: [{name: "+project+", repo: /srv/nowhere, branches: [main]}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runConveyor(t, "--config", filepath.Join(cfg.StateDir, config.FileName), "gerrit", "hook",
		"--triggers", triggersFile, "--namespace", cfg.Temporal.Namespace,
		"patchset-created", "--change", "I8473b95934b5732ac55d26311a706c9c2bde9940", "--kind", "REWORK",
		"--change-url", "https://gerrit.example.org/r/c/"+project+"/+/1234", "--change-owner", "Ada (ada@example.org)",
		"--change-owner-username", "ada", "--project", project, "--branch", "main", "--topic", "",
		"--uploader", "Ada (ada@example.org)", "--uploader-username", "ada",
		"--commit", "3f1c2a9d8e7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d", "--patchset", "3")
	if err != nil {
		t.Fatalf("conveyor gerrit hook: %v\n%s", err, out)
	}
	id := changes.VerifyID(project, 1234, 3, "")
	if !strings.Contains(out, `"action":"verify"`) || !strings.Contains(out, `"workflowId":"`+id+`"`) {
		t.Errorf("output %s, want the verification %s", out, id)
	}
	c, err := temporalclient.Dial(context.Background(), cfg.Temporal, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer func() { _ = c.TerminateWorkflow(context.Background(), id, "", "test cleanup") }()
	d, err := c.DescribeWorkflowExecution(context.Background(), id, "")
	if err != nil {
		t.Fatalf("the hook's workflow: %v", err)
	}
	if d.GetWorkflowExecutionInfo().GetType().GetName() != "ChangeVerification" {
		t.Errorf("started a %s", d.GetWorkflowExecutionInfo().GetType().GetName())
	}

	// A branch the file does not enable: nothing starts, and the output says why.
	out, err = runConveyor(t, "--config", filepath.Join(cfg.StateDir, config.FileName), "gerrit", "hook",
		"--triggers", triggersFile, "--namespace", cfg.Temporal.Namespace,
		"patchset-created", "--change", "1235", "--project", project, "--branch", "stable", "--patchset", "1")
	if err != nil || !strings.Contains(out, `"action":"ignore"`) || !strings.Contains(out, `branch \"stable\"`) {
		t.Errorf("disabled branch: %v\n%s", err, out)
	}
}

func TestGerritHookArgumentErrors(t *testing.T) {
	triggersFile := filepath.Join(t.TempDir(), "triggers.yaml")
	_ = os.WriteFile(triggersFile, []byte("projects: []\n"), 0o600)
	wantCLIErrors(t, []cliError{
		{[]string{"gerrit", "hook", "--triggers", triggersFile}, "give the event's name"},
		{[]string{"gerrit", "hook", "--triggers", triggersFile, "patchset-created", "--change"}, "--change has no value"},
		{[]string{"gerrit", "hook", "--triggers", triggersFile, "patchset-created", "stray"}, `"stray" at position 1 is not an option`},
		{[]string{"gerrit", "serve", "--triggers", "/nonexistent/triggers.yaml"}, "reading the triggers file"},
		{[]string{"trigger", "pause", "nope"}, `"nope" names no trigger: want nightly/<project>/<branch>, batch/<project>/<branch> or basecheck`},
		{[]string{"trigger", "resume", "--address", "127.0.0.1:1", "batch/p/main"}, "cannot reach Temporal"},
		{[]string{"trigger", "run", "batch/p/main", "extra"}, "give one trigger id"},
	})
}

// TestGerritServeAcceptsAnEvent runs `conveyor gerrit serve` against the dev server
// (in a namespace of its own) and delivers one event with the secret from
// CONVEYOR_WEBHOOK_SECRET, one without, one with its project's own secret
// (projects[].webhookSecretFile) and one of another project with that secret.
func TestGerritServeAcceptsAnEvent(t *testing.T) {
	cfg := stacktest.Namespace(t, "conveyor-triggers-test")
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	project := "it/serve-" + hex.EncodeToString(b)
	own := project + "-own"
	dir := t.TempDir()
	triggersFile := filepath.Join(dir, "triggers.yaml")
	const ownSecret = "serve-test-own-secret-0123456789"
	if err := os.WriteFile(filepath.Join(dir, "own-secret"), []byte(ownSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(triggersFile, []byte("projects: [{name: "+project+", repo: /srv/nowhere}, {name: "+own+", repo: /srv/nowhere, webhookSecretFile: own-secret}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"TEMPORAL_ADDRESS", "CONVEYOR_CONFIG", "CONVEYOR_STATE_DIR", "CONVEYOR_TRIGGERS"} {
		t.Setenv(v, "")
	}
	const secret = "serve-test-secret-0123456789"
	t.Setenv("CONVEYOR_WEBHOOK_SECRET", secret)
	app := newApp()
	out := &syncBuffer{}
	app.Writer, app.ErrWriter = out, out
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.RunContext(ctx, []string{"conveyor", "--config", filepath.Join(cfg.StateDir, config.FileName), "gerrit", "serve",
			"--triggers", triggersFile, "--namespace", cfg.Temporal.Namespace, "--listen", "127.0.0.1:0", "--no-sync"})
	}()
	var base string
	waitFor(t, "the listening address", func() bool {
		_, rest, ok := strings.Cut(out.String(), "listening on ")
		base, _, _ = strings.Cut(rest, "/gerrit/events")
		return ok && strings.Contains(rest, "\n")
	})
	// It listens at once and refuses events (503) until it has reached Temporal.
	stacktest.WaitForOK(t, 30*time.Second, base+"/readyz")
	event := `{"type":"patchset-created","change":{"project":"P","branch":"main","number":77},"patchSet":{"number":1},"eventCreatedOn":1767225601}`
	body, ownBody := strings.ReplaceAll(event, "P", project), strings.ReplaceAll(event, "P", own)
	for _, tc := range []struct {
		path, body string
		want       int
	}{
		{"/gerrit/events/" + secret, body, http.StatusAccepted},
		{"/gerrit/events/not-the-secret-0123456789", body, http.StatusUnauthorized},
		{"/gerrit/events/" + ownSecret, ownBody, http.StatusAccepted},
		{"/gerrit/events/" + ownSecret, body, http.StatusForbidden},
	} {
		resp, err := http.Post(base+tc.path, "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("POST %s: %d, want %d\n%s", strings.NewReplacer(secret, "<secret>", ownSecret, "<own secret>").Replace(tc.path), resp.StatusCode, tc.want, out.String())
		}
	}
	// /metrics counts the answers by code and event type: two acted on, one
	// refused unparsed (401: no type), one refused as another project's.
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantLines(t, "/metrics", string(metrics),
		`conveyor_webhook_events_total{code="202",type="patchset-created"} 2`,
		`conveyor_webhook_events_total{code="401",type=""} 1`,
		`conveyor_webhook_events_total{code="403",type="patchset-created"} 1`,
		"temporal_request_total{")
	c, err := temporalclient.Dial(context.Background(), cfg.Temporal, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range []string{project, own} {
		id := changes.VerifyID(p, 77, 1, "")
		if err := c.TerminateWorkflow(context.Background(), id, "", "test cleanup"); err != nil {
			t.Errorf("the event's workflow %s: %v", id, err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve returned %v after the context ended", err)
	}
	if strings.Contains(out.String(), secret) || strings.Contains(out.String(), ownSecret) {
		t.Error("serve printed a secret")
	}
}
