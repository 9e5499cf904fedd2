package migrations

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/workflows/internal/wftest"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/wikimedia/conveyor/activities/contract"
)

// fakeCloud stands in for the OpenStack activities in workflow tests: it records
// the calls and fails the steps the test asks it to.
type fakeCloud struct {
	mu      sync.Mutex
	servers []string
	calls   map[string][]string // activity → server ids
	// errorOnce makes MigrateWaitActive fail with ErrServerError for these
	// servers, once each.
	errorOnce map[string]bool
	// problems makes MigrateVerify report a problem for these servers.
	problems     map[string]bool
	preflightDry []bool
	// seq is every call in order, as "activity id".
	seq []string
}

func (f *fakeCloud) record(name, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string][]string{}
	}
	f.calls[name] = append(f.calls[name], id)
	f.seq = append(f.seq, name+" "+id)
}

func (f *fakeCloud) copyImage(_ context.Context, in contract.CopyImageInput) (contract.ImageOutput, error) {
	f.record(contract.MigrateCopyImage.Name, in.VM.ServerID)
	return contract.ImageOutput{ImageID: "copy-" + in.VM.ServerID, HashValue: in.Source.HashValue}, nil
}

// slowCopies makes every image copy take d on the workflow's clock.
func (f *fakeCloud) slowCopies(env *testsuite.TestWorkflowEnvironment, d time.Duration) {
	env.OnActivity(contract.MigrateCopyImage.Name, mock.Anything, mock.Anything).Return(f.copyImage).After(d)
}

// maxLoading is the most VMs that were at once between stopping their source
// and being marked (the steps a project's MaxParallel bounds), by the order of
// the calls.
func (f *fakeCloud) maxLoading() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	loading, most := map[string]bool{}, 0
	for _, c := range f.seq {
		name, id, _ := strings.Cut(c, " ")
		switch name {
		case contract.MigrateStopSource.Name:
			loading[id] = true
		case contract.MigrateMark.Name:
			delete(loading, id)
		}
		most = max(most, len(loading))
	}
	return most
}

func (f *fakeCloud) count(name, id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls[name] {
		if c == id {
			n++
		}
	}
	return n
}

func (f *fakeCloud) register(env *testsuite.TestWorkflowEnvironment) {
	env.RegisterWorkflow(ProjectMigration)
	env.RegisterWorkflow(VMMigration)
	reg := func(fn any, name string) { env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name}) }
	reg(func(_ context.Context, in contract.PreflightInput) (contract.ProjectPlan, error) {
		f.mu.Lock()
		f.preflightDry = append(f.preflightDry, in.DryRun)
		f.mu.Unlock()
		p := contract.ProjectPlan{Project: in.Project, From: in.From, To: in.To, DryRun: in.DryRun,
			Resources: []contract.ResourceAction{{Kind: "flavor", Name: "m1.small", Action: contract.ResourceWillCreate}}}
		for _, s := range f.servers {
			p.Servers = append(p.Servers, contract.ServerPlan{ID: "id-" + s, Name: s, Flavor: "m1.small", State: contract.ServerToMigrate})
		}
		return p, nil
	}, contract.MigratePreflight.Name)
	reg(func(_ context.Context, vm contract.VMRef) (contract.StopSourceOutput, error) {
		f.record(contract.MigrateStopSource.Name, vm.ServerID)
		return contract.StopSourceOutput{Status: "SHUTOFF"}, nil
	}, contract.MigrateStopSource.Name)
	reg(func(_ context.Context, vm contract.VMRef) (contract.ImageOutput, error) {
		f.record(contract.MigrateSnapshot.Name, vm.ServerID)
		return contract.ImageOutput{ImageID: "snap-" + vm.ServerID, HashValue: "h", Reused: f.count(contract.MigrateSnapshot.Name, vm.ServerID) > 1}, nil
	}, contract.MigrateSnapshot.Name)
	reg(f.copyImage, contract.MigrateCopyImage.Name)
	reg(func(_ context.Context, in contract.CreateServerInput) (contract.ServerOutput, error) {
		f.record(contract.MigrateCreateServer.Name, in.VM.ServerID)
		return contract.ServerOutput{ServerID: "dst-" + in.VM.ServerID, Status: "BUILD"}, nil
	}, contract.MigrateCreateServer.Name)
	reg(func(_ context.Context, in contract.DestinationInput) (contract.ServerOutput, error) {
		f.record(contract.MigrateWaitActive.Name, in.VM.ServerID)
		f.mu.Lock()
		fail := f.errorOnce[in.VM.ServerID]
		delete(f.errorOnce, in.VM.ServerID)
		f.mu.Unlock()
		if fail {
			return contract.ServerOutput{}, temporal.NewNonRetryableApplicationError("destination server went to ERROR: No valid host was found", contract.ErrServerError, nil)
		}
		return contract.ServerOutput{ServerID: in.ServerID, Status: "ACTIVE"}, nil
	}, contract.MigrateWaitActive.Name)
	reg(func(_ context.Context, in contract.DestinationInput) (contract.VerifyOutput, error) {
		f.record(contract.MigrateVerify.Name, in.VM.ServerID)
		if f.problems[in.VM.ServerID] {
			return contract.VerifyOutput{Problems: []string{"destination flavor differs"}}, nil
		}
		return contract.VerifyOutput{}, nil
	}, contract.MigrateVerify.Name)
	for _, name := range []string{contract.MigrateSwitchDNS.Name, contract.MigrateMark.Name, contract.MigrateDeleteSource.Name} {
		reg(func(_ context.Context, in contract.DestinationInput) (contract.StepOutput, error) {
			f.record(name, in.VM.ServerID)
			return contract.StepOutput{Detail: name}, nil
		}, name)
	}
}

