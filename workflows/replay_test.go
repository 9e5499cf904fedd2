package workflows_test

import (
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/wikimedia/conveyor/workflows/all"

	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
)

// TestReplayRecordedHistories replays every history recorded from a real server
// against today's workflow code: a change that would break running workflows (a
// reordered activity, a removed timer) fails here. testdata/histories/README.md says
// how to record them again.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no histories in testdata/histories: record them with tools/record-histories.sh (see testdata/histories/README.md)")
	}
	r := worker.NewWorkflowReplayer()
	for _, wf := range all.Workflows() {
		r.RegisterWorkflow(wf)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			logger := tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(t.Output(), nil)))
			if err := r.ReplayWorkflowHistoryFromJSONFile(logger, f); err != nil {
				t.Errorf("replaying %s: %v", f, err)
			}
		})
	}
}
