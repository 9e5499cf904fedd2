package migrations

import (
	"strings"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/workflows/internal/wftest"

	"github.com/wikimedia/conveyor/activities/contract"
)

func TestMigrationStageRefusesBadUpdates(t *testing.T) {
	f := &fakeMigration{}
	env := migrationEnv(f)
	u := newUpdater(t, env, migrationStart)
	stage := DefaultMigrationStages()[0]
	id := "stage-under-test"
	env.SetStartWorkflowOptions(workflowOptions(id))
	day := func(n int) time.Time { return migrationStart.AddDate(0, 0, n) }
	u.at(day(1), id, UpdateTaskDone, TaskCompletion{Task: "racks delivred", By: "andrew"}, true)
	u.at(day(1), id, UpdateTaskDone, TaskCompletion{Task: "racks delivered", By: " "}, true)
	u.at(day(1), id, UpdateTaskDone, TaskCompletion{Task: "hosts provisioned", By: "andrew"}, true)
	u.at(day(1), id, UpdateApproveStage, StageApproval{Stage: "procure", By: "bd808"}, true)
	u.at(day(2), id, UpdateTaskDone, TaskCompletion{Task: "racks delivered", By: "andrew"}, false)
	u.at(day(2), id, UpdateTaskDone, TaskCompletion{Task: "hardware ordered", By: "andrew"}, false)
	u.at(day(3), id, UpdateTaskDone, TaskCompletion{Task: "racks delivered", By: "andrew"}, true)
	u.at(day(3), id, UpdateApproveStage, StageApproval{Stage: "bootstrap", By: "bd808"}, true)
	u.at(day(3), id, UpdateApproveStage, StageApproval{Stage: "procure"}, true)
	u.at(day(4), id, UpdateApproveStage, StageApproval{Stage: "procure", By: "bd808", Reason: "ok"}, false)
	env.ExecuteWorkflow(MigrationStage, StageInput{From: "codfw1dev", To: "codfw2dev", Stage: stage})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`has no task "racks delivred": its tasks are "hardware ordered", "racks delivered", "hosts provisioned"`,
		"by is empty",
		`task "hosts provisioned" is already done`,
		"still has open tasks: hardware ordered, racks delivered",
		`task "racks delivered" is already done (by andrew on 2027-01-06)`,
		`runs stage "procure", not "bootstrap"`,
		"by is empty",
	}
	if len(u.rejected) != len(want) {
		t.Fatalf("rejections %q, want %d", u.rejected, len(want))
	}
	for i, w := range want {
		if !strings.Contains(u.rejected[i], w) {
			t.Errorf("rejection %d %q does not say %q", i, u.rejected[i], w)
		}
	}
	var st StageStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if st.State != StageDone || st.ApprovedBy != "bd808" || !st.Finished.Equal(day(4)) || st.Overdue {
		t.Errorf("result %+v, want done, approved by bd808 on day 4, not overdue", st)
	}
}

func TestMigrationStageContinuesAsNewWithItsState(t *testing.T) {
	f := &fakeMigration{}
	env := migrationEnv(f)
	u := newUpdater(t, env, migrationStart)
	env.SetStartWorkflowOptions(workflowOptions("stage-under-test"))
	in := StageInput{From: "codfw1dev", To: "codfw2dev", Stage: DefaultMigrationStages()[0],
		ReminderEvery: 7 * 24 * time.Hour, MaxEventsPerRun: 3}
	// Events: the automated task, this update, then the first reminder on day 7.
	u.at(migrationStart.AddDate(0, 0, 1), "stage-under-test", UpdateTaskDone, TaskCompletion{Task: "hardware ordered", By: "andrew"}, false)
	env.ExecuteWorkflow(MigrationStage, in)
	var next StageInput
	wftest.ContinuedAsNew(t, env, "", &next)
	st := next.State
	if st == nil || st.Runs != 1 || st.Reminders != 1 || !st.Started.Equal(migrationStart) ||
		!st.NextReminder.Equal(migrationStart.AddDate(0, 0, 14)) || st.State != StageOpen ||
		st.task("hardware ordered").By != "andrew" || st.task("hosts provisioned").By != automatedBy {
		t.Fatalf("carried state %+v", st)
	}

	// The next run goes on from there: no second start, no second automated task.
	f2 := &fakeMigration{}
	env2 := migrationEnv(f2)
	second := migrationStart.AddDate(0, 0, 7)
	env2.SetStartTime(second)
	u2 := newUpdater(t, env2, second)
	env2.SetStartWorkflowOptions(workflowOptions("stage-under-test"))
	u2.at(migrationStart.AddDate(0, 0, 10), "stage-under-test", UpdateTaskDone, TaskCompletion{Task: "racks delivered", By: "andrew"}, false)
	u2.at(migrationStart.AddDate(0, 0, 15), "stage-under-test", UpdateApproveStage, StageApproval{Stage: "procure", By: "bd808"}, false)
	next.MaxEventsPerRun = 100
	env2.ExecuteWorkflow(MigrationStage, next)
	if err := env2.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var done StageStatus
	if err := env2.GetWorkflowResult(&done); err != nil {
		t.Fatal(err)
	}
	if done.Runs != 2 || !done.Started.Equal(migrationStart) || done.Reminders != 2 || len(f2.tasks) != 0 || len(f2.checks) != 0 {
		t.Errorf("second run: %d runs, started %s, %d reminders, tasks %v, checks %v; want 2, the first start, 2, none, none",
			done.Runs, done.Started, done.Reminders, f2.tasks, f2.checks)
	}
}

func TestMigrationStageWaitsForAPersonWhenATaskFails(t *testing.T) {
	f := &fakeMigration{failTask: "hosts provisioned"}
	env := migrationEnv(f)
	u := newUpdater(t, env, migrationStart)
	env.SetStartWorkflowOptions(workflowOptions("stage-under-test"))
	for _, task := range []string{"hardware ordered", "racks delivered", "hosts provisioned"} {
		u.at(migrationStart.AddDate(0, 0, 3), "stage-under-test", UpdateTaskDone, TaskCompletion{Task: task, By: "andrew"}, false)
	}
	u.at(migrationStart.AddDate(0, 0, 4), "stage-under-test", UpdateApproveStage, StageApproval{Stage: "procure", By: "bd808"}, false)
	env.ExecuteWorkflow(MigrationStage, StageInput{From: "codfw1dev", To: "codfw2dev", Stage: DefaultMigrationStages()[0]})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(f.tasks) != 1 || f.count(contract.NotifyTaskFailed, "procure") != 1 {
		t.Errorf("tasks %v, %d failure notices; want one non-retried run and one notice", f.tasks, f.count(contract.NotifyTaskFailed, ""))
	}
	var st StageStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if task := st.task("hosts provisioned"); task.By != "andrew" || !strings.Contains(task.Detail, "no quota") {
		t.Errorf("failed task %+v, want done by andrew keeping the failure", task)
	}
}
