package workflows_test

import (
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/workflows/all"
	"github.com/wikimedia/conveyor/workflows/migrations"
	"github.com/wikimedia/conveyor/workflows/promotions"
)

// recorded is one committed history, read.
type recorded struct {
	file, workflowType string
	events             []*historypb.HistoryEvent
}

func readHistories(t *testing.T) []recorded {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []recorded
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		h, err := client.HistoryFromJSON(r, client.HistoryJSONOptions{})
		r.Close()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		ev := h.GetEvents()
		if len(ev) == 0 || ev[0].GetWorkflowExecutionStartedEventAttributes() == nil {
			t.Fatalf("%s does not start with WorkflowExecutionStarted", f)
		}
		out = append(out, recorded{file: filepath.Base(f), workflowType: ev[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName(), events: ev})
	}
	return out
}

// receives says whether the history got the signal or accepted the update name.
func (r recorded) receives(name string) bool {
	return slices.ContainsFunc(r.events, func(e *historypb.HistoryEvent) bool {
		return e.GetWorkflowExecutionSignaledEventAttributes().GetSignalName() == name ||
			e.GetWorkflowExecutionUpdateAcceptedEventAttributes().GetAcceptedRequest().GetInput().GetName() == name
	})
}

func (r recorded) has(typ enumspb.EventType) bool {
	return slices.ContainsFunc(r.events, func(e *historypb.HistoryEvent) bool { return e.GetEventType() == typ })
}

// input is the start's arguments as the JSON the data converter wrote.
func (r recorded) input() string {
	var b strings.Builder
	for _, p := range r.events[0].GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads() {
		b.Write(p.GetData())
	}
	return b.String()
}

func (r recorded) failedWith(typ string) bool {
	return slices.ContainsFunc(r.events, func(e *historypb.HistoryEvent) bool {
		return e.GetWorkflowExecutionFailedEventAttributes().GetFailure().GetApplicationFailureInfo().GetType() == typ
	})
}

// TestHistoriesCoverEveryWorkflow: the committed histories hold at least one run
// of every workflow type conveyor registers, so that TestReplayRecordedHistories
// checks each against the code about to be deployed.
func TestHistoriesCoverEveryWorkflow(t *testing.T) {
	seen := map[string]bool{}
	for _, h := range readHistories(t) {
		seen[h.workflowType] = true
	}
	for _, wf := range all.Workflows() {
		full := runtime.FuncForPC(reflect.ValueOf(wf).Pointer()).Name()
		name := full[strings.LastIndex(full, ".")+1:]
		if !seen[name] {
			t.Errorf("no committed history of %s (%s): record one (workflows/testdata/histories/README.md)", name, full)
		}
	}
}

// TestHistoriesCoverThePaths: the paths a change is most likely to break in a
// running workflow each have a committed history.
func TestHistoriesCoverThePaths(t *testing.T) {
	hs := readHistories(t)
	paths := []struct {
		name string
		is   func(recorded) bool
	}{
		{"a run that continues as new", func(h recorded) bool { return h.has(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW) }},
		{"a promotion's indefinite step resumed", func(h recorded) bool {
			return h.workflowType == "Promotion" && h.receives(promotions.PromoteResume)
		}},
		{"a promotion paused", func(h recorded) bool { return h.workflowType == "Promotion" && h.receives(promotions.PromotePause) }},
		{"a promotion promoted in full", func(h recorded) bool { return h.workflowType == "Promotion" && h.receives(promotions.PromoteFull) }},
		{"a promotion rolled back by request", func(h recorded) bool {
			return h.workflowType == "Promotion" && h.receives(promotions.PromoteRollback)
		}},
		{"a promotion rejected at its gate", func(h recorded) bool { return h.workflowType == "Promotion" && h.receives(promotions.PromoteReject) }},
		{"a recheck joining a running pipeline", func(h recorded) bool {
			return h.workflowType == "ChangeVerification" && h.has(enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED)
		}},
		{"a project migrated in automatic mode", func(h recorded) bool {
			return h.workflowType == "ProjectsMigration" && strings.Contains(h.input(), `"mode":"`+migrations.ModeAutomatic+`"`)
		}},
		{"a failing test battery", func(h recorded) bool {
			return h.workflowType == "TestBattery" && h.failedWith(contract.ErrBatteryFailed)
		}},
		{"a migration stage gate approved", func(h recorded) bool {
			return h.workflowType == "MigrationStage" && h.receives(migrations.UpdateApproveStage)
		}},
	}
	for _, p := range paths {
		var files []string
		for _, h := range hs {
			if p.is(h) {
				files = append(files, h.file)
			}
		}
		if len(files) == 0 {
			t.Errorf("no committed history of %s: record one (workflows/testdata/histories/README.md)", p.name)
		} else {
			t.Logf("%s: %s", p.name, strings.Join(files, ", "))
		}
	}
}
