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
