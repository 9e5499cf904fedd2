package promotions

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
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/wikimedia/conveyor/activities/contract"
)

const (
	promoImage  = "localhost:5000/hello@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	stableImage = "localhost:5000/hello@sha256:0000000000000000000000000000000000000000000000000000000000000000"
)

// fakePromote stands in for the promotion's activities under their contract
// names and records each call as a short line.
type fakePromote struct {
	mu    sync.Mutex
	calls []string
	plan  contract.PromotionPlan
	// running is what each cluster's stable release runs ("" for none).
	running map[string]string
	// failAnalysis makes the analysis of "cluster/weight" fail.
	failAnalysis string
}

func newFakePromote(plan contract.PromotionPlan) *fakePromote {
	return &fakePromote{plan: plan, running: map[string]string{"eqiad": stableImage, "codfw": stableImage}}
}

func (f *fakePromote) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakePromote) matching(prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakePromote) register(env *testsuite.TestWorkflowEnvironment) {
	reg := func(fn any, name string) { env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name}) }
	reg(func(_ context.Context, in contract.PromotionConfigInput) (contract.PromotionConfigOutput, error) {
		f.record("config %s@%s", in.Service, in.Ref)
		return contract.PromotionConfigOutput{Commit: wftest.PromoCommit, Plan: f.plan, Simulated: []string{"codfw"}}, nil
	}, contract.PromotionConfig.Name)
	reg(func(_ context.Context, in contract.PromotionDeployInput) (contract.PromotionDeployOutput, error) {
		env := in.Namespace
		if env == "hello-staging" {
			f.record("deploy staging %d", in.Replicas)
			return contract.PromotionDeployOutput{Revision: 1}, nil
		}
		f.mu.Lock()
		prev := f.running[in.Cluster]
		if !in.OnlyIfAbsent || prev == "" {
			f.running[in.Cluster] = in.Image
		}
		f.mu.Unlock()
		if in.OnlyIfAbsent {
			f.record("lookup %s", in.Cluster)
		} else {
			f.record("deploy %s %d history %d simulated %v", in.Cluster, in.Replicas, in.HistoryMax, in.Simulated)
		}
		return contract.PromotionDeployOutput{Revision: 7, Previous: prev}, nil
	}, contract.PromotionDeploy.Name)
	reg(func(_ context.Context, in contract.PromotionSmokeInput) (contract.PromotionSmokeOutput, error) {
		f.record("smoke %s %s", in.Namespace, in.Path)
		return contract.PromotionSmokeOutput{URL: "http://10.96.0.20:8080/", Status: 200, Detail: "GET / answered 200"}, nil
	}, contract.PromotionSmoke.Name)
	reg(func(_ context.Context, in contract.CanarySetInput) (contract.CanarySetOutput, error) {
		f.record("set %s %d/%d", in.Cluster, in.CanaryReplicas, in.StableReplicas)
		return contract.CanarySetOutput{CanaryReady: in.CanaryReplicas, StableReady: in.StableReplicas}, nil
	}, contract.CanarySet.Name)
	reg(func(_ context.Context, in contract.CanaryAnalyzeInput) (contract.Analysis, error) {
		f.mu.Lock()
		n := len(f.matching0("analyze " + in.Cluster))
		f.mu.Unlock()
		key := fmt.Sprintf("%s/%d", in.Cluster, f.plan.Steps[n].Weight)
		f.record("analyze %s", in.Cluster)
		if key == f.failAnalysis {
			return contract.Analysis{Requests: 50, Errors: 50, ErrorRatio: 1, Reason: "error ratio 1.00 > 0.01"}, nil
		}
		return contract.Analysis{Requests: 50, Passed: true, Reason: "error ratio 0.00 ≤ 0.01, p95 12ms ≤ 500ms"}, nil
	}, contract.CanaryAnalyze.Name)
	reg(func(_ context.Context, in contract.CanaryRemoveInput) error {
		f.record("remove %s %d", in.Cluster, in.StableReplicas)
		return nil
	}, contract.CanaryRemove.Name)
	reg(func(_ context.Context, in contract.PromotionNotifyInput) error {
		f.record("notify %s", in.Kind)
		return nil
	}, contract.PromotionNotify.Name)
}

