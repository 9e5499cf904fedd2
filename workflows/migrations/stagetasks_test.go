package migrations

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/workflows/internal/wftest"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/activities/contract"
)

// stageFakes stand in for the activities of the stages' task workflows and for
// ProjectMigration, and record what they were asked.
type stageFakes struct {
	mu sync.Mutex
	// failQuota names projects whose quota change fails for good.
	failQuota []string
	quotas    []contract.QuotaInput
	// discovered is ListMigrationProjects' answer.
	discovered []string
	// failTest names a battery test that fails; previous is the recorded history.
	failTest string
	previous []contract.BatteryRun
	recorded []contract.BatteryRun
	// leftovers is what ListLeftovers finds; deleted what DeleteLeftovers got.
	leftovers []contract.Leftover
	deleted   []contract.Leftover
	// children counts ProjectMigration children; running/maxRunning their overlap.
	children            []ProjectMigrationInput
	running, maxRunning int
	// childTime is how long each ProjectMigration child takes.
	childTime time.Duration
}

// registerStageTaskFakes registers the task workflows with fakes that find
// nothing to do, for the tests of the whole plan.
func registerStageTaskFakes(env *testsuite.TestWorkflowEnvironment) { (&stageFakes{}).register(env) }

func (f *stageFakes) register(env *testsuite.TestWorkflowEnvironment) {
	env.RegisterWorkflow(TestBattery)
	env.RegisterWorkflow(ProjectsMigration)
	env.RegisterWorkflow(Cleanup)
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in ProjectMigrationInput) (ProjectStatus, error) {
		f.mu.Lock()
		f.children = append(f.children, in)
		f.running++
		f.maxRunning = max(f.maxRunning, f.running)
		f.mu.Unlock()
		if f.childTime > 0 {
			if err := workflow.Sleep(ctx, f.childTime); err != nil {
				return ProjectStatus{}, err
			}
		}
		f.mu.Lock()
		f.running--
		f.mu.Unlock()
		st := ProjectStatus{Project: in.Project, DryRun: in.DryRun, VMs: []VMStatus{{Name: "vm1", State: VMDone}, {Name: "vm2", State: VMDone}}}
		if in.DryRun {
			st.VMs = nil
			st.Plan.Servers = []contract.ServerPlan{{Name: "vm1"}, {Name: "vm2"}}
			st.Plan.Resources = []contract.ResourceAction{{Kind: "flavor", Name: "m1.small", Action: contract.ResourceWillCreate}}
		}
		return st, nil
	}, workflow.RegisterOptions{Name: "ProjectMigration"})
	reg := func(fn any, name string) { env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name}) }
	reg(func(_ context.Context, in contract.QuotaInput) (contract.QuotaOutput, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.quotas = append(f.quotas, in)
		if slices.Contains(f.failQuota, in.Project) {
			return contract.QuotaOutput{}, temporal.NewNonRetryableApplicationError("Keystone has no project named "+in.Project, contract.ErrMigrationInput, nil)
		}
		detail := "set the compute quota of " + in.Project + " to 0"
		if in.DryRun {
			detail = "would set the compute quota of " + in.Project + " to 0"
		}
		return contract.QuotaOutput{Project: in.Project, Detail: detail, Changed: !in.DryRun}, nil
	}, contract.FreezeLegacyQuota.Name)
	reg(func(_ context.Context, in contract.ProjectsInput) (contract.ProjectsOutput, error) {
		var out contract.ProjectsOutput
		for _, n := range f.discovered {
			out.Projects = append(out.Projects, contract.ProjectRef{ID: "id-" + n, Name: n, Servers: 1})
		}
		return out, nil
	}, contract.ListMigrationProjects.Name)
	reg(func(_ context.Context, in contract.BatteryTestInput) (contract.BatteryResult, error) {
		r := contract.BatteryResult{Test: in.Test, OK: in.Test != f.failTest, Detail: "fake " + in.Test}
		if in.Test == contract.BatteryImageCopy {
			r.SourceChecksum, r.CopyChecksum = "abc", "abc"
		}
		return r, nil
	}, contract.RunBatteryTest.Name)
	reg(func(_ context.Context, in contract.RecordBatteryInput) (contract.RecordBatteryOutput, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.recorded = append(f.recorded, in.Run)
		return contract.RecordBatteryOutput{File: "/state/migration/battery.jsonl", Previous: f.previous}, nil
	}, contract.RecordBatteryReport.Name)
	reg(func(_ context.Context, in contract.LeftoversInput) (contract.LeftoversOutput, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		var out contract.LeftoversOutput
		for _, l := range f.leftovers {
			if !slices.Contains(f.deleted, l) {
				out.Resources = append(out.Resources, l)
			}
		}
		return out, nil
	}, contract.ListLeftovers.Name)
	reg(func(_ context.Context, in contract.DeleteLeftoversInput) (contract.DeleteLeftoversOutput, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.deleted = append(f.deleted, in.Resources...)
		return contract.DeleteLeftoversOutput{Deleted: in.Resources}, nil
	}, contract.DeleteLeftovers.Name)
}

