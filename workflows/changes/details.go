package changes

import (
	"fmt"
	"strings"

	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/workflows"
)

// describe keeps the pipeline's current details (the Temporal UI's "Current
// Details") saying which step runs and how each went. It issues no command.
func (r *pipelineRun) describe(ctx workflow.Context) {
	workflow.SetCurrentDetails(ctx, pipelineDetails(r.st))
}

// stepMarks are how pipelineDetails shows each step's state.
var stepMarks = map[StepState]string{StepPending: "·", StepRunning: "▶", StepSucceeded: "✓", StepFailed: "✗", StepSkipped: "–"}

// pipelineDetails is the Markdown describe sets.
func pipelineDetails(st PipelineStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**Pipeline of %s** at `%s`", st.Project, st.Ref)
	if st.Commit != "" {
		fmt.Fprintf(&b, " (commit `%s`)", workflows.ShortID(st.Commit))
	}
	b.WriteString("\n\n")
	for i, s := range st.Steps {
		fmt.Fprintf(&b, "%d. %s **%s** %s", i+1, stepMarks[s.State], s.Name, s.State)
		if s.Detail != "" {
			d, _, _ := strings.Cut(s.Detail, "\n")
			fmt.Fprintf(&b, ": %s", d)
		}
		b.WriteString("\n")
	}
	switch {
	case st.Error != "":
		e, _, _ := strings.Cut(st.Error, "\n")
		fmt.Fprintf(&b, "\nFailed: %s\n", e)
	case st.Step(StepPublish).State == StepSucceeded || (st.Step(StepPublish).State == StepSkipped && st.Step(StepDeploy).State == StepSucceeded):
		b.WriteString("\nDone: nobody needs to act.\n")
	default:
		b.WriteString("\nNobody needs to act: the steps run by themselves (the `status` query has the details).\n")
	}
	return b.String()
}