// matching0 is matching for a caller holding the lock.
func (f *fakePromote) matching0(prefix string) []string {
	var out []string
	for _, c := range f.calls {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

type promoTest struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment
	f   *fakePromote
	n   int
	// refused collects the validators' refusals.
	refused []string
}

func newPromoTest(t *testing.T, plan contract.PromotionPlan) *promoTest {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(Promotion)
	f := newFakePromote(plan)
	f.register(env)
	return &promoTest{t: t, env: env, f: f}
}

// update sends verb as an update after delay; wantRefused says the validator
// must refuse it.
func (p *promoTest) update(delay time.Duration, verb, approver, reason string, wantRefused bool) {
	p.n++
	id := fmt.Sprintf("u%d", p.n)
	p.env.RegisterDelayedCallback(func() {
		p.env.UpdateWorkflow(verb, id, &testsuite.TestUpdateCallback{
			OnAccept: func() {
				if wantRefused {
					p.t.Errorf("%s by %q was accepted, want a refusal", verb, approver)
				}
			},
			OnReject: func(err error) {
				if !wantRefused {
					p.t.Errorf("%s by %q refused: %v", verb, approver, err)
				}
				p.refused = append(p.refused, err.Error())
			},
			OnComplete: func(any, error) {},
		}, PromotionDecision{Approver: approver, Reason: reason})
	}, delay)
}

func (p *promoTest) signal(delay time.Duration, verb string, arg any) {
	p.env.RegisterDelayedCallback(func() { p.env.SignalWorkflow(verb, arg) }, delay)
}

func (p *promoTest) run() (PromotionStatus, error) {
	p.env.ExecuteWorkflow(Promotion, PromotionInput{Service: "hello", Image: promoImage,
		Source: PromotionSource{Project: "hello", Pipeline: "batch/hello/main/build-1"}})
	if !p.env.IsWorkflowCompleted() {
		p.t.Fatal("the promotion did not complete")
	}
	err := p.env.GetWorkflowError()
	var st PromotionStatus
	v, qerr := p.env.QueryWorkflow(workflows.QueryStatus)
	if qerr != nil {
		p.t.Fatalf("status query: %v", qerr)
	}
	if err := v.Get(&st); err != nil {
		p.t.Fatal(err)
	}
	return st, err
}

func TestPromotionHappyPathBothClusters(t *testing.T) {
	p := newPromoTest(t, wftest.PromotionPlan())
	p.update(30*time.Minute, PromoteApprove, "alice", "staging looks good", false)
	st, err := p.run()
	if err != nil {
		t.Fatalf("promotion failed: %v", err)
	}
	want := []string{
		"config hello@", "deploy staging 1", "smoke hello-staging /healthz", "notify gate",
		"notify approved",
		"lookup eqiad", "set eqiad 1/3", "analyze eqiad", "set eqiad 2/2", "analyze eqiad", "set eqiad 4/0", "analyze eqiad",
		"deploy eqiad 4 history 5 simulated false", "remove eqiad 4",
		"lookup codfw", "set codfw 1/3", "analyze codfw", "set codfw 2/2", "analyze codfw", "set codfw 4/0", "analyze codfw",
		"deploy codfw 4 history 5 simulated true", "remove codfw 4",
		"notify promoted",
	}
	if !slices.Equal(p.f.calls, want) {
		t.Errorf("calls\n got %q\nwant %q", p.f.calls, want)
	}
	if st.Stage != PromotionStagePromoted || st.ConfigCommit != wftest.PromoCommit || st.ApprovedBy != "alice" {
		t.Errorf("status: stage %s, commit %s, approved by %s", st.Stage, st.ConfigCommit, st.ApprovedBy)
	}
	for _, c := range st.Clusters {
		if c.State != ClusterPromoted || c.Previous != stableImage || c.Revision != 7 {
			t.Errorf("cluster %+v", c)
		}
	}
	if !st.Clusters[1].Simulated || st.Clusters[0].Simulated {
		t.Errorf("simulated flags: %+v", st.Clusters)
	}
	if len(st.Decisions) != 1 || st.Decisions[0].Approver != "alice" || st.Decisions[0].Via != "update" || !st.Decisions[0].Accepted ||
		st.Decisions[0].Reason != "staging looks good" || st.Decisions[0].At.IsZero() {
		t.Errorf("decisions %+v", st.Decisions)
	}
	if st.LastAnalysis == nil || st.LastAnalysis.Cluster != "codfw" || st.LastAnalysis.Weight != 100 || !st.LastAnalysis.Passed {
		t.Errorf("last analysis %+v", st.LastAnalysis)
	}
	if p.f.running["eqiad"] != promoImage || p.f.running["codfw"] != promoImage {
		t.Errorf("stable releases run %v", p.f.running)
	}
}

func TestPromotionWeightsFollowReplicaRatio(t *testing.T) {
	for _, tc := range []struct{ weight, replicas, canary, stable int }{
		{1, 4, 1, 3}, {10, 4, 1, 3}, {25, 4, 1, 3}, {50, 4, 2, 2}, {63, 4, 3, 1}, {99, 4, 4, 0}, {100, 4, 4, 0},
		{1, 100, 1, 99}, {10, 20, 2, 18}, {100, 1, 1, 0}, {1, 1, 1, 0},
	} {
		c, s := CanaryReplicas(tc.weight, tc.replicas)
		if c != tc.canary || s != tc.stable {
			t.Errorf("CanaryReplicas(%d, %d) = %d/%d, want %d/%d", tc.weight, tc.replicas, c, s, tc.canary, tc.stable)
		}
	}
}

func TestPromotionNonApproverRefusedAndSignalIgnored(t *testing.T) {
	p := newPromoTest(t, wftest.PromotionPlan())
	p.update(10*time.Minute, PromoteApprove, "mallory", "trust me", true)
	p.update(11*time.Minute, PromoteApprove, "", "", true)
	p.signal(12*time.Minute, PromoteApprove, PromotionDecision{Approver: "mallory", Reason: "via the UI"})
	p.signal(13*time.Minute, PromoteApprove, "not an object, but a name: no")
	p.signal(14*time.Minute, PromoteApprove, map[string]any{"approver": 42})
	p.update(15*time.Minute, PromoteRollback, "alice", "", true)
	p.update(16*time.Minute, PromoteFull, "alice", "", true)
	p.env.RegisterDelayedCallback(func() {
		v, err := p.env.QueryWorkflow(workflows.QueryStatus)
		if err != nil {
			t.Fatal(err)
		}
		var st PromotionStatus
		_ = v.Get(&st)
		if st.Stage != PromotionStageGate || st.ApprovedBy != "" || len(p.f.matching("lookup")) != 0 {
			t.Errorf("after refusals: stage %s, approved by %q, calls %q", st.Stage, st.ApprovedBy, p.f.calls)
		}
	}, 20*time.Minute)
	p.signal(25*time.Minute, PromoteApprove, PromotionDecision{Approver: "bob", Reason: "ok from the UI"})
	st, err := p.run()
	if err != nil {
		t.Fatalf("promotion failed: %v", err)
	}
	for i, want := range []string{`"mallory" is not an approver of hello`, "approver is empty", "nothing to roll back", "has not passed its gate"} {
		if i >= len(p.refused) || !strings.Contains(p.refused[i], want) {
			t.Errorf("refusal %d: %q, want one containing %q", i, p.refused, want)
		}
	}
	if !strings.Contains(strings.Join(p.refused, "\n"), "alice, bob") {
		t.Errorf("a non-approver's refusal should list the approvers: %q", p.refused)
	}
	var ignored []DecisionRecord
	for _, d := range st.Decisions {
		if !d.Accepted {
			ignored = append(ignored, d)
		}
	}
	// The bare string is taken as a name, which is no approver's.
	if len(ignored) != 3 || ignored[0].Approver != "mallory" || ignored[0].Via != "signal" || !strings.Contains(ignored[0].Note, "not an approver") ||
		!strings.Contains(ignored[2].Note, "is not {\"approver\"") {
		t.Errorf("ignored signals %+v", ignored)
	}
	if st.ApprovedBy != "bob" || st.Stage != PromotionStagePromoted {
		t.Errorf("approved by %q, stage %s", st.ApprovedBy, st.Stage)
	}
}

func TestPromotionRejectLeavesProductionUnchanged(t *testing.T) {
	p := newPromoTest(t, wftest.PromotionPlan())
	p.update(2*time.Hour, PromoteReject, "bob", "not during the freeze", false)
	st, err := p.run()
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != contract.ErrPromotionRejected || !strings.Contains(app.Error(), "not during the freeze") {
		t.Fatalf("error %v, want %s", err, contract.ErrPromotionRejected)
	}
	if n := len(p.f.matching("lookup")) + len(p.f.matching("set")) + len(p.f.matching("deploy eqiad")) + len(p.f.matching("remove")); n != 0 {
		t.Errorf("production was touched: %q", p.f.calls)
	}
	if st.Stage != PromotionStageRejected || p.f.running["eqiad"] != stableImage {
		t.Errorf("stage %s, eqiad runs %s", st.Stage, p.f.running["eqiad"])
	}
	// Two reminders before the decision (at 1h and 2h: the one due at the
	// decision's time may go either way) and a notification of the outcome.
	if r := len(p.f.matching("notify reminder")); r < 1 || r > 2 || st.Reminders != r {
		t.Errorf("%d reminders (status %d)", r, st.Reminders)
	}
	if len(p.f.matching("notify rejected")) != 1 {
		t.Errorf("no rejection notice: %q", p.f.calls)
	}
}

func TestPromotionPauseTimeoutAborts(t *testing.T) {
	plan := wftest.PromotionPlan()
	plan.PauseTimeout = 6 * time.Hour
	p := newPromoTest(t, plan)
	start := p.env.Now()
	st, err := p.run()
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != contract.ErrPromotionTimedOut || !strings.Contains(app.Error(), "6h0m0s") {
		t.Fatalf("error %v, want %s", err, contract.ErrPromotionTimedOut)
	}
	if got := st.Finished.Sub(start); got < 6*time.Hour || got > 6*time.Hour+time.Minute {
		t.Errorf("gave up after %s, want 6h", got)
	}
	if st.Reminders != 5 || len(p.f.matching("notify reminder")) != 5 {
		t.Errorf("%d reminders, want 5 (every hour before the 6h timeout)", st.Reminders)
	}
	if len(p.f.matching("lookup")) != 0 || st.Stage != PromotionStageTimedOut {
		t.Errorf("stage %s, calls %q", st.Stage, p.f.calls)
	}
}

func TestPromotionFailedAnalysisRollsBack(t *testing.T) {
	p := newPromoTest(t, wftest.PromotionPlan())
	p.f.failAnalysis = "eqiad/50"
	p.update(time.Minute, PromoteApprove, "alice", "", false)
	st, err := p.run()
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != contract.ErrPromotionRolledBack || !strings.Contains(app.Error(), "error ratio 1.00 > 0.01") {
		t.Fatalf("error %v, want %s with the analysis' reason", err, contract.ErrPromotionRolledBack)
	}
	want := []string{"lookup eqiad", "set eqiad 1/3", "analyze eqiad", "set eqiad 2/2", "analyze eqiad", "remove eqiad 4"}
	var prod []string
	for _, c := range p.f.calls {
		if strings.Contains(c, "eqiad") || strings.Contains(c, "codfw") {
			prod = append(prod, c)
		}
	}
	if !slices.Equal(prod, want) {
		t.Errorf("production calls\n got %q\nwant %q", prod, want)
	}
	if p.f.running["eqiad"] != stableImage || st.Clusters[0].State != ClusterRolledBack || st.Clusters[1].State != ClusterPending {
		t.Errorf("eqiad runs %s, clusters %+v", p.f.running["eqiad"], st.Clusters)
	}
	if st.Stage != PromotionStageRolledBack || st.LastAnalysis == nil || st.LastAnalysis.Passed || st.LastAnalysis.Weight != 50 {
		t.Errorf("stage %s, last analysis %+v", st.Stage, st.LastAnalysis)
	}
}

func TestPromotionRollbackDuringStepPause(t *testing.T) {
	p := newPromoTest(t, wftest.PromotionPlan())
	p.update(time.Minute, PromoteApprove, "alice", "", false)
	// Step 2 (50 %) runs for 10 minutes from about 1 minute on.
	p.update(5*time.Minute, PromoteRollback, "carol", "latency alerts", false)
	st, err := p.run()
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != contract.ErrPromotionRolledBack || !strings.Contains(app.Error(), "carol asked for a rollback: latency alerts") {
		t.Fatalf("error %v", err)
	}
	if n := len(p.f.matching("analyze eqiad")); n != 1 {
		t.Errorf("%d analyses in eqiad, want 1 (the rollback interrupts step 2's pause)", n)
	}
	if got := p.f.matching("remove"); !slices.Equal(got, []string{"remove eqiad 4"}) || p.f.running["eqiad"] != stableImage {
		t.Errorf("removals %q, eqiad runs %s", got, p.f.running["eqiad"])
	}
	if st.Decisions[1].Verb != PromoteRollback || st.Decisions[1].Approver != "carol" {
		t.Errorf("decisions %+v", st.Decisions)
	}
}

func TestPromotionCancelledMidStepRemovesTheCanary(t *testing.T) {
	p := newPromoTest(t, wftest.PromotionPlan())
	p.update(time.Minute, PromoteApprove, "alice", "", false)
	// Step 2 (50 %) runs for 10 minutes from about 1 minute on.
	p.env.RegisterDelayedCallback(p.env.CancelWorkflow, 5*time.Minute)
	st, err := p.run()
	if !temporal.IsCanceledError(err) {
		t.Fatalf("error %v, want cancelled", err)
	}
	if got := p.f.matching("remove"); !slices.Equal(got, []string{"remove eqiad 4"}) || p.f.running["eqiad"] != stableImage {
		t.Errorf("removals %q, eqiad runs %s", got, p.f.running["eqiad"])
	}
	if st.Stage != PromotionStageCancelled || st.Clusters[0].State != ClusterRolledBack {
		t.Errorf("stage %s, clusters %+v", st.Stage, st.Clusters)
	}
	if len(p.f.matching("notify cancelled")) != 1 {
		t.Errorf("no notice of the cancellation: %q", p.f.calls)
	}
}

func TestPromotionIndefiniteStepPauseResumeAndPromoteFull(t *testing.T) {
	plan := wftest.PromotionPlan()
	plan.Steps = []contract.CanaryStep{{Weight: 10, Indefinite: true}, {Weight: 50, Pause: 30 * time.Minute}, {Weight: 100}}
	p := newPromoTest(t, plan)
	query := func(into *PromotionStatus) func() {
		return func() {
			v, err := p.env.QueryWorkflow(workflows.QueryStatus)
			if err != nil {
				t.Error(err)
				return
			}
			_ = v.Get(into)
		}
	}
	p.update(time.Minute, PromoteApprove, "alice", "", false)
	p.update(2*time.Minute, PromoteResume, "mallory", "", true)
	var held, paused PromotionStatus
	p.env.RegisterDelayedCallback(query(&held), 3*time.Hour)
	p.update(3*time.Hour+time.Minute, PromoteResume, "bob", "10 % looks fine", false)
	// Step 2 runs its 30 minutes; a pause during them holds step 3 back.
	p.signal(3*time.Hour+10*time.Minute, PromotePause, PromotionDecision{Approver: "carol", Reason: "hold on"})
	p.env.RegisterDelayedCallback(query(&paused), 4*time.Hour)
	p.update(5*time.Hour, PromoteFull, "alice", "hotfix", false)
	st, err := p.run()
	if err != nil {
		t.Fatalf("promotion failed: %v", err)
	}
	if !strings.Contains(held.Waiting, "indefinite") || held.Step != 1 || held.Weights.CanaryReplicas != 1 || held.Weights.Actual != 25 {
		t.Errorf("while held: waiting %q, step %d, weights %+v", held.Waiting, held.Step, held.Weights)
	}
	if held.Reminders != 2 && held.Reminders != 3 {
		t.Errorf("%d reminders while held for about 3 hours, want 2 or 3", held.Reminders)
	}
	if !paused.Paused || !strings.Contains(paused.Waiting, "paused") || paused.Step != 2 {
		t.Errorf("while paused: paused %v, waiting %q, step %d", paused.Paused, paused.Waiting, paused.Step)
	}
	if got := p.f.matching("set eqiad"); !slices.Equal(got, []string{"set eqiad 1/3", "set eqiad 2/2"}) {
		t.Errorf("eqiad steps %q, want 10 %% and 50 %% only", got)
	}
	if got := p.f.matching("set codfw"); len(got) != 0 {
		t.Errorf("codfw ran steps %q despite promote-full", got)
	}
	if got := p.f.matching("deploy "); !slices.Equal(got, []string{"deploy staging 1", "deploy eqiad 4 history 5 simulated false", "deploy codfw 4 history 5 simulated true"}) {
		t.Errorf("deploys %q", got)
	}
	if !st.PromoteFull || st.Paused || st.Clusters[1].State != ClusterPromoted {
		t.Errorf("promote-full %v, paused %v, codfw %+v", st.PromoteFull, st.Paused, st.Clusters[1])
	}
	if len(p.refused) != 1 || !strings.Contains(p.refused[0], "mallory") {
		t.Errorf("refusals %q", p.refused)
	}
}

func TestPromotionFirstInstallSkipsTheCanary(t *testing.T) {
	p := newPromoTest(t, wftest.PromotionPlan())
	p.f.running = map[string]string{"eqiad": "", "codfw": promoImage}
	p.update(time.Minute, PromoteApprove, "alice", "", false)
	st, err := p.run()
	if err != nil {
		t.Fatal(err)
	}
	if got := p.f.matching("set"); len(got) != 0 {
		t.Errorf("canary steps %q: eqiad had no release, codfw already ran the image", got)
	}
	if st.Clusters[0].State != ClusterInstalled || st.Clusters[1].State != ClusterPromoted {
		t.Errorf("clusters %+v", st.Clusters)
	}
	if p.f.running["eqiad"] != promoImage {
		t.Errorf("eqiad runs %q", p.f.running["eqiad"])
	}
}

func TestPromotionInvalidInputAndPlan(t *testing.T) {
	p := newPromoTest(t, wftest.PromotionPlan())
	p.env.ExecuteWorkflow(Promotion, PromotionInput{Service: "hello", Image: "localhost:5000/hello:latest"})
	if err := p.env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), "not by digest") {
		t.Errorf("image by tag: %v", err)
	}
	plan := wftest.PromotionPlan()
	plan.Approvers = nil
	p = newPromoTest(t, plan)
	p.env.ExecuteWorkflow(Promotion, PromotionInput{Service: "hello", Image: promoImage})
	if err := p.env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), "approvers is empty") {
		t.Errorf("plan without approvers: %v", err)
	}
}

