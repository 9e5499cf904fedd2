package changes

import (
	"fmt"
	"strconv"
	"strings"
	"time"

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

// clock is a time in the details: UTC, to the second.
func clock(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// batcherDetails is a merge batcher's current details while it waits: the
// build running, the merges waiting and when they will be built, and the
// signals that pause and resume it.
func batcherDetails(st BatcherStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**Merge batcher of %s**, branch %s: %d build(s) so far\n\n", st.Target.Project, st.Target.Branch, st.State.Builds)
	if bb := st.Building; bb != nil {
		fmt.Fprintf(&b, "Building: `%s` (changes %s), started %s.\n", bb.WorkflowID, changeList(bb.Changes), clock(bb.Started))
	}
	if n := len(st.State.Pending); n > 0 {
		var changes []int
		for _, c := range st.State.Pending {
			changes = append(changes, c.Change)
		}
		fmt.Fprintf(&b, "Waiting: %d merge(s) (changes %s)", n, changeList(changes))
		switch {
		case st.State.Paused:
			b.WriteString(", held while paused.\n")
		case st.Building != nil:
			b.WriteString(", built once the running build ends.\n")
		default:
			fmt.Fprintf(&b, ", built at %s unless another merge arrives first.\n", clock(st.Due))
		}
	} else if st.Building == nil {
		b.WriteString("Waiting for merges (signal `" + SignalMerged + "`, sent by the Gerrit receiver).\n")
	}
	if l := st.State.LastBuild; l != nil {
		fmt.Fprintf(&b, "Last build: `%s` %s", l.WorkflowID, l.Outcome)
		if l.Error != "" {
			fmt.Fprintf(&b, ": %s", l.Error)
		}
		b.WriteString(".\n")
	}
	if st.State.Paused {
		b.WriteString("\n**Paused**: no batch starts. Signal `" + workflows.SignalResume + "` to go on.\n")
	} else {
		b.WriteString("\nNobody needs to act. Signal `" + workflows.SignalPause + "` to hold new builds (merges still queue).\n")
	}
	return b.String()
}

func changeList(changes []int) string {
	var out []string
	for _, c := range changes {
		out = append(out, strconv.Itoa(c))
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// baseCheckDetails is the base image check's current details while it waits:
// what it watches, the next check, the last rebuilds and problems, and the
// signals it takes.
func baseCheckDetails(st BaseCheckStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**Base image check** of %d target(s): %d check(s) so far", len(st.Config.Targets), st.State.Checks)
	if !st.State.LastCheck.IsZero() {
		fmt.Fprintf(&b, ", the last at %s", clock(st.State.LastCheck))
	}
	b.WriteString("\n\n")
	if st.State.Paused {
		b.WriteString("**Paused**: no check runs. Signal `" + workflows.SignalResume + "` to go on.\n")
	} else {
		fmt.Fprintf(&b, "Next check at %s; signal `%s` to check now, `%s` to stop checking.\n", clock(st.NextCheck), SignalCheckNow, workflows.SignalPause)
	}
	if n := len(st.State.Rebuilds); n > 0 {
		r := st.State.Rebuilds[n-1]
		fmt.Fprintf(&b, "Last rebuild: %s %s for base %s (`%s`, %s).\n", r.Project, r.Branch, r.Image, r.WorkflowID, clock(r.At))
	}
	for _, p := range st.State.Problems {
		fmt.Fprintf(&b, "- problem: %s\n", p)
	}
	return b.String()
}
