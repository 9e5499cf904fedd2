package migrations

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/workflows"
	"github.com/wikimedia/conveyor/workflows/internal/wftest"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/wikimedia/conveyor/activities/contract"
)

// fakeMigration stands in for the migration's activities under their contract
// names and records the notifications.
type fakeMigration struct {
	mu sync.Mutex
	// failChecks is how many times each stage's entry checks fail before passing.
	failChecks map[string]int
	// failTask names an automated task that fails for good.
	failTask string
	checks   []string
	tasks    []string
	notes    []contract.MigrationNotifyInput
}

func (f *fakeMigration) register(env *testsuite.TestWorkflowEnvironment) {
	reg := func(fn any, name string) { env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name}) }
	reg(func(_ context.Context, in contract.MigrationCheckInput) (contract.MigrationCheckOutput, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.checks = append(f.checks, in.Stage)
		var out contract.MigrationCheckOutput
		ok := f.failChecks[in.Stage] == 0
		if !ok {
			f.failChecks[in.Stage]--
		}
		for _, c := range in.Checks {
			out.Results = append(out.Results, contract.MigrationCheckResult{Name: c, OK: ok})
		}
		return out, nil
	}, contract.MigrationCheck.Name)
	reg(func(_ context.Context, in contract.MigrationTaskInput) (contract.MigrationTaskOutput, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.tasks = append(f.tasks, in.Stage+"/"+in.Task)
		if in.Task == f.failTask {
			return contract.MigrationTaskOutput{}, temporal.NewNonRetryableApplicationError("no quota for 40 hosts", contract.ErrMigrationTaskFailed, nil)
		}
		return contract.MigrationTaskOutput{Detail: "done by the fake"}, nil
	}, contract.MigrationTask.Name)
	reg(func(_ context.Context, in contract.MigrationNotifyInput) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.notes = append(f.notes, in)
		return nil
	}, contract.MigrationNotify.Name)
}

// count counts the notifications of kind about stage ("" for any stage).
func (f *fakeMigration) count(kind, stage string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, in := range f.notes {
		if in.Kind == kind && (stage == "" || in.Stage == stage) {
			n++
		}
	}
	return n
}

// migrationStart is a Monday early in the month, so that adding months never rolls
// over into the next month.
var migrationStart = time.Date(2027, time.January, 4, 9, 0, 0, 0, time.UTC)

func migrationEnv(f *fakeMigration) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(migrationStart)
	env.RegisterWorkflow(CloudMigration)
	env.RegisterWorkflow(MigrationStage)
	f.register(env)
	registerStageTaskFakes(env)
	return env
}

// updater sends updates from delayed callbacks and records the rejections.
type updater struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment
	// start is the environment's start time, from which delays count.
	start    time.Time
	n        int
	rejected []string
}

func newUpdater(t *testing.T, env *testsuite.TestWorkflowEnvironment, start time.Time) *updater {
	return &updater{t: t, env: env, start: start}
}

// workflowOptions gives the workflow under test an id to send updates to.
func workflowOptions(id string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueueMigrate}
}

// at sends update name with arg to workflow id when the clock reaches when. A
// rejection is an error unless wantReject is set, in which case it is recorded.
func (u *updater) at(when time.Time, id, name string, arg any, wantReject bool) {
	u.n++
	updateID := fmt.Sprintf("update-%d", u.n)
	u.env.RegisterDelayedCallback(func() {
		err := u.env.UpdateWorkflowByID(id, name, updateID, &testsuite.TestUpdateCallback{
			OnAccept: func() {
				if wantReject {
					u.t.Errorf("%s %+v to %s was accepted, want a rejection", name, arg, id)
				}
			},
			OnReject: func(err error) {
				if !wantReject {
					u.t.Errorf("%s %+v to %s rejected: %v", name, arg, id, err)
				}
				u.rejected = append(u.rejected, err.Error())
			},
			OnComplete: func(any, error) {},
		}, arg)
		if err != nil {
			u.t.Errorf("sending %s to %s: %v", name, id, err)
		}
	}, when.Sub(u.start))
}

