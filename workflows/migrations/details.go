package migrations

import (
	"fmt"
	"strings"

	"go.temporal.io/sdk/workflow"
)

// describe keeps the stage's current details (the Temporal UI's "Current
// Details") saying what it waits for and the exact command or update that moves
// it on. It issues no command.
func (r *stageRun) describe(ctx workflow.Context) {
	workflow.SetCurrentDetails(ctx, stageDetails(r.st, r.in.From, r.in.To, r.running))
}

// stageDetails is the Markdown describe sets.
func stageDetails(st StageStatus, from, to, running string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**Stage %d, %s**, of the migration from %s to %s: **%s**", st.Index+1, st.Name, from, to, st.State)
	if !st.Due.IsZero() {
		fmt.Fprintf(&b, ", due %s", st.Due.UTC().Format("2006-01-02"))
		if st.Overdue {
			b.WriteString(" (overdue)")
		}
	}
	b.WriteString("\n\n")
	switch st.State {
	case StageBlocked:
		var failed []string
		for _, c := range st.Checks {
			if !c.OK {
				failed = append(failed, c.Name+": "+c.Detail)
			}
		}
		fmt.Fprintf(&b, "Waiting for its entry checks, run again at each reminder: %s\n", strings.Join(failed, "; "))
	case StageOpen:
		if running != "" {
			fmt.Fprintf(&b, "Running the automated task **%s**.\n\n", running)
		}
		for _, t := range st.Tasks {
			if t.State == TaskDone || t.Automated {
				continue
			}
			fmt.Fprintf(&b, "- to do by a person: **%s** — when done, send the update `%s` with `{\"task\": %q, \"by\": \"<you>\"}`, "+
				"or run `conveyor migrate task-done --from %s --to %s --task %q --by NAME`\n", t.Name, UpdateTaskDone, t.Name, from, to, t.Name)
		}
	case StageAwaitingApproval:
		fmt.Fprintf(&b, "Every task is done: **waiting for an approver** to pass the stage's exit gate: the update `%s` with "+
			"`{\"stage\": %q, \"by\": \"<you>\", \"reason\": \"...\"}`, or `conveyor migrate approve --from %s --to %s --approver NAME --reason TEXT`.\n",
			UpdateApproveStage, st.Name, from, to)
	case StageDone:
		fmt.Fprintf(&b, "Done, approved by %s.\n", st.ApprovedBy)
	}
	return b.String()
}
