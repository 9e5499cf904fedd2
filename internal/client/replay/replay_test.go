package replay_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/internal/client/replay"
	"github.com/wikimedia/conveyor/workflows"
	"github.com/wikimedia/conveyor/workflows/all"
)

var pingHistory = filepath.Join("..", "..", "..", "workflows", "testdata", "histories", "ping.json")

// TestCommittedHistoriesReplay: every history under workflows/testdata replays OK
// through the replayer `conveyor history replay` uses.
func TestCommittedHistoriesReplay(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "..", "workflows", "testdata", "histories", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no committed histories (%v)", err)
	}
	r := replay.New(all.Workflows(), nil, nil)
	for _, f := range files {
		h, err := replay.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if res := r.Replay(f, h, workflow.Execution{}); !res.OK() {
			t.Errorf("%s", res)
		}
	}
}

// Ping is an incompatible change to workflows.Ping, registered under the same
// name: it no longer pings the last pool.
func Ping(ctx workflow.Context, in workflows.PingInput) (workflows.PingResult, error) {
	var res workflows.PingResult
	for _, p := range in.Pools[:len(in.Pools)-1] {
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{TaskQueue: workflows.TaskQueue(p), StartToCloseTimeout: 10 * time.Second})
		var ans contract.PingAnswer
		if err := workflows.Execute(actx, contract.Ping, contract.PingRequest{Message: in.Message}).Get(ctx, &ans); err != nil {
			return res, err
		}
		res.Answers = append(res.Answers, ans)
	}
	return res, nil
}

// TestAnIncompatibleChangeIsCaught: the recorded Ping run fails to replay against
// the changed Ping, and the result names the event where they part: the last
// ActivityTaskScheduled of the history, which the changed code no longer makes.
func TestAnIncompatibleChangeIsCaught(t *testing.T) {
	h, err := replay.ReadFile(pingHistory)
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	for _, ev := range h.GetEvents() {
		if ev.GetEventType() == enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED {
			want = ev.GetEventId()
		}
	}
	if ok := replay.New([]any{workflows.Ping}, nil, nil).Replay("ping.json", h, workflow.Execution{}); !ok.OK() {
		t.Fatalf("the unchanged Ping: %s", ok)
	}
	res := replay.New([]any{Ping}, nil, nil).Replay("ping.json", h, workflow.Execution{})
	if res.OK() || res.Err == nil {
		t.Fatalf("the changed Ping replayed OK: %s", res)
	}
	if res.EventID != want || res.EventType != enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED.String() {
		t.Errorf("mismatch located at event %d (%s), want %d (ActivityTaskScheduled): %s", res.EventID, res.EventType, want, res)
	}
	if s := res.String(); !strings.HasPrefix(s, "FAIL  ping.json (Ping, ") || !strings.Contains(s, "TMPRL1100") {
		t.Errorf("printed as %q", s)
	}
}

// TestUnknownTypesAreSkipped: a history of a workflow type the binary does not
// have is skipped, saying so, not failed.
func TestUnknownTypesAreSkipped(t *testing.T) {
	h, err := replay.ReadFile(pingHistory)
	if err != nil {
		t.Fatal(err)
	}
	res := replay.New([]any{workflows.Ping}[:0], nil, nil).Replay("ping.json", h, workflow.Execution{})
	if res.Skipped == "" || !strings.Contains(res.String(), `SKIP  ping.json: workflow type "Ping" is not one of this binary's workflows`) {
		t.Errorf("got %s, want it skipped", res)
	}
}