// stageTaskEnv is a test environment with the migration's fakes and sf.
func stageTaskEnv(f *fakeMigration, sf *stageFakes) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(migrationStart)
	env.RegisterWorkflow(CloudMigration)
	env.RegisterWorkflow(MigrationStage)
	f.register(env)
	sf.register(env)
	return env
}

func day(n int) time.Time { return migrationStart.AddDate(0, 0, n) }

func TestProjectsMigrationRunsEachMode(t *testing.T) {
	f, sf := &fakeMigration{}, &stageFakes{failQuota: []string{"broken"}}
	env := stageTaskEnv(f, sf)
	u := newUpdater(t, env, migrationStart)
	id := "projects-under-test"
	env.SetStartWorkflowOptions(workflowOptions(id))
	u.at(day(1), id, UpdateTaskDone, TaskCompletion{Task: "tools", By: "andrew"}, true)      // automatic, done
	u.at(day(1), id, UpdateTaskDone, TaskCompletion{Task: "no-such", By: "andrew"}, true)    // unknown
	u.at(day(1), id, UpdateTaskDone, TaskCompletion{Task: "deployment-prep", By: " "}, true) // no one
	u.at(day(10), id, UpdateTaskDone, TaskCompletion{Task: "deployment-prep", By: "andrew", Note: "T1"}, false)
	u.at(day(11), id, UpdateTaskDone, TaskCompletion{Task: "deployment-prep", By: "andrew"}, true) // twice
	u.at(day(12), id, UpdateTaskDone, TaskCompletion{Task: "broken", By: "bd808", Note: "quota fixed by hand"}, false)
	var mid ProjectsStatus
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryProjects)
		if err == nil {
			err = v.Get(&mid)
		}
		if err != nil {
			t.Errorf("querying the projects: %v", err)
		}
	}, day(5).Sub(migrationStart))
	env.ExecuteWorkflow(ProjectsMigration, ProjectsMigrationInput{From: "eqiad1", To: "eqiad2",
		Projects: []ProjectSpec{
			{Name: "quarry", Mode: ModeOrganic},
			{Name: "deployment-prep", Mode: ModeManual, Owners: []string{"andrew@example.org"}},
			{Name: "tools", Mode: ModeAutomatic},
			{Name: "broken", Mode: ModeOrganic},
		},
		ManualDeadline: 30 * 24 * time.Hour, ReminderEvery: 7 * 24 * time.Hour})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var st ProjectsStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if !st.Finished.Equal(day(12)) {
		t.Errorf("finished on %s, want day 12, when the last project was marked done", st.Finished)
	}
	want := map[string]struct {
		by   string
		text string
	}{
		"quarry":          {automatedBy, "set the compute quota of quarry to 0"},
		"deployment-prep": {"andrew", "told andrew@example.org"},
		"tools":           {automatedBy, "2 of 2 server(s) migrated automatically (migrate-project/eqiad1-eqiad2/tools)"},
		"broken":          {"bd808", "Keystone has no project named broken"},
	}
	for _, p := range st.Projects {
		w := want[p.Name]
		if p.State != ProjectDone || p.By != w.by || !strings.Contains(p.Detail, w.text) {
			t.Errorf("project %+v: want done by %s with detail %q", p, w.by, w.text)
		}
	}
	if got := len(u.rejected); got != 4 {
		t.Errorf("rejections %q, want 4", u.rejected)
	}
	if len(sf.quotas) != 2 || len(sf.children) != 1 || sf.children[0].Project != "tools" {
		t.Errorf("quota calls %+v, children %+v; want quarry and broken, and tools", sf.quotas, sf.children)
	}
	if n := f.count(contract.NotifyProjectAssigned, "projects"); n != 1 {
		t.Errorf("%d assignment notices, want 1", n)
	}
	if n := f.count(contract.NotifyProjectReminder, "projects"); n != 1 {
		t.Errorf("%d reminders, want 1 (day 7)", n)
	}
	if n := f.count(contract.NotifyTaskFailed, "projects"); n != 1 {
		t.Errorf("%d failure notices, want 1 for broken", n)
	}
	var waiting ProjectProgress
	for _, p := range mid.Projects {
		if p.Name == "deployment-prep" {
			waiting = p
		}
	}
	if waiting.State != ProjectWaiting || !waiting.Deadline.Equal(migrationStart.AddDate(0, 0, 30)) {
		t.Errorf("on day 5 deployment-prep is %+v, want waiting with a deadline on day 30", waiting)
	}
	if !strings.Contains(mid.Summary, "1 waiting") || !strings.Contains(mid.Summary, "1 failed") {
		t.Errorf("summary on day 5: %q", mid.Summary)
	}
}

