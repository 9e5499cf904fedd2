package changes

import (
	"testing"

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