var projectStart = time.Date(2027, 3, 1, 9, 0, 0, 0, time.UTC)

func projectEnv(f *fakeCloud) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(projectStart)
	f.register(env)
	return env
}

func projectInput() ProjectMigrationInput {
	return ProjectMigrationInput{Project: "tools", From: "eqiad1", To: "eqiad2", MaxParallel: 2, GracePeriod: time.Hour}
}

func TestProjectMigrationMigratesEveryVMAtMostMaxParallelAtOnce(t *testing.T) {
	f := &fakeCloud{servers: []string{"web-1", "web-2", "db-1"}}
	env := projectEnv(f)
	f.slowCopies(env, 10*time.Minute)
	id := ProjectMigrationID("eqiad1", "eqiad2", "tools")
	env.SetStartWorkflowOptions(workflowOptions(id))
	query := func(at time.Duration, into *ProjectStatus) {
		env.RegisterDelayedCallback(func() {
			v, err := env.QueryWorkflow(QueryProgress)
			if err == nil {
				err = v.Get(into)
			}
			if err != nil {
				t.Error(err)
			}
		}, at)
	}
	var copying, grace ProjectStatus
	var child VMProgress
	query(5*time.Minute, &copying)
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflowByID(id+"/id-web-1", QueryVMProgress)
		if err == nil {
			err = v.Get(&child)
		}
		if err != nil {
			t.Error(err)
		}
	}, 5*time.Minute)
	// The first two reach their grace periods (1 hour) at 10 minutes, which
	// frees their slots: the third copies from 10 to 20 minutes.
	query(30*time.Minute, &grace)
	env.ExecuteWorkflow(ProjectMigration, projectInput())
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if got := copying.Count(VMRunning); got != 2 || copying.Count(VMPending) != 1 {
		t.Errorf("5 minutes in: %d VMs running (%+v), want MaxParallel 2 and one pending", got, copying.VMs)
	}
	if child.Step != VMStepCopy {
		t.Errorf("5 minutes in, web-1's VMMigration says %+v, want step %s", child, VMStepCopy)
	}
	if n := f.maxLoading(); n != 2 {
		t.Errorf("%d VMs were between stop and mark at once, want MaxParallel 2", n)
	}
	if got := grace.Count(VMRunning); got != 3 {
		t.Errorf("30 minutes in: %d VMs running (%+v), want all 3 in their grace periods", got, grace.VMs)
	}
	for _, v := range grace.VMs {
		if v.State == VMRunning && (v.Step != VMStepGrace || v.DestinationID == "") {
			t.Errorf("30 minutes in, running VM %+v is not in its grace period with a destination", v)
		}
	}
	for _, v := range f.servers {
		// Counted at the end: each deleted exactly once, after the grace period.
		if n := f.count(contract.MigrateDeleteSource.Name, "id-"+v); n != 1 {
			t.Errorf("VM %s deleted %d times", v, n)
		}
	}
	var st ProjectStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if st.Count(VMDone) != 3 || len(st.VMs) != 3 {
		t.Fatalf("result %+v, want 3 VMs done", st.VMs)
	}
	// The plan is sorted by the preflight; children start in its order.
	if names := []string{st.VMs[0].Name, st.VMs[1].Name, st.VMs[2].Name}; !slices.Equal(names, []string{"web-1", "web-2", "db-1"}) {
		t.Errorf("VM order %v", names)
	}
	for _, v := range st.VMs {
		if v.Result == nil || !v.Result.SourceDeleted || v.DestinationID != "dst-"+v.ID || v.WorkflowID != id+"/"+v.ID {
			t.Errorf("VM %+v, want source deleted, destination dst-%s, child %s/%s", v, v.ID, id, v.ID)
		}
		if n := f.count(contract.MigrateVerify.Name, v.ID); n != 2 {
			t.Errorf("VM %s verified %d times, want twice (before marking and after the grace period)", v.ID, n)
		}
	}
	if !slices.Equal(f.preflightDry, []bool{false}) {
		t.Errorf("preflight runs (dry?) %v, want one real run", f.preflightDry)
	}
}

