package migrations

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/activities/contract"
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

// vmStepOrder is the order of a VM migration's steps, for vmDetails.
var vmStepOrder = []string{VMStepPreflight, VMStepStop, VMStepSnapshot, VMStepCopy, VMStepCreate, VMStepWaitActive,
	VMStepVerify, VMStepDNS, VMStepMark, VMStepGrace, VMStepVerifyAgain, VMStepDelete, VMStepDone}

// vmDetails is a VM migration's current details: the server, the step it is in
// among all of them, and who acts (nobody while it runs; a failed step is
// retried from the project's migration).
func vmDetails(vm contract.VMRef, p VMProgress) string {
	var b strings.Builder
	name := vm.ServerName
	if name == "" {
		name = vm.ServerID
	}
	fmt.Fprintf(&b, "**Migrating server %s** (`%s`) of project %s from %s to %s\n\n", name, vm.ServerID, vm.Project, vm.From, vm.To)
	n := slices.Index(vmStepOrder, p.Step) + 1
	fmt.Fprintf(&b, "Step %d of %d: **%s**", n, len(vmStepOrder), p.Step)
	if p.Detail != "" {
		fmt.Fprintf(&b, ": %s", p.Detail)
	}
	if p.DestinationID != "" {
		fmt.Fprintf(&b, " (destination server `%s`)", p.DestinationID)
	}
	b.WriteString("\n\n")
	switch p.Step {
	case VMStepDone:
		b.WriteString("Done: the destination runs and the source is deleted; nobody needs to act.\n")
	case VMStepGrace:
		b.WriteString("Nobody needs to act: the source is kept, stopped, until the grace period ends, then checked against the destination once more and deleted.\n")
	default:
		fmt.Fprintf(&b, "Nobody needs to act: the steps run by themselves. If one fails, the source is kept and the project's migration waits: `conveyor migrate retry --from %s --to %s --project %s --by NAME` once the cause is fixed.\n", vm.From, vm.To, vm.Project)
	}
	return b.String()
}

// projectDetails is a project migration's current details: its VMs by state,
// the failed ones with why, and the command that moves it on (retry after a
// failure, resume after a pause).
func projectDetails(st ProjectStatus) string {
	var b strings.Builder
	flags := fmt.Sprintf("--from %s --to %s --project %s", st.From, st.To, st.Project)
	fmt.Fprintf(&b, "**Migrating project %s** from %s to %s: %d of %d server(s) done, %d running, %d pending, %d failed\n\n",
		st.Project, st.From, st.To, st.Count(VMDone), len(st.VMs), st.Count(VMRunning), st.Count(VMPending), st.Count(VMFailed))
	for _, v := range st.VMs {
		switch v.State {
		case VMRunning:
			fmt.Fprintf(&b, "- ▶ %s: migrating (`%s`)\n", v.Name, v.WorkflowID)
		case VMFailed:
			e, _, _ := strings.Cut(v.Error, "\n")
			fmt.Fprintf(&b, "- ✗ %s failed at %s: %s (source kept)\n", v.Name, v.Step, e)
		}
	}
	switch {
	case st.Paused:
		fmt.Fprintf(&b, "\n**Paused** (%s): no new VM starts. `conveyor migrate resume %s --by NAME` (update `%s`) goes on.\n", st.PausedBy, flags, UpdateResume)
	case st.Count(VMFailed) > 0:
		fmt.Fprintf(&b, "\nWaiting for a person: fix the cause, then `conveyor migrate retry %s --by NAME` (update `%s`).\n", flags, UpdateRetry)
	case st.Count(VMDone) == len(st.VMs):
		b.WriteString("\nDone: every server is migrated; nobody needs to act.\n")
	default:
		fmt.Fprintf(&b, "\nNobody needs to act. `conveyor migrate pause %s --by NAME` stops starting new VMs.\n", flags)
	}
	return b.String()
}

// migrationDetails is a cloud migration's current details: every stage with its
// state and dates, and where the running stage's workflow (stageID) is, whose
// own details say who acts.
func migrationDetails(st MigrationStatus, stageID string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**Migration from %s to %s**: stage %d of %d\n\n", st.From, st.To, min(st.Current+1, len(st.Stages)), len(st.Stages))
	day := func(t time.Time) string { return t.UTC().Format("2006-01-02") }
	for i, s := range st.Stages {
		fmt.Fprintf(&b, "%d. **%s** %s (planned %s → %s", i+1, s.Name, s.State, day(s.PlannedStart), day(s.PlannedEnd))
		if s.Overdue {
			b.WriteString(", **overdue**")
		}
		b.WriteString(")\n")
	}
	if st.Finished.IsZero() && stageID != "" {
		fmt.Fprintf(&b, "\nThe stage's workflow `%s` says what it waits for and who acts (`conveyor migrate status --from %s --to %s`).\n", stageID, st.From, st.To)
	} else {
		fmt.Fprintf(&b, "\nDone on %s: every stage passed its gate; nobody needs to act.\n", day(st.Finished))
	}
	return b.String()
}

// projectsDetails is the stage-4 projects driver's current details: the
// projects by state and, for each one waiting on a person, the command that
// marks it done.
func projectsDetails(st ProjectsStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**Projects of the migration from %s to %s**: %s\n\n", st.From, st.To, st.Summary)
	waiting := 0
	for _, p := range st.Projects {
		switch p.State {
		case ProjectRunning:
			fmt.Fprintf(&b, "- ▶ %s (%s): running", p.Name, p.Mode)
			if p.Workflow != "" {
				fmt.Fprintf(&b, " in `%s`", p.Workflow)
			}
			b.WriteString("\n")
		case ProjectWaiting, ProjectFailed:
			waiting++
			fmt.Fprintf(&b, "- %s (%s): %s", p.Name, p.Mode, p.State)
			if !p.Deadline.IsZero() {
				fmt.Fprintf(&b, ", due %s", p.Deadline.UTC().Format(time.DateOnly))
			}
			if p.Overdue {
				b.WriteString(", **overdue**")
			}
			if p.Detail != "" {
				d, _, _ := strings.Cut(p.Detail, "\n")
				fmt.Fprintf(&b, ": %s", d)
			}
			fmt.Fprintf(&b, " — once migrated, update `%s` with `{\"task\": %q, \"by\": \"<your name>\"}`\n", UpdateTaskDone, p.Name)
		}
	}
	if waiting == 0 {
		b.WriteString("\nNobody needs to act now: the projects run by themselves.\n")
	}
	return b.String()
}
