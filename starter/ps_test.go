package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/workflows"
)

// TestPsShowsWhatAWorkflowWaitsFor: a Ping whose activity no worker serves is
// listed by `conveyor ps` with its age and the activity it waits for.
func TestPsShowsWhatAWorkflowWaitsFor(t *testing.T) {
	// The workflow runs here; its activity goes to the deploy pool's queue, which
	// no worker of this namespace serves.
	cfg, c := pingWorker(t, "conveyor-ps-test", false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id := "ps-test-" + time.Now().UTC().Format("20060102T150405.000000000")
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueueBuild},
		workflows.Ping, workflows.PingInput{Pools: []string{"deploy"}, Message: "nobody answers"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.TerminateWorkflow(context.Background(), id, run.GetRunID(), "test cleanup") })

	args := []string{"--config", filepath.Join(cfg.StateDir, config.FileName), "ps", "--namespace", cfg.Temporal.Namespace, "--type", "Ping"}
	var out string
	stacktest.WaitFor(t, 30*time.Second, "ps listing the Ping at its activity", func() error {
		out, err = runConveyor(t, args...)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "Ping ") && strings.Contains(line, id) && strings.Contains(line, "activity Ping (not started yet") {
				return nil
			}
		}
		return errFromOutput(out)
	})
	wantLines(t, "ps", out, "TYPE", "WORKFLOW ID", "AGE", "WAITING FOR")
}

type errFromOutput string

func (e errFromOutput) Error() string { return "ps printed:\n" + string(e) }