func TestProjectMigrationDryRunOnlyPlans(t *testing.T) {
	f := &fakeCloud{servers: []string{"a", "b"}}
	env := projectEnv(f)
	in := projectInput()
	in.DryRun = true
	env.ExecuteWorkflow(ProjectMigration, in)
	var st ProjectStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if !st.DryRun || !st.Plan.DryRun || len(st.Plan.Servers) != 2 || st.Plan.Resources[0].Action != contract.ResourceWillCreate {
		t.Errorf("dry run result %+v", st)
	}
	if len(f.calls) != 0 {
		t.Errorf("a dry run called %v", f.calls)
	}
	if st.Count(VMPending) != 2 {
		t.Errorf("dry run VMs %+v, want both pending", st.VMs)
	}
}

func TestProjectMigrationKeepsSourceOfAnErrorVMAndRetrySucceeds(t *testing.T) {
	f := &fakeCloud{servers: []string{"ok", "bad"}, errorOnce: map[string]bool{"id-bad": true}}
	env := projectEnv(f)
	id := "pm-error"
	env.SetStartWorkflowOptions(workflowOptions(id))
	u := newUpdater(t, env, projectStart)
	var failed ProjectStatus
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryProgress)
		if err == nil {
			err = v.Get(&failed)
		}
		if err != nil {
			t.Error(err)
		}
	}, 3*time.Hour)
	u.at(projectStart.Add(4*time.Hour), id, UpdateRetry, RetryRequest{Servers: []string{"nope"}, By: "andrew"}, true)
	u.at(projectStart.Add(4*time.Hour), id, UpdateRetry, RetryRequest{Servers: []string{"ok"}, By: "andrew"}, true)
	u.at(projectStart.Add(4*time.Hour), id, UpdateRetry, RetryRequest{Servers: []string{"bad"}}, true)
	u.at(projectStart.Add(5*time.Hour), id, UpdateRetry, RetryRequest{Servers: []string{"bad"}, By: "andrew"}, false)
	env.ExecuteWorkflow(ProjectMigration, projectInput())
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	bad := failed.VMs[slices.IndexFunc(failed.VMs, func(v VMStatus) bool { return v.Name == "bad" })]
	if bad.State != VMFailed || !strings.Contains(bad.Error, "No valid host") || bad.Step != VMStepWaitActive {
		t.Errorf("after the ERROR the VM is %+v, want failed at %s with the fault", bad, VMStepWaitActive)
	}
	if n := f.count(contract.MigrateDeleteSource.Name, "id-bad"); n != 1 {
		t.Errorf("the ERROR VM's source was deleted %d times, want once (after the retry)", n)
	}
	if n := f.count(contract.MigrateCreateServer.Name, "id-bad"); n != 2 {
		t.Errorf("the ERROR VM was created %d times, want 2 (the retry recreates the errored server)", n)
	}
	wantRejections := []string{`has no server "nope"`, "server ok is done, not failed", "by is empty"}
	if len(u.rejected) != 3 {
		t.Fatalf("rejections %q, want 3", u.rejected)
	}
	for i, w := range wantRejections {
		if !strings.Contains(u.rejected[i], w) {
			t.Errorf("rejection %q does not say %q", u.rejected[i], w)
		}
	}
	var st ProjectStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if st.Count(VMDone) != 2 {
		t.Errorf("result %+v, want both done", st.VMs)
	}
	if v := st.VMs[slices.IndexFunc(st.VMs, func(v VMStatus) bool { return v.Name == "bad" })]; v.Runs != 2 {
		t.Errorf("the retried VM ran %d times, want 2", v.Runs)
	}
}