func TestProjectsMigrationDiscoversProjectsAndAlertsOverdue(t *testing.T) {
	f, sf := &fakeMigration{}, &stageFakes{discovered: []string{"a", "b"}}
	env := stageTaskEnv(f, sf)
	u := newUpdater(t, env, migrationStart)
	id := "projects-under-test"
	env.SetStartWorkflowOptions(workflowOptions(id))
	u.at(day(20).Add(time.Hour), id, UpdateTaskDone, TaskCompletion{Task: "a", By: "andrew"}, false)
	u.at(day(20).Add(time.Hour), id, UpdateTaskDone, TaskCompletion{Task: "b", By: "andrew"}, false)
	env.ExecuteWorkflow(ProjectsMigration, ProjectsMigrationInput{From: "eqiad1", To: "eqiad2",
		ManualDeadline: 14 * 24 * time.Hour, ReminderEvery: 7 * 24 * time.Hour})
	var st ProjectsStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if len(st.Projects) != 2 || st.Projects[0].Mode != ModeManual || !st.Projects[0].Overdue || st.Projects[0].Reminders != 2 {
		t.Errorf("projects %+v, want a and b in manual mode, overdue, reminded twice", st.Projects)
	}
	if r, o := f.count(contract.NotifyProjectReminder, ""), f.count(contract.NotifyProjectOverdue, ""); r != 4 || o != 2 {
		t.Errorf("%d reminders and %d overdue alerts, want 4 (days 7 and 14) and 2", r, o)
	}
}

func TestProjectsMigrationDryRunChangesNothing(t *testing.T) {
	f, sf := &fakeMigration{}, &stageFakes{}
	env := stageTaskEnv(f, sf)
	env.ExecuteWorkflow(ProjectsMigration, ProjectsMigrationInput{From: "eqiad1", To: "eqiad2", DryRun: true,
		Projects: []ProjectSpec{{Name: "quarry", Mode: ModeOrganic}, {Name: "paws", Mode: ModeManual}, {Name: "tools", Mode: ModeAutomatic}}})
	var st ProjectsStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	wants := []string{"would set the compute quota of quarry", "would tell its members: please migrate project paws",
		"would migrate 2 server(s) automatically: vm1, vm2; would create in eqiad2: flavor m1.small"}
	for i, p := range st.Projects {
		if p.State != ProjectPlanned || !strings.Contains(p.Detail, wants[i]) {
			t.Errorf("project %+v, want planned: %q", p, wants[i])
		}
	}
	if len(f.notes) != 0 || !sf.quotas[0].DryRun || !sf.children[0].DryRun || !strings.HasPrefix(st.Summary, "dry run: 3 project(s)") {
		t.Errorf("notes %v, quota %+v, child %+v, summary %q: a dry run must change nothing", f.notes, sf.quotas, sf.children, st.Summary)
	}
}

