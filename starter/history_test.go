package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"

	"github.com/wikimedia/conveyor/activities/health"
	"github.com/wikimedia/conveyor/internal/client/payloadcrypt"
	"github.com/wikimedia/conveyor/internal/client/replay"
	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/workflows"
)

// TestHistoryExportAndReplay runs a Ping on the stack, exports its history (kept
// encrypted, as the server holds it), and replays it from the file, by id and
// with --recent --type; a history whose recorded activity the code does not
// schedule fails with its event named and exit status 1.
func TestHistoryExportAndReplay(t *testing.T) {
	cfg, c := pingWorker(t, "conveyor-history-test", true)
	if cfg.Temporal.PayloadKeyFile == "" {
		t.Fatal("the stack's configuration sets no temporal.payloadKeyFile (make up writes it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id := "history-test-" + time.Now().UTC().Format("20060102T150405.000000000")
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueueBuild},
		workflows.Ping, workflows.PingInput{Pools: []string{"build"}, Message: "replay me"})
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}

	flags := []string{"--config", filepath.Join(cfg.StateDir, config.FileName)}
	ns := []string{"--namespace", cfg.Temporal.Namespace}
	file := filepath.Join(t.TempDir(), "ping.json")
	if out, err := runConveyor(t, append(append(flags, "history", "export", id, "-o", file), ns...)...); err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	h, err := replay.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	input := h.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()
	if len(input) != 1 || string(input[0].GetMetadata()[converter.MetadataEncoding]) != payloadcrypt.Encoding || strings.Contains(string(input[0].GetData()), "replay me") {
		t.Errorf("the exported input is %v, want it encrypted as the server keeps it", input)
	}

	out, err := runConveyor(t, append(append(flags, "history", "replay", file, id, "--workflow-id", id, "--recent", "3", "--type", "Ping"), ns...)...)
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	wantLines(t, "replay", out, "OK    "+file+" (Ping, ", "OK    "+id+" (run "+run.GetRunID()+") (Ping, ", " 0 failed")
	if n := strings.Count(out, "OK    "+id+" (run "); n < 2 {
		t.Errorf("the run is replayed %d times by id, want once by its id and once by --recent:\n%s", n, out)
	}

	// The same history claiming the activity was another: the code schedules
	// Ping, so the replay fails there.
	for _, ev := range h.GetEvents() {
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			a.GetActivityType().Name = "Pong"
		}
	}
	b, err := replay.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = runConveyor(t, append(append(flags, "history", "replay", bad), ns...)...)
	var ec cli.ExitCoder
	if !errors.As(err, &ec) || ec.ExitCode() != 1 {
		t.Fatalf("replaying a history the code disagrees with: %v, want exit status 1\n%s", err, out)
	}
	wantLines(t, "replay of bad.json", out, "FAIL  "+bad+" (Ping, ", "the first mismatch is at event 5 (ActivityTaskScheduled)", " 1 failed")
}

// pingWorker runs a worker of the Ping workflow on the build pool's queue in a
// namespace of its own, with the ping activity when activities is set, until
// the test ends; it returns the namespace's configuration and a client of it.
func pingWorker(t *testing.T, namespace string, activities bool) (config.Config, client.Client) {
	t.Helper()
	cfg := stacktest.Namespace(t, namespace)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := temporalclient.Dial(ctx, cfg.Temporal, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	w := worker.New(c, workflows.TaskQueueBuild, worker.Options{})
	w.RegisterWorkflow(workflows.Ping)
	if activities {
		w.RegisterActivity(&health.Activities{Pool: "build"})
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return cfg, c
}
