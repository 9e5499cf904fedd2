package migrations

import (
	"strings"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/workflows/internal/wftest"
)

// TestStageDetailsSayWhatMovesItOn: an open stage names each task a person must
// do and the command for it; a stage awaiting approval names the update.
func TestStageDetailsSayWhatMovesItOn(t *testing.T) {
	st := StageStatus{Name: "procure", Index: 0, State: StageOpen,
		Tasks: []TaskStatus{{Name: "hardware ordered", State: TaskOpen}, {Name: "racks", State: TaskDone}, {Name: "dns", Automated: true, State: TaskOpen}}}
	got := stageDetails(st, "codfw1dev", "codfw2dev", "dns")
	wftest.WantContains(t, "open stage's details", got,
		"**Stage 1, procure**, of the migration from codfw1dev to codfw2dev: **open**",
		"Running the automated task **dns**.",
		"- to do by a person: **hardware ordered**",
		"`conveyor migrate task-done --from codfw1dev --to codfw2dev --task \"hardware ordered\" --by NAME`")
	if strings.Contains(got, "racks") {
		t.Errorf("a done task is listed as to do:\n%s", got)
	}
	st.State = StageAwaitingApproval
	wftest.WantContains(t, "awaiting approval's details", stageDetails(st, "codfw1dev", "codfw2dev", ""),
		"update `approve-stage` with `{\"stage\": \"procure\"",
		"conveyor migrate approve --from codfw1dev --to codfw2dev --approver NAME")
}

// TestVMDetailsSayTheStepAndWhoActs: a running VM migration names its server,
// its step among all of them, and the retry command should a step fail.
func TestVMDetailsSayTheStepAndWhoActs(t *testing.T) {
	vm := contract.VMRef{Project: "tools", From: "eqiad1", To: "eqiad2", ServerID: "s-1", ServerName: "bastion-01"}
	wftest.WantContains(t, "copying", vmDetails(vm, VMProgress{ServerID: "s-1", Step: VMStepCopy}),
		"**Migrating server bastion-01** (`s-1`) of project tools from eqiad1 to eqiad2",
		"Step 4 of 13: **copy-image**",
		"`conveyor migrate retry --from eqiad1 --to eqiad2 --project tools --by NAME`")
	wftest.WantContains(t, "grace period", vmDetails(vm, VMProgress{ServerID: "s-1", Step: VMStepGrace, DestinationID: "d-1", Detail: "source kept until 2026-12-05T00:00:00Z"}),
		"**grace-period**: source kept until 2026-12-05T00:00:00Z (destination server `d-1`)", "until the grace period ends")
	wftest.WantContains(t, "done", vmDetails(vm, VMProgress{ServerID: "s-1", Step: VMStepDone}), "Done: the destination runs")
}

// TestProjectDetailsSayWhatWaits: a project with a failed VM names it, why, and
// the retry command; a paused one the resume command.
func TestProjectDetailsSayWhatWaits(t *testing.T) {
	st := ProjectStatus{Project: "tools", From: "eqiad1", To: "eqiad2", VMs: []VMStatus{
		{Name: "web-1", State: VMDone}, {Name: "web-2", State: VMFailed, Step: VMStepWaitActive, Error: "ERROR: no valid host\nmore"},
		{Name: "web-3", State: VMRunning, WorkflowID: "project/x/web-3"}}}
	wftest.WantContains(t, "a failed VM", projectDetails(st),
		"**Migrating project tools** from eqiad1 to eqiad2: 1 of 3 server(s) done, 1 running, 0 pending, 1 failed",
		"- ✗ web-2 failed at wait-active: ERROR: no valid host (source kept)", "- ▶ web-3: migrating",
		"`conveyor migrate retry --from eqiad1 --to eqiad2 --project tools --by NAME` (update `retry`)")
	st.Paused, st.PausedBy = true, "alice: maintenance"
	wftest.WantContains(t, "paused", projectDetails(st), "**Paused** (alice: maintenance)", "`conveyor migrate resume --from eqiad1")
}

// TestMigrationDetailsListTheStages: the migration lists its stages and points
// at the running stage's workflow.
func TestMigrationDetailsListTheStages(t *testing.T) {
	day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := MigrationStatus{From: "eqiad1", To: "eqiad2", Current: 1, Stages: []StageSummary{
		{Name: "procure", State: StageDone, PlannedStart: day, PlannedEnd: day.AddDate(0, 1, 0)},
		{Name: "build", State: StageOpen, PlannedStart: day.AddDate(0, 1, 0), PlannedEnd: day.AddDate(0, 3, 0), Overdue: true}}}
	wftest.WantContains(t, "migration", migrationDetails(st, "migration/eqiad1-eqiad2/2-build"),
		"**Migration from eqiad1 to eqiad2**: stage 2 of 2", "1. **procure** done (planned 2026-01-01 → 2026-02-01)",
		"2. **build** open (planned 2026-02-01 → 2026-04-01, **overdue**)", "`migration/eqiad1-eqiad2/2-build` says what it waits for")
}

// TestProjectsDetailsNameWhoActs: a project waiting for its owners is listed
// with its deadline and the command that marks it done.
func TestProjectsDetailsNameWhoActs(t *testing.T) {
	st := ProjectsStatus{From: "eqiad1", To: "eqiad2", Summary: "1 running, 1 waiting", Projects: []ProjectProgress{
		{Name: "tools", Mode: ModeAutomatic, State: ProjectRunning, Workflow: "project/eqiad1-eqiad2/tools"},
		{Name: "deployment-prep", Mode: "manual", State: ProjectWaiting, Deadline: time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC), Overdue: true}}}
	wftest.WantContains(t, "projects", projectsDetails(st),
		"**Projects of the migration from eqiad1 to eqiad2**: 1 running, 1 waiting",
		"- ▶ tools (automatic): running in `project/eqiad1-eqiad2/tools`",
		"- deployment-prep (manual): waiting, due 2027-03-01, **overdue**",
		"once migrated, update `task-done` with `{\"task\": \"deployment-prep\", \"by\": \"<your name>\"}`")
}
