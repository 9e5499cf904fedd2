package temporalclient_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/wikimedia/conveyor/internal/client/payloadcrypt"
	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/internal/dev/devstack"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// The secrets a workflow of the test carries, as a deploy's Helm values and a
// registry login would.
const (
	helmSecret     = "helm-values-db-password-5f0c2e9a"
	registrySecret = "registry-push-token-91d7b3c4"
)

type secretInput struct {
	Values   map[string]string
	Password string
}

// loginActivity fails once, quoting the password as a careless error would,
// then answers with it.
func loginActivity(_ context.Context, in secretInput, attempt int) (string, error) {
	if attempt == 1 {
		return "", temporal.NewNonRetryableApplicationError("login with "+in.Password+" refused", "LoginRefused", nil)
	}
	return "token for " + in.Password, nil
}

// secretWorkflow passes its input to activities, keeps part of it in its memo
// and returns it: every kind of payload a history holds.
func secretWorkflow(ctx workflow.Context, in secretInput) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	if err := workflow.UpsertMemo(ctx, map[string]any{"values": in.Values}); err != nil {
		return "", err
	}
	var out string
	err := workflow.ExecuteActivity(ctx, loginActivity, in, 1).Get(ctx, &out)
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != "LoginRefused" {
		return "", fmt.Errorf("the first login: %v, want LoginRefused", err)
	}
	if err := workflow.ExecuteActivity(ctx, loginActivity, in, 2).Get(ctx, &out); err != nil {
		return "", err
	}
	return out + " / " + in.Values["db.password"], nil
}

// runSecretWorkflow runs secretWorkflow on srv through a client and a worker
// made from cfg and returns its history.
func runSecretWorkflow(t *testing.T, cfg config.Temporal, id string) *historypb.History {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := temporalclient.Dial(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	queue := "codec-test-" + id
	w := worker.New(cl, queue, worker.Options{})
	w.RegisterWorkflow(secretWorkflow)
	w.RegisterActivity(loginActivity)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	run, err := cl.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue},
		secretWorkflow, secretInput{Values: map[string]string{"db.password": helmSecret}, Password: registrySecret})
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := run.Get(ctx, &out); err != nil {
		t.Fatalf("workflow %s: %v", id, err)
	}
	if want := "token for " + registrySecret + " / " + helmSecret; out != want {
		t.Errorf("workflow %s returned %q, want %q", id, out, want)
	}
	return stacktest.History(t, cl, id, run.GetRunID())
}

// devServerAndKey starts a throwaway dev server on a free port and makes a
// payload key file with one key, k1.
func devServerAndKey(t *testing.T) (*devstack.DevServer, string) {
	t.Helper()
	srv, err := devstack.StartDevServer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	keys := filepath.Join(t.TempDir(), "payload-keys")
	if err := payloadcrypt.EnsureKeyFile(keys, "k1"); err != nil {
		t.Fatal(err)
	}
	return srv, keys
}

// TestPayloadKeyKeepsSecretsOutOfHistories runs a workflow whose input carries
// secrets on a real Temporal (a throwaway dev server on a free port, not the
// stack's), with the stack's kind of configuration: with temporal.payloadKeyFile
// its history holds no secret in the clear; without, the same scan finds them.
func TestPayloadKeyKeepsSecretsOutOfHistories(t *testing.T) {
	srv, keys := devServerAndKey(t)
	base := config.Temporal{Address: srv.Address, Namespace: "default"}

	on := base
	on.PayloadKeyFile = keys
	h := runSecretWorkflow(t, on, "with-key")
	stacktest.AssertNoSecretsInClear(t, "the run with temporal.payloadKeyFile", h, helmSecret, registrySecret)

	found := stacktest.SecretsInClear(runSecretWorkflow(t, base, "without-key"), helmSecret, registrySecret)
	seen := map[int]bool{}
	for _, f := range found {
		seen[f.Secret] = true
	}
	if !seen[0] || !seen[1] {
		t.Errorf("without a payload key the scan found %v, want both secrets: the scan cannot fail", found)
	}
}

// TestCodecServerDecodesForTheTemporalCLI shows the encrypted run's history with
// the temporal CLI through the codec server (payloadcrypt.Handler): the CLI
// speaks the same protocol as the Web UI, so what it prints is what the UI shows.
func TestCodecServerDecodesForTheTemporalCLI(t *testing.T) {
	srv, keys := devServerAndKey(t)
	runSecretWorkflow(t, config.Temporal{Address: srv.Address, Namespace: "default", PayloadKeyFile: keys}, "shown")
	codec, err := payloadcrypt.Load("test", keys)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(payloadcrypt.Handler(codec, payloadcrypt.WithAuthToken("tok")))
	defer hs.Close()
	bin, err := devstack.TemporalBin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// show is the history the CLI prints, read back as a history.
	show := func(extra ...string) *historypb.History {
		args := append([]string{"workflow", "show", "--address", srv.Address, "--namespace", "default", "--workflow-id", "shown", "--output", "json"}, extra...)
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Fatalf("temporal %v: %v\n%s", args, err, out)
		}
		var h historypb.History
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(out, &h); err != nil || len(h.Events) == 0 {
			t.Fatalf("temporal %v printed no history (%v):\n%s", args, err, out)
		}
		return &h
	}
	stacktest.AssertNoSecretsInClear(t, "the CLI's output without the codec server", show(), helmSecret, registrySecret)
	found := map[int]bool{}
	for _, f := range stacktest.SecretsInClear(show("--codec-endpoint", hs.URL, "--codec-auth", "Bearer tok"), helmSecret, registrySecret) {
		found[f.Secret] = true
	}
	if !found[0] || !found[1] {
		t.Errorf("through the codec server the CLI shows %v of the secrets, want both", found)
	}
}
