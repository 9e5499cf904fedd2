package changes

import (
	"testing"
	"time"

	"github.com/wikimedia/conveyor/workflows/internal/wftest"
)

// TestPipelineDetailsShowEachStep: the details list every step with its state and
// the first line of its detail, and the failure.
func TestPipelineDetailsShowEachStep(t *testing.T) {
	st := PipelineStatus{Project: "mediawiki/services/hello", Ref: "refs/changes/34/1234/2", Commit: "3f1c2a9d8e7b6c5d4e3f",
		Error: "step run-tests: tests failed\nmore"}
	for _, name := range PipelineSteps {
		st.Steps = append(st.Steps, Step{Name: name, State: StepSkipped})
	}
	st.Steps[0].State, st.Steps[0].Detail = StepSucceeded, "variant test of 3f1c2a9d"
	st.Steps[1].State, st.Steps[1].Detail = StepFailed, "expected hello\ngot goodbye"
	got := pipelineDetails(st)
	wftest.WantContains(t, "details", got,
		"**Pipeline of mediawiki/services/hello** at `refs/changes/34/1234/2` (commit `3f1c2a9d8e`)",
		"1. ✓ **build-test** succeeded: variant test of 3f1c2a9d\n",
		"2. ✗ **run-tests** failed: expected hello\n",
		"5. – **publish** skipped\n",
		"Failed: step run-tests: tests failed\n")
}

// TestVerifyDetailsSayWhatItWaitsFor: a verification names its patchset, what it
// does now, and that a recheck comment is all a person may do.
func TestVerifyDetailsSayWhatItWaitsFor(t *testing.T) {
	in := VerifyInput{Pipeline: PipelineInput{Project: "mediawiki/services/hello", Ref: "refs/changes/34/1234/2"},
		Change: ChangeTarget{Project: "mediawiki/services/hello", Change: 1234, Patchset: 2}, Trigger: TriggerRecheck}
	wftest.WantContains(t, "a recheck's details", verifyDetails(in, "pipeline/x", "Waiting for the pipeline `pipeline/x`."),
		"**Verifying patchset 2 of change 1234** of mediawiki/services/hello (`refs/changes/34/1234/2`, a recheck)",
		"Waiting for the pipeline `pipeline/x`.", `comment "recheck" on the change`)
	if vote(-1) != "Verified -1" || vote(0) != "no vote" {
		t.Errorf("vote(-1) %q, vote(0) %q", vote(-1), vote(0))
	}
}

// TestBatcherDetailsSayWhatWaits: the batcher names the merges waiting, when
// they build, and the signals that pause and resume it.
func TestBatcherDetailsSayWhatWaits(t *testing.T) {
	due := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	st := BatcherStatus{Target: BatchTarget{Project: "hello", Branch: "main"},
		State: BatcherState{Builds: 3, Pending: []MergedChange{{Change: 7}, {Change: 9}},
			LastBuild: &BatchBuild{WorkflowID: "batch/hello/main/build-3", Outcome: "failed", Error: "run-tests failed"}}, Due: due}
	wftest.WantContains(t, "waiting batcher", batcherDetails(st),
		"**Merge batcher of hello**, branch main: 3 build(s) so far",
		"Waiting: 2 merge(s) (changes 7, 9), built at 2026-12-04 10:00:00 UTC",
		"Last build: `batch/hello/main/build-3` failed: run-tests failed.", "Signal `pause`")
	st.State.Paused = true
	wftest.WantContains(t, "paused batcher", batcherDetails(st), "held while paused", "Signal `resume` to go on")
}

// TestBaseCheckDetailsSayTheNextCheck: the base image check says when it checks
// next and how to check at once.
func TestBaseCheckDetailsSayTheNextCheck(t *testing.T) {
	st := BaseCheckStatus{Config: BaseCheckConfig{Targets: make([]RebuildTarget, 2)}, State: BaseCheckState{Checks: 4, Problems: []string{"hello: no blubber.yaml"}},
		NextCheck: time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC)}
	wftest.WantContains(t, "base check", baseCheckDetails(st),
		"**Base image check** of 2 target(s): 4 check(s) so far", "Next check at 2026-12-05 03:00:00 UTC; signal `check-now`", "- problem: hello: no blubber.yaml")
}