func TestVMMigrationNeverDeletesAnUnverifiedSource(t *testing.T) {
	f := &fakeCloud{problems: map[string]bool{"s1": true}}
	env := projectEnv(f)
	env.ExecuteWorkflow(VMMigration, VMMigrationInput{VM: contract.VMRef{Project: "p", From: "a", To: "b", ServerID: "s1", ServerName: "one", Key: "k"}, GracePeriod: time.Minute})
	err := env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "destination flavor differs") {
		t.Fatalf("error %v, want the verification's problem", err)
	}
	for _, name := range []string{contract.MigrateMark.Name, contract.MigrateDeleteSource.Name} {
		if n := f.count(name, "s1"); n != 0 {
			t.Errorf("%s ran %d times on an unverified destination", name, n)
		}
	}
}

func TestProjectMigrationPauseStopsNewVMs(t *testing.T) {
	f := &fakeCloud{servers: []string{"a", "b", "c"}}
	env := projectEnv(f)
	id := "pm-pause"
	env.SetStartWorkflowOptions(workflowOptions(id))
	u := newUpdater(t, env, projectStart)
	f.slowCopies(env, 10*time.Minute)
	in := projectInput()
	in.MaxParallel = 1
	u.at(projectStart.Add(time.Minute), id, UpdatePause, PauseRequest{By: ""}, true)
	u.at(projectStart.Add(time.Minute), id, UpdatePause, PauseRequest{By: "andrew", Reason: "maintenance"}, false)
	var paused ProjectStatus
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryProgress)
		if err == nil {
			err = v.Get(&paused)
		}
		if err != nil {
			t.Error(err)
		}
	}, 10*time.Hour)
	u.at(projectStart.Add(11*time.Hour), id, UpdateResume, PauseRequest{By: "andrew"}, false)
	env.ExecuteWorkflow(ProjectMigration, in)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if !paused.Paused || paused.Count(VMDone) != 1 || paused.Count(VMPending) != 2 || !strings.Contains(paused.PausedBy, "maintenance") {
		t.Errorf("while paused: %+v, want the first VM done and two pending", paused)
	}
	var st ProjectStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if st.Count(VMDone) != 3 || st.Paused {
		t.Errorf("result %+v", st)
	}
	if end := env.Now(); !end.After(projectStart.Add(11 * time.Hour)) {
		t.Errorf("finished at %s, before the resume", end)
	}
}

func TestProjectMigrationRefusesADNSZone(t *testing.T) {
	env := projectEnv(&fakeCloud{})
	in := projectInput()
	in.DNSZone = "eqiad1.wikimedia.cloud."
	env.ExecuteWorkflow(ProjectMigration, in)
	if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), "dnsZone") {
		t.Errorf("error %v, want one naming dnsZone", err)
	}
}

func TestProjectMigrationContinuesAsNewWhenItsHistoryGrows(t *testing.T) {
	f := &fakeCloud{servers: []string{"a", "b", "c", "d", "e", "f"}}
	env := projectEnv(f)
	// Two VMs at a time, each copying for 10 minutes: the first two start at
	// once, the next two at 10 minutes.
	f.slowCopies(env, 10*time.Minute)
	in := projectInput()
	in.MaxEventsPerRun = 40
	// The test environment does not count events: say the history has grown
	// past the limit after the second pair started. The run then starts no
	// more VMs, waits for those running, and hands the rest to the next run.
	env.RegisterDelayedCallback(func() { env.SetCurrentHistoryLength(in.MaxEventsPerRun) }, 15*time.Minute)
	env.ExecuteWorkflow(ProjectMigration, in)
	var next ProjectMigrationInput
	wftest.ContinuedAsNew(t, env, "", &next)
	if next.State == nil || next.State.Runs != 1 || next.Project != in.Project || next.MaxEventsPerRun != 40 {
		t.Fatalf("next run's input %+v, want the first run's state and the same settings", next)
	}
	done := next.State.Count(VMDone)
	if done == 0 || done == len(f.servers) || next.State.Count(VMRunning) != 0 || next.State.Count(VMPending) != len(f.servers)-done {
		t.Fatalf("handed on %+v, want some VMs done, none running, the rest pending", next.State.VMs)
	}
	// The next run: no second preflight, every VM migrated once.
	next.MaxEventsPerRun = 0
	env2 := projectEnv(f)
	env2.ExecuteWorkflow(ProjectMigration, next)
	var st ProjectStatus
	if err := env2.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if st.Count(VMDone) != len(f.servers) || st.Runs != 2 {
		t.Errorf("result %+v (runs %d), want all %d done over 2 runs", st.VMs, st.Runs, len(f.servers))
	}
	if len(f.preflightDry) != 1 {
		t.Errorf("%d preflights, want 1", len(f.preflightDry))
	}
	for _, s := range f.servers {
		if n := f.count(contract.MigrateStopSource.Name, "id-"+s); n != 1 {
			t.Errorf("VM %s stopped %d times, want once", s, n)
		}
	}
}