func TestProjectsMigrationBoundsProjectsAtOnceAndContinuesAsNew(t *testing.T) {
	f, sf := &fakeMigration{}, &stageFakes{childTime: time.Hour}
	env := stageTaskEnv(f, sf)
	var specs []ProjectSpec
	for _, n := range []string{"p1", "p2", "p3", "p4", "p5", "p6"} {
		specs = append(specs, ProjectSpec{Name: n, Mode: ModeAutomatic})
	}
	env.ExecuteWorkflow(ProjectsMigration, ProjectsMigrationInput{From: "eqiad1", To: "eqiad2", Projects: specs, AtOnce: 2, MaxEventsPerRun: 3})
	var next ProjectsMigrationInput
	wftest.ContinuedAsNew(t, env, "", &next)
	if sf.maxRunning != 2 {
		t.Errorf("%d projects ran at once, want 2", sf.maxRunning)
	}
	done := 0
	for _, p := range next.State.Projects {
		if p.State == ProjectDone {
			done++
		} else if p.State != ProjectPending {
			t.Errorf("project %s is %s across continue-as-new, want done or pending", p.Name, p.State)
		}
	}
	if done < 2 || done == 6 || next.State.Runs != 1 || !next.State.Listed {
		t.Errorf("carried %d done projects in run %d; want some but not all", done, next.State.Runs)
	}
}

func TestMigrationStageRunsATaskWorkflowAndShowsItsProjects(t *testing.T) {
	f, sf := &fakeMigration{}, &stageFakes{}
	env := stageTaskEnv(f, sf)
	u := newUpdater(t, env, migrationStart)
	input, _ := json.Marshal(ProjectsMigrationInput{Projects: []ProjectSpec{{Name: "paws", Mode: ModeManual}, {Name: "quarry", Mode: ModeOrganic}}})
	stage := StagePlan{Name: "migration", Months: 1, Tasks: []TaskPlan{{Name: "projects migrated", Automated: true, Workflow: WorkflowProjectsMigration, Input: input}}}
	stageID := "stage-under-test"
	env.SetStartWorkflowOptions(workflowOptions(stageID))
	taskID := MigrationTaskID(MigrationStageID("eqiad1", "eqiad2", 0, "migration"), "projects migrated")
	u.at(day(3), taskID, UpdateTaskDone, TaskCompletion{Task: "paws", By: "andrew"}, false)
	u.at(day(4), stageID, UpdateApproveStage, StageApproval{Stage: "migration", By: "bd808"}, false)
	var mid StageStatus
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryStage)
		if err == nil {
			err = v.Get(&mid)
		}
		if err != nil {
			t.Errorf("querying the stage: %v", err)
		}
	}, day(2).Sub(migrationStart))
	env.ExecuteWorkflow(MigrationStage, StageInput{From: "eqiad1", To: "eqiad2", Stage: stage})
	var st StageStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	task := mid.Tasks[0]
	if task.State != TaskRunning || task.Workflow != taskID || len(task.Projects) != 2 ||
		task.Projects[0].State != ProjectWaiting || task.Projects[1].State != ProjectDone || !strings.Contains(task.Detail, "1 done, 1 waiting") {
		t.Errorf("on day 2 the task is %+v, want running with paws waiting and quarry done", task)
	}
	task = st.Tasks[0]
	if st.State != StageDone || task.State != TaskDone || task.By != automatedBy || !strings.Contains(task.Detail, "2 done") || task.Projects[0].By != "andrew" {
		t.Errorf("stage %s, task %+v; want done with both projects done", st.State, task)
	}
	if sf.quotas[0].Deployment != "eqiad1" || sf.quotas[0].Project != "quarry" {
		t.Errorf("quota call %+v, want quarry in eqiad1 (the stage's from)", sf.quotas[0])
	}
}

func TestMigrationPlanRefusesBadTaskWorkflows(t *testing.T) {
	for _, c := range []struct {
		task TaskPlan
		want string
	}{
		{TaskPlan{Name: "x", Workflow: WorkflowCleanup}, "automated is not"},
		{TaskPlan{Name: "x", Automated: true, Workflow: "Tempest"}, `workflow "Tempest" is not one a stage can run: use one of TestBattery`},
		{TaskPlan{Name: "x", Automated: true, Workflow: WorkflowCleanup, Input: json.RawMessage(`[1]`)}, "input is not a JSON object"},
		{TaskPlan{Name: "x", Automated: true, Input: json.RawMessage(`{}`)}, "workflow is empty"},
	} {
		p := MigrationPlan{From: "a", To: "b", Stages: []StagePlan{{Name: "s", Months: 1, Tasks: []TaskPlan{c.task}}}}
		if err := p.Validate(); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "stages[0].tasks[0] (x)") {
			t.Errorf("%+v: error %v, want %q", c.task, err, c.want)
		}
	}
}

