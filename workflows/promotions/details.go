package promotions

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"
)

// describe keeps the workflow's current details (the Temporal UI's "Current
// Details", answered by the __temporal_workflow_metadata query) saying in plain
// words what the promotion is doing, what it waits for, who may act and how, so
// that a person in the UI needs no documentation to act. It issues no command.
func (r *promotionRun) describe(ctx workflow.Context) {
	workflow.SetCurrentDetails(ctx, promotionDetails(r.s.Status, workflow.GetInfo(ctx).WorkflowExecution.ID))
}

// promotionDetails is the Markdown describe sets.
func promotionDetails(st PromotionStatus, id string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**Promotion of %s** to production: `%s`\n\n", st.Service, st.Image)
	input := `{"approver": "<your name in the plan>", "reason": "..."}`
	switch st.Stage {
	case PromotionStageConfig:
		b.WriteString("Reading the promotion plan from the configuration registry.\n")
	case PromotionStageStaging:
		b.WriteString("Deploying to staging and smoke-checking it; no one needs to act yet.\n")
	case PromotionStageGate:
		fmt.Fprintf(&b, "**Waiting at the gate before production** since %s, for one of the approvers: %s.\n\n",
			clock(st.WaitingSince), strings.Join(st.Approvers, ", "))
		if st.Staging != nil {
			fmt.Fprintf(&b, "Staging: %s.\n\n", st.Staging.Detail)
		}
		if !st.Deadline.IsZero() {
			fmt.Fprintf(&b, "Nobody approving by %s rejects it (the plan's pause timeout).\n\n", clock(st.Deadline))
		}
		fmt.Fprintf(&b, "To approve: More Actions → Send a Signal → `%s` with `%s`, or run "+
			"`conveyor promote approve %s --approver NAME --reason TEXT`. To refuse: the signal `%s` with the same input.\n",
			PromoteApprove, input, id, PromoteReject)
	case PromotionStageProduction:
		fmt.Fprintf(&b, "In production, approved by %s: cluster **%s**, canary step %d of %d, %d%% of the traffic wanted on the canary (%.1f%% ready).\n\n",
			st.ApprovedBy, st.Cluster, st.Step, st.Steps, st.Weights.Desired, st.Weights.Actual)
		fmt.Fprintf(&b, "To stop it: the signal `%s` with `%s` removes the canary and leaves the stable release; `%s` holds it at this step, `%s` goes on.\n",
			PromoteRollback, input, PromotePause, PromoteResume)
	case PromotionStagePromoted:
		fmt.Fprintf(&b, "Promoted to production in every cluster (approved by %s).\n", st.ApprovedBy)
	default:
		fmt.Fprintf(&b, "Ended: **%s**. %s\n", st.Stage, st.Error)
	}
	if st.Paused {
		fmt.Fprintf(&b, "\n**Paused**: send `%s` with `%s` to go on.\n", PromoteResume, input)
	}
	if n := len(st.Events); n > 0 {
		ev := st.Events[n-1]
		fmt.Fprintf(&b, "\nLast: %s (%s)\n", ev.Message, clock(ev.At))
	}
	return b.String()
}

// clock is a time as the details print it.
func clock(t time.Time) string {
	if t.IsZero() {
		return "now"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}