func TestPromotionContinuesAsNewWhileWaiting(t *testing.T) {
	p := newPromoTest(t, wftest.PromotionPlan())
	// The test environment does not count events: say the history has grown.
	p.env.RegisterDelayedCallback(func() { p.env.SetCurrentHistoryLength(DefaultPromotionMaxHistory) }, 150*time.Minute)
	p.env.ExecuteWorkflow(Promotion, PromotionInput{Service: "hello", Image: promoImage})
	var next PromotionInput
	wftest.ContinuedAsNew(t, p.env, " at the gate", &next)
	if next.State == nil || next.State.Status.Stage != PromotionStageGate || next.State.Status.ConfigCommit != wftest.PromoCommit || next.State.Status.Reminders == 0 {
		t.Fatalf("carried state %+v", next.State)
	}

	// The next run goes on from the gate without reading the configuration or
	// deploying staging again.
	q := newPromoTest(t, wftest.PromotionPlan())
	q.update(time.Minute, PromoteApprove, "bob", "", false)
	q.env.ExecuteWorkflow(Promotion, next)
	if err := q.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(q.f.matching("config")) != 0 || len(q.f.matching("deploy staging")) != 0 || len(q.f.matching("remove")) != 2 {
		t.Errorf("calls of the second run %q", q.f.calls)
	}
	var st PromotionStatus
	_ = q.env.GetWorkflowResult(&st)
	if st.Runs != 2 || st.ApprovedBy != "bob" {
		t.Errorf("runs %d, approved by %q", st.Runs, st.ApprovedBy)
	}
}