func TestTestBatteryRecordsAndCompares(t *testing.T) {
	prev := contract.BatteryRun{ID: "battery/1", Results: []contract.BatteryResult{{Test: contract.BatteryKeystone, OK: true}, {Test: contract.BatteryImageCopy, Detail: "checksum differs"}}}
	f, sf := &fakeMigration{}, &stageFakes{previous: []contract.BatteryRun{prev}}
	env := stageTaskEnv(f, sf)
	env.ExecuteWorkflow(TestBattery, BatteryInput{From: "eqiad1", To: "eqiad2", Tests: []string{contract.BatteryKeystone, contract.BatteryImageCopy}})
	var rep BatteryReport
	if err := env.GetWorkflowResult(&rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Passed || len(sf.recorded) != 1 || rep.Run.Results[1].CopyChecksum != "abc" || rep.File == "" {
		t.Errorf("report %+v, want passed, recorded once, with the copy's checksum", rep)
	}
	if len(rep.Changes) != 1 || !strings.Contains(rep.Changes[0], "image-copy: failed in run battery/1, passed now") || len(rep.Previous) != 1 || rep.Previous[0].Passed {
		t.Errorf("changes %q, previous %+v; want image-copy fixed since battery/1", rep.Changes, rep.Previous)
	}
}

func TestTestBatteryFailsWithItsReport(t *testing.T) {
	f, sf := &fakeMigration{}, &stageFakes{failTest: contract.BatteryServer}
	env := stageTaskEnv(f, sf)
	env.ExecuteWorkflow(TestBattery, BatteryInput{From: "eqiad1", To: "eqiad2"})
	var app *temporal.ApplicationError
	err := env.GetWorkflowError()
	if !errors.As(err, &app) || app.Type() != contract.ErrBatteryFailed || !strings.Contains(err.Error(), "4/5 test(s) passed; failed: server (fake server)") {
		t.Fatalf("error %v, want %s naming the server test", err, contract.ErrBatteryFailed)
	}
	var rep BatteryReport
	if err := app.Details(&rep); err != nil || len(rep.Run.Results) != 5 || len(sf.recorded) != 1 {
		t.Errorf("details %+v (%v), want the report of 5 tests, recorded", rep, err)
	}

	env = stageTaskEnv(&fakeMigration{}, &stageFakes{})
	env.ExecuteWorkflow(TestBattery, BatteryInput{From: "eqiad1", To: "eqiad2", Tests: []string{"tempest"}})
	if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), `tests[0] "tempest" is not a test: the tests are keystone, server`) {
		t.Errorf("error %v, want the unknown test named", err)
	}
}

func TestTestBatteryDryRunRunsNothing(t *testing.T) {
	sf := &stageFakes{}
	env := stageTaskEnv(&fakeMigration{}, sf)
	env.ExecuteWorkflow(TestBattery, BatteryInput{From: "eqiad1", To: "eqiad2", DryRun: true})
	var rep BatteryReport
	if err := env.GetWorkflowResult(&rep); err != nil {
		t.Fatal(err)
	}
	if len(sf.recorded) != 0 || len(rep.Run.Results) != 5 || !strings.Contains(rep.Run.Results[1].Detail, "would run: create server conveyor-battery-") {
		t.Errorf("dry run report %+v recorded %d", rep, len(sf.recorded))
	}
}

