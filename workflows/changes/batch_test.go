package changes

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/workflows"
	"github.com/wikimedia/conveyor/workflows/internal/wftest"

	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// fakeBuilds stands in for the Pipeline child: each build takes duration and is
// recorded with the workflow time it started.
type fakeBuilds struct {
	mu       sync.Mutex
	duration time.Duration
	inputs   []PipelineInput
	ids      []string
	started  []time.Time
}

func (f *fakeBuilds) pipeline(ctx workflow.Context, in PipelineInput) (PipelineStatus, error) {
	f.mu.Lock()
	f.inputs = append(f.inputs, in)
	f.ids = append(f.ids, workflow.GetInfo(ctx).WorkflowExecution.ID)
	f.started = append(f.started, workflow.Now(ctx))
	f.mu.Unlock()
	if err := workflow.Sleep(ctx, f.duration); err != nil {
		return PipelineStatus{}, err
	}
	return PipelineStatus{Project: in.Project, Ref: in.Ref}, nil
}

func (f *fakeBuilds) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.inputs)
}

var batchTarget = BatchTarget{Project: "hello", Repo: "/srv/hello", Branch: "main", Publish: true,
	Settings: BatchSettings{QuietPeriod: 10 * time.Minute, MaxWait: time.Hour}}

func merge(n int) MergeSignal {
	return mergeInto(batchTarget, n)
}

func mergeInto(target BatchTarget, n int) MergeSignal {
	return MergeSignal{Target: target, Change: MergedChange{Key: fmt.Sprintf("t%d", 1000+n), Change: n, Patchset: 1}}
}

// batchEnv is a test environment running MergeBatcher with f as Pipeline.
func batchEnv(f *fakeBuilds) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(MergeBatcher)
	env.RegisterWorkflowWithOptions(f.pipeline, workflow.RegisterOptions{Name: "Pipeline"})
	return env
}

func queryBatcher(t *testing.T, env *testsuite.TestWorkflowEnvironment) BatcherStatus {
	t.Helper()
	v, err := env.QueryWorkflow(QueryBatcher)
	if err != nil {
		t.Fatal(err)
	}
	var st BatcherStatus
	if err := v.Get(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestTwentyMergesMakeOneBuild sends 20 merges a minute apart, each delivered
// twice, and expects one build of the branch head with all 20, a quiet period
// after the last.
func TestTwentyMergesMakeOneBuild(t *testing.T) {
	f := &fakeBuilds{duration: 45 * time.Minute}
	env := batchEnv(f)
	for i := range 20 {
		env.RegisterDelayedCallback(func() {
			env.SignalWorkflow(SignalMerged, merge(i+1))
			env.SignalWorkflow(SignalMerged, merge(i+1))
		}, time.Duration(i)*time.Minute)
	}
	var t0 time.Time
	var waiting, mid, end BatcherStatus
	env.RegisterDelayedCallback(func() { t0 = env.Now() }, 0)
	env.RegisterDelayedCallback(func() { waiting = queryBatcher(t, env) }, 25*time.Minute)
	env.RegisterDelayedCallback(func() { mid = queryBatcher(t, env) }, 35*time.Minute)
	env.RegisterDelayedCallback(func() {
		end = queryBatcher(t, env)
		env.CancelWorkflow()
	}, 3*time.Hour)
	env.ExecuteWorkflow(MergeBatcher, BatcherInput{Target: batchTarget})

	if f.count() != 1 {
		t.Fatalf("%d builds, want 1", f.count())
	}
	if in := f.inputs[0]; in.Ref != "refs/heads/main" || !in.Publish || in.Repo != "/srv/hello" || f.ids[0] != "batch/hello/main/build-1" {
		t.Errorf("build %+v as %s, want the published branch head", in, f.ids[0])
	}
	// The last merge came at 19m: the build is due a quiet period later.
	if len(waiting.State.Pending) != 20 || waiting.Building != nil || waiting.Due.Sub(t0) != 29*time.Minute {
		t.Errorf("before the build: %d pending, building %v, due after %v", len(waiting.State.Pending), waiting.Building, waiting.Due.Sub(t0))
	}
	if got := f.started[0].Sub(t0); got != 29*time.Minute {
		t.Errorf("build started after %v, want 29m", got)
	}
	if mid.Building == nil || len(mid.Building.Changes) != 20 || len(mid.State.Pending) != 0 {
		t.Errorf("during the build: %+v", mid)
	}
	lb := end.State.LastBuild
	if lb == nil || len(lb.Changes) != 20 || lb.Outcome != "succeeded" || end.Building != nil || end.State.Builds != 1 {
		t.Fatalf("after the build: %+v", end)
	}
	if lb.Finished.Sub(lb.Started) != 45*time.Minute {
		t.Errorf("build took %v", lb.Finished.Sub(lb.Started))
	}
}

// TestMergesDuringABuildGoIntoTheNextBatch keeps merging every 5 minutes for two
// hours: builds start at the maximum wait, and each merge is built exactly once.
func TestMergesDuringABuildGoIntoTheNextBatch(t *testing.T) {
	f := &fakeBuilds{duration: 45 * time.Minute}
	env := batchEnv(f)
	var t0 time.Time
	env.RegisterDelayedCallback(func() { t0 = env.Now() }, 0)
	for i := range 24 {
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalMerged, merge(i+1)) }, time.Duration(i)*5*time.Minute+30*time.Second)
	}
	var builds []*BatchBuild
	for h := 1; h <= 12; h++ {
		env.RegisterDelayedCallback(func() {
			st := queryBatcher(t, env)
			if st.Building != nil && (len(builds) == 0 || builds[len(builds)-1].Seq != st.Building.Seq) {
				builds = append(builds, st.Building)
			}
		}, time.Duration(h)*30*time.Minute+time.Second)
	}
	var end BatcherStatus
	env.RegisterDelayedCallback(func() {
		end = queryBatcher(t, env)
		env.CancelWorkflow()
	}, 8*time.Hour)
	env.ExecuteWorkflow(MergeBatcher, BatcherInput{Target: batchTarget})

	seen := map[int]int{}
	for _, b := range builds {
		for _, c := range b.Changes {
			seen[c]++
		}
	}
	if len(seen) != 24 {
		t.Errorf("built changes %v, want each of 24 once", seen)
	}
	for c, n := range seen {
		if n != 1 {
			t.Errorf("change %d built %d times", c, n)
		}
	}
	// Merges at 0:30, 5:30, …, 115:30: the first build starts at the one-hour
	// cap (60:30, merges 0:30–55:30) and runs until 105:30 while merges from
	// 60:30 on wait; their batch reaches its cap at 120:30, before the quiet
	// period after the last merge (125:30).
	if f.count() != 2 || end.State.Builds != 2 || len(builds) != 2 || len(builds[0].Changes) != 12 || len(builds[1].Changes) != 12 {
		t.Errorf("%d builds (state %d, seen %d), want 2 of 12 changes: the first at the cap, then the merges during it and after", f.count(), end.State.Builds, len(builds))
	}
	if got := f.started[0].Sub(t0); got != time.Hour+30*time.Second {
		t.Errorf("first build after %v, want the maximum wait after the first merge, 1h0m30s", got)
	}
	if got := f.started[len(f.started)-1].Sub(t0); got != 2*time.Hour+30*time.Second {
		t.Errorf("second build after %v, want 2h0m30s", got)
	}
	for i := 1; i < len(f.started); i++ {
		if f.started[i].Sub(f.started[i-1]) < 45*time.Minute {
			t.Errorf("build %d started before build %d finished", i+1, i)
		}
	}
}