func TestPromotionContinuesAsNewAtAnIndefiniteStep(t *testing.T) {
	plan := wftest.PromotionPlan()
	plan.Steps = []contract.CanaryStep{{Weight: 10}, {Weight: 50, Indefinite: true}, {Weight: 100}}
	p := newPromoTest(t, plan)
	p.update(time.Minute, PromoteApprove, "alice", "", false)
	p.env.RegisterDelayedCallback(func() { p.env.SetCurrentHistoryLength(DefaultPromotionMaxHistory) }, 90*time.Minute)
	p.env.ExecuteWorkflow(Promotion, PromotionInput{Service: "hello", Image: promoImage})
	var next PromotionInput
	wftest.ContinuedAsNew(t, p.env, " while held at step 2", &next)
	if s := next.State; s == nil || s.Cluster != 0 || s.Step != 2 || !s.Hold || !s.Prepared || s.Status.Step != 2 || s.Status.Reminders != 2 {
		t.Fatalf("carried state %+v", next.State)
	}

	q := newPromoTest(t, plan)
	q.update(time.Minute, PromoteResume, "bob", "50 % is fine", false)
	q.update(2*time.Hour, PromoteResume, "bob", "codfw too", false)
	var held PromotionStatus
	q.env.RegisterDelayedCallback(func() {
		v, _ := q.env.QueryWorkflow(workflows.QueryStatus)
		_ = v.Get(&held)
	}, 30*time.Second)
	q.env.ExecuteWorkflow(Promotion, next)
	if err := q.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if held.Step != 2 || held.Weights.CanaryReplicas != 2 || !strings.Contains(held.Waiting, "step 2 of 3") {
		t.Errorf("the new run while held: step %d, weights %+v, waiting %q", held.Step, held.Weights, held.Waiting)
	}
	want := []string{"set eqiad 4/0", "analyze eqiad", "deploy eqiad 4 history 5 simulated false", "remove eqiad 4", "lookup codfw"}
	if got := q.f.calls; len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
		t.Errorf("the new run's calls %q, want them to start with %q", got, want)
	}
	if n := len(q.f.matching("notify paused")); n != 1 {
		t.Errorf("%d pause notices in the new run, want 1 (codfw's step 2, not eqiad's again)", n)
	}
}

func TestPromotionID(t *testing.T) {
	if got := PromotionID("hello", promoImage); got != "promote/hello/111111111111" {
		t.Errorf("PromotionID = %q", got)
	}
}