func TestCleanupDeletesOnlyAfterApproval(t *testing.T) {
	vm := contract.Leftover{Kind: contract.LeftoverServer, ID: "s1", Name: "old-vm", Project: "quarry", MigratedTo: "eqiad2/d1"}
	img := contract.Leftover{Kind: contract.LeftoverImage, ID: "i1", Name: "old-image", Project: "quarry"}
	f, sf := &fakeMigration{}, &stageFakes{leftovers: []contract.Leftover{vm, img}}
	env := stageTaskEnv(f, sf)
	u := newUpdater(t, env, migrationStart)
	id := "cleanup-under-test"
	env.SetStartWorkflowOptions(workflowOptions(id))
	var before []contract.Leftover
	env.RegisterDelayedCallback(func() {
		sf.mu.Lock()
		before = slices.Clone(sf.deleted)
		sf.mu.Unlock()
	}, day(1).Add(11*time.Hour).Sub(migrationStart))
	u.at(day(1), id, UpdateApproveCleanup, CleanupApproval{By: ""}, true)
	u.at(day(1), id, UpdateApproveCleanup, CleanupApproval{By: "bd808", Keep: []string{"nope"}}, true)
	u.at(day(1).Add(12*time.Hour), id, UpdateApproveCleanup, CleanupApproval{By: "bd808", Reason: "T2", Keep: []string{"i1"}}, false)
	env.ExecuteWorkflow(Cleanup, CleanupInput{From: "eqiad1", To: "eqiad2", ReminderEvery: 24 * time.Hour})
	var rep CleanupReport
	if err := env.GetWorkflowResult(&rep); err != nil {
		t.Fatal(err)
	}
	if len(before) != 0 {
		t.Errorf("deleted %v before the approval", before)
	}
	if rep.State != CleanupDone || len(rep.Deleted) != 1 || rep.Deleted[0] != vm || len(rep.Kept) != 1 || len(rep.Remaining) != 1 || rep.ApprovedBy != "bd808" {
		t.Errorf("report %+v, want old-vm deleted, old-image kept and remaining", rep)
	}
	if !strings.Contains(rep.Summary, "1 deleted, 0 already gone, 1 kept, 0 skipped, 1 remaining") || f.count(contract.NotifyCleanup, "cleanup") != 1 || f.count(contract.NotifyReminder, "cleanup") != 1 {
		t.Errorf("summary %q, %d notices", rep.Summary, len(f.notes))
	}
	if len(u.rejected) != 2 || !strings.Contains(u.rejected[1], `keep names "nope", which is not a listed leftover`) {
		t.Errorf("rejections %q", u.rejected)
	}
}

func TestCleanupDryRunOnlyLists(t *testing.T) {
	sf := &stageFakes{leftovers: []contract.Leftover{{Kind: contract.LeftoverServer, ID: "s1", Name: "old-vm", Project: "quarry", MigratedTo: "eqiad2/d1"}}}
	env := stageTaskEnv(&fakeMigration{}, sf)
	env.ExecuteWorkflow(Cleanup, CleanupInput{From: "eqiad1", To: "eqiad2", DryRun: true})
	var rep CleanupReport
	if err := env.GetWorkflowResult(&rep); err != nil {
		t.Fatal(err)
	}
	if len(sf.deleted) != 0 || !strings.Contains(rep.Summary, "dry run: would delete 1 leftover(s) of eqiad1 after approval: server old-vm (s1) in project quarry (migrated to eqiad2/d1)") {
		t.Errorf("summary %q, deleted %v", rep.Summary, sf.deleted)
	}
}