// finish completes the human tasks of stage at done and approves it at approve.
func (u *updater) finish(from, to string, i int, s StagePlan, done, approve time.Time) {
	id := MigrationStageID(from, to, i, s.Name)
	for _, task := range s.Tasks {
		if !task.Automated {
			u.at(done, id, UpdateTaskDone, TaskCompletion{Task: task.Name, By: "andrew", Note: "T123456"}, false)
		}
	}
	u.at(approve, id, UpdateApproveStage, StageApproval{Stage: s.Name, By: "bd808", Reason: "exit criteria met"}, false)
}

// ticks counts the reminder instants start+k*every (k ≥ 1) before end.
func ticks(start, end time.Time, every time.Duration) int {
	n := 0
	for at := start.Add(every); at.Before(end); at = at.Add(every) {
		n++
	}
	return n
}

func TestCloudMigrationRunsTheWholePlan(t *testing.T) {
	f := &fakeMigration{failChecks: map[string]int{"bootstrap": 1}}
	env := migrationEnv(f)
	u := newUpdater(t, env, migrationStart)
	const every = 14 * 24 * time.Hour
	plan := MigrationPlan{From: "codfw1dev", To: "codfw2dev", Stages: DefaultMigrationStages(), ReminderEvery: every}

	// Each stage's tasks are done ten days before it is due and it is approved a
	// day (and an hour, off the reminders' instants) before; testing runs a month
	// late. A stage starts when the one before is approved.
	at := migrationStart
	var approvals []time.Time
	for i, s := range plan.Stages {
		done, approve := at.AddDate(0, s.Months, -10), at.AddDate(0, s.Months, -1).Add(time.Hour)
		if s.Name == "testing" {
			done, approve = at.AddDate(0, s.Months+1, 0), at.AddDate(0, s.Months+1, 1).Add(time.Hour)
		}
		u.finish(plan.From, plan.To, i, s, done, approve)
		approvals = append(approvals, approve)
		at = approve
	}

	// Mid-bootstrap, while its entry checks have failed once: the plan and the stage.
	var mid MigrationStatus
	var midStage StageStatus
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryPlan)
		if err == nil {
			err = v.Get(&mid)
		}
		if err != nil {
			t.Errorf("querying the plan: %v", err)
		}
		v, err = env.QueryWorkflowByID(MigrationStageID(plan.From, plan.To, 1, "bootstrap"), QueryStage)
		if err == nil {
			err = v.Get(&midStage)
		}
		if err != nil {
			t.Errorf("querying the stage: %v", err)
		}
	}, migrationStart.AddDate(0, 6, 5).Sub(migrationStart))

	env.ExecuteWorkflow(CloudMigration, plan)
	if !env.IsWorkflowCompleted() {
		t.Fatal("the migration did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var st MigrationStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}

	if want := migrationStart.AddDate(0, 27, 0); !st.PlannedEnd.Equal(want) {
		t.Errorf("planned end %s, want %s (27 months)", st.PlannedEnd, want)
	}
	if !st.Finished.Equal(approvals[len(approvals)-1]) {
		t.Errorf("finished %s, want the last approval %s", st.Finished, approvals[len(approvals)-1])
	}
	if got := st.Overdue(); !slices.Equal(got, []string{"testing"}) {
		t.Errorf("overdue stages %v, want [testing]", got)
	}
	if n := f.count(contract.NotifyOverdue, ""); n != 1 || f.count(contract.NotifyOverdue, "testing") != 1 {
		t.Errorf("%d overdue alerts, want one for testing", n)
	}
	if n := f.count(contract.NotifyBlocked, "bootstrap"); n != 1 || f.count(contract.NotifyBlocked, "") != 1 {
		t.Errorf("%d blocked notices, want one for bootstrap", n)
	}
	if n := f.count(contract.NotifyGate, ""); n != len(plan.Stages) {
		t.Errorf("%d gate notices, want one per stage", n)
	}
	start := migrationStart
	for i, s := range st.Stages {
		if s.State != StageDone || s.ApprovedBy != "bd808" || s.TasksDone != len(s.Tasks) {
			t.Errorf("stage %s: %s approved by %q with %d/%d tasks done", s.Name, s.State, s.ApprovedBy, s.TasksDone, len(s.Tasks))
		}
		if !s.Started.Equal(start) || !s.Finished.Equal(approvals[i]) {
			t.Errorf("stage %s ran %s–%s, want %s–%s", s.Name, s.Started, s.Finished, start, approvals[i])
		}
		want := ticks(start, approvals[i], every)
		if s.Name == "bootstrap" {
			want-- // The first tick checked the entry again instead.
		}
		if s.Reminders != want || f.count(contract.NotifyReminder, s.Name) != want {
			t.Errorf("stage %s: %d reminders (%d sent), want %d", s.Name, s.Reminders, f.count(contract.NotifyReminder, s.Name), want)
		}
		start = approvals[i]
	}
	for _, task := range st.Stages[0].Tasks {
		if (task.Automated && task.By != automatedBy) || (!task.Automated && (task.By != "andrew" || task.Note != "T123456")) {
			t.Errorf("task %+v not done by the right one", task)
		}
	}

	if mid.Current != 1 || mid.Stages[0].State != StageDone || mid.Stages[1].State != StageBlocked {
		t.Errorf("mid-bootstrap plan: current %d, states %s/%s; want 1, done/blocked", mid.Current, mid.Stages[0].State, mid.Stages[1].State)
	}
	if len(mid.Stages) == 5 && (!mid.Stages[1].PlannedStart.Equal(migrationStart.AddDate(0, 6, 0)) ||
		!mid.Stages[4].PlannedEnd.Equal(migrationStart.AddDate(0, 27, 0)) || len(mid.Stages[3].Tasks) != 3) {
		t.Errorf("mid-bootstrap plan has wrong planned dates or tasks: %+v", mid.Stages)
	}
	if midStage.State != StageBlocked || len(midStage.Checks) != 1 || midStage.Checks[0].OK {
		t.Errorf("mid-bootstrap stage %s with checks %+v, want blocked on a failed check", midStage.State, midStage.Checks)
	}
}

func TestCloudMigrationContinuesAsNewBetweenStages(t *testing.T) {
	f := &fakeMigration{}
	env := migrationEnv(f)
	u := newUpdater(t, env, migrationStart)
	stages := []StagePlan{{Name: "one", Months: 1, Tasks: []TaskPlan{{Name: "a"}}}, {Name: "two", Months: 1, Tasks: []TaskPlan{{Name: "b"}}}}
	plan := MigrationPlan{From: "codfw1dev", To: "codfw2dev", Stages: stages, MaxEventsPerRun: 2}
	// The stage itself continues as new after two events too: it must survive it.
	u.finish(plan.From, plan.To, 0, stages[0], migrationStart.AddDate(0, 0, 10), migrationStart.AddDate(0, 0, 20))
	var runs int
	env.RegisterDelayedCallback(func() {
		var st StageStatus
		v, err := env.QueryWorkflowByID(MigrationStageID(plan.From, plan.To, 0, "one"), QueryStage)
		if err == nil {
			err = v.Get(&st)
		}
		if err != nil {
			t.Errorf("querying stage one: %v", err)
		}
		runs = st.Runs
	}, 15*24*time.Hour)
	env.ExecuteWorkflow(CloudMigration, plan)
	var next MigrationPlan
	wftest.ContinuedAsNew(t, env, "", &next)
	if runs < 2 {
		t.Errorf("stage one is in run %d on day 15, want it to have continued as new", runs)
	}
	st := next.State
	if st == nil || st.Current != 1 || st.Runs != 1 || st.Stages[0].State != StageDone || st.Stages[0].ApprovedBy != "bd808" ||
		st.Stages[1].State != StagePending || !st.Stages[0].Finished.Equal(migrationStart.AddDate(0, 0, 20)) {
		t.Errorf("carried state %+v, want stage one done and stage two next", st)
	}
}

func TestCloudMigrationRefusesABadPlan(t *testing.T) {
	env := migrationEnv(&fakeMigration{})
	stages := DefaultMigrationStages()
	stages[2].Name = "procure"
	env.ExecuteWorkflow(CloudMigration, MigrationPlan{From: "eqiad1", To: "eqiad2", Stages: stages})
	var app *temporal.ApplicationError
	err := env.GetWorkflowError()
	if !errors.As(err, &app) || app.Type() != contract.ErrInvalidConfig || !strings.Contains(err.Error(), `stages[2].name: "procure" is used by an earlier stage`) {
		t.Errorf("error %v, want an invalid config naming stages[2]", err)
	}
}

func TestMigrationStageID(t *testing.T) {
	if got := MigrationStageID("codfw1dev", "codfw2dev", 1, "openstack helm"); got != "migration/codfw1dev-codfw2dev/2-openstack-helm" {
		t.Errorf("MigrationStageID = %q", got)
	}
}