func TestPausedBatcherHoldsBuildsBack(t *testing.T) {
	f := &fakeBuilds{duration: time.Minute}
	env := batchEnv(f)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.SignalPause, nil) }, 0)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalMerged, merge(1)) }, time.Minute)
	var paused BatcherStatus
	env.RegisterDelayedCallback(func() {
		paused = queryBatcher(t, env)
		env.SignalWorkflow(workflows.SignalResume, nil)
	}, 2*time.Hour)
	env.RegisterDelayedCallback(func() { env.CancelWorkflow() }, 3*time.Hour)
	env.ExecuteWorkflow(MergeBatcher, BatcherInput{Target: batchTarget})
	if !paused.State.Paused || len(paused.State.Pending) != 1 || paused.Building != nil {
		t.Errorf("while paused: %+v", paused)
	}
	if f.count() != 1 {
		t.Errorf("%d builds after resuming, want 1", f.count())
	}
}

func TestBatcherContinuesAsNewWithItsPendingMerges(t *testing.T) {
	f := &fakeBuilds{duration: 30 * time.Minute}
	env := batchEnv(f)
	target := batchTarget
	target.Settings.MaxBatchesPerRun = 1
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalMerged, mergeInto(target, 1)) }, 0)
	// Arrives during the first build: must survive into the next run.
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalMerged, mergeInto(target, 2)) }, 20*time.Minute)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalMerged, mergeInto(target, 1)) }, 21*time.Minute)
	env.ExecuteWorkflow(MergeBatcher, BatcherInput{Target: target})
	var next BatcherInput
	wftest.ContinuedAsNew(t, env, "", &next)
	if next.State.Builds != 1 || len(next.State.Pending) != 1 || next.State.Pending[0].Change != 2 || len(next.State.Seen) != 2 {
		t.Errorf("carried state %+v, want 1 build, change 2 pending and both keys seen", next.State)
	}
}