// TestCleanupDeletesOnlyVerifiedOrNamedServers: of the listed servers, the one
// verified migrated and the one the input names are deleted after approval (the
// named one said NOT migrated in the approval's summary); the other is skipped
// and reported with why. Images go as before.
func TestCleanupDeletesOnlyVerifiedOrNamedServers(t *testing.T) {
	migrated := contract.Leftover{Kind: contract.LeftoverServer, ID: "s1", Name: "migrated-vm", Project: "quarry", MigratedTo: "eqiad2/d1"}
	gone := contract.Leftover{Kind: contract.LeftoverServer, ID: "s2", Name: "dest-gone-vm", Project: "quarry", Unverified: "its destination eqiad2/d2 is gone"}
	never := contract.Leftover{Kind: contract.LeftoverServer, ID: "s3", Name: "never-vm", Project: "quarry", Unverified: "no conveyor.migrated-to marker"}
	img := contract.Leftover{Kind: contract.LeftoverImage, ID: "i1", Name: "old-image", Project: "quarry"}
	sf := &stageFakes{leftovers: []contract.Leftover{migrated, gone, never, img}}
	env := stageTaskEnv(&fakeMigration{}, sf)
	u := newUpdater(t, env, migrationStart)
	id := "cleanup-verified-under-test"
	env.SetStartWorkflowOptions(workflowOptions(id))
	var awaiting CleanupReport
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryCleanup)
		if err == nil {
			err = v.Get(&awaiting)
		}
		if err != nil {
			t.Error(err)
		}
	}, time.Hour)
	u.at(day(1), id, UpdateApproveCleanup, CleanupApproval{By: "bd808"}, false)
	env.ExecuteWorkflow(Cleanup, CleanupInput{From: "eqiad1", To: "eqiad2", Servers: []string{"never-vm"}})
	var rep CleanupReport
	if err := env.GetWorkflowResult(&rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"3 leftover(s) of eqiad1 await approval", "migrated-vm (s1) in project quarry (migrated to eqiad2/d1)",
		"never-vm (s3) in project quarry (NOT migrated: no conveyor.migrated-to marker; named in the cleanup's servers)",
		"not deleting 1 server(s) not verified migrated", "dest-gone-vm (s2) in project quarry: its destination eqiad2/d2 is gone"} {
		if !strings.Contains(awaiting.Summary, want) {
			t.Errorf("summary awaiting approval %q lacks %q", awaiting.Summary, want)
		}
	}
	var deleted []string
	for _, l := range sf.deleted {
		deleted = append(deleted, l.ID)
	}
	if !slices.Equal(deleted, []string{"s1", "s3", "i1"}) {
		t.Errorf("deleted %v, want s1 (migrated), s3 (named) and i1", deleted)
	}
	if len(rep.Skipped) != 1 || rep.Skipped[0].ID != "s2" || !strings.Contains(rep.Summary, "3 deleted, 0 already gone, 0 kept, 1 skipped") {
		t.Errorf("report %+v, want s2 skipped", rep)
	}
}

// TestCleanupRefusesUnknownOrAmbiguousServers: a name in the input's servers
// must point at exactly one listed server.
func TestCleanupRefusesUnknownOrAmbiguousServers(t *testing.T) {
	a := contract.Leftover{Kind: contract.LeftoverServer, ID: "s1", Name: "twin", Project: "quarry"}
	b := contract.Leftover{Kind: contract.LeftoverServer, ID: "s2", Name: "twin", Project: "quarry"}
	for _, c := range []struct{ name, want string }{{"typo", `servers names "typo", which is no server`}, {"twin", `which 2 servers in scope are called (s1, s2): give the id`}} {
		sf := &stageFakes{leftovers: []contract.Leftover{a, b}}
		env := stageTaskEnv(&fakeMigration{}, sf)
		env.ExecuteWorkflow(Cleanup, CleanupInput{From: "eqiad1", To: "eqiad2", Servers: []string{c.name}})
		if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("servers %q: %v, want %q", c.name, err, c.want)
		}
		if len(sf.deleted) != 0 {
			t.Errorf("servers %q: deleted %v", c.name, sf.deleted)
		}
	}
}

// TestCleanupWithOnlySkippedServersAsksNothing: when every leftover is a server
// that is neither verified migrated nor named, nothing awaits approval.
func TestCleanupWithOnlySkippedServersAsksNothing(t *testing.T) {
	sf := &stageFakes{leftovers: []contract.Leftover{{Kind: contract.LeftoverServer, ID: "s3", Name: "never-vm", Project: "quarry", Unverified: "no conveyor.migrated-to marker"}}}
	f := &fakeMigration{}
	env := stageTaskEnv(f, sf)
	env.ExecuteWorkflow(Cleanup, CleanupInput{From: "eqiad1", To: "eqiad2"})
	var rep CleanupReport
	if err := env.GetWorkflowResult(&rep); err != nil {
		t.Fatal(err)
	}
	if rep.State != CleanupDone || len(rep.Skipped) != 1 || len(sf.deleted) != 0 || f.count(contract.NotifyCleanup, "cleanup") != 0 ||
		!strings.Contains(rep.Summary, "nothing of eqiad1 to delete; not deleting 1 server(s)") {
		t.Errorf("report %+v, deleted %v", rep, sf.deleted)
	}
}
