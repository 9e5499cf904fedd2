package changes

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/activities/contract"
)

// fakeGerrit stands in for PostReview and records the reviews.
type fakeGerrit struct {
	mu      sync.Mutex
	reviews []contract.ReviewInput
	err     error
}

func (g *fakeGerrit) register(env *testsuite.TestWorkflowEnvironment) {
	env.RegisterActivityWithOptions(func(_ context.Context, in contract.ReviewInput) (contract.ReviewOutput, error) {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.err != nil {
			return contract.ReviewOutput{}, g.err
		}
		g.reviews = append(g.reviews, in)
		return contract.ReviewOutput{Labels: map[string]int{"Verified": in.Verified}}, nil
	}, activity.RegisterOptions{Name: contract.PostReview.Name})
}

var verifyInput = VerifyInput{
	Pipeline: PipelineInput{Project: "hello", Repo: "/srv/hello", Ref: "refs/changes/34/1234/2"},
	Change:   ChangeTarget{Project: "hello", Branch: "main", Change: 1234, Patchset: 2, Revision: "3f1c2a9d8e7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d"},
	Report:   true, Trigger: TriggerPatchset,
}

func runVerification(t *testing.T, f *fakeActivities, g *fakeGerrit, in VerifyInput) (VerifyResult, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(ChangeVerification)
	env.RegisterWorkflow(Pipeline)
	f.register(env)
	g.register(env)
	env.ExecuteWorkflow(ChangeVerification, in)
	if !env.IsWorkflowCompleted() {
		t.Fatal("verification did not complete")
	}
	var res VerifyResult
	err := env.GetWorkflowError()
	if err == nil {
		if gerr := env.GetWorkflowResult(&res); gerr != nil {
			t.Fatal(gerr)
		}
	}
	return res, err
}

func TestVerificationVotesPlusOneOnSuccess(t *testing.T) {
	g := &fakeGerrit{}
	res, err := runVerification(t, &fakeActivities{}, g, verifyInput)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != contract.OutcomeSucceeded || res.Verified != 1 || !res.Reported || res.PipelineID != "pipeline/hello/1234/2" {
		t.Errorf("result %+v", res)
	}
	if len(g.reviews) != 1 {
		t.Fatalf("%d reviews, want 1", len(g.reviews))
	}
	r := g.reviews[0]
	if r.Verified != 1 || r.Change != 1234 || r.Patchset != 2 || r.Revision != verifyInput.Change.Revision ||
		r.WorkflowID != "pipeline/hello/1234/2" || r.RunID == "" || !strings.Contains(r.Summary, "publish skipped") {
		t.Errorf("review %+v", r)
	}
}

func TestVerificationVotesMinusOneWithTheFailedStep(t *testing.T) {
	g := &fakeGerrit{}
	// The tests' error has a cause that says less than the error itself.
	f := &fakeActivities{testsErr: temporal.NewNonRetryableApplicationError(
		"tests failed (exit 1):\nFAIL greeting: want hello, got bye", contract.ErrTestsFailed, errors.New("exit code: 1"))}
	res, err := runVerification(t, f, g, verifyInput)
	if err != nil {
		t.Fatalf("a failed pipeline failed the verification: %v", err)
	}
	if res.Outcome != contract.OutcomeFailed || res.Verified != -1 || res.FailedStep != StepRunTests {
		t.Errorf("result %+v", res)
	}
	r := g.reviews[0]
	if r.Verified != -1 || r.FailedStep != StepRunTests || r.Output != "tests failed (exit 1):\nFAIL greeting: want hello, got bye" {
		t.Errorf("review %+v", r)
	}
}

// TestVerificationReviewsTheBuiltCommit: the review names the commit the
// pipeline built, on success and on a failure after the source was fetched
// (which the pipeline's error carries).
func TestVerificationReviewsTheBuiltCommit(t *testing.T) {
	const built = "0123456789abcdef0123456789abcdef01234567" // fakeActivities' PrepareSource
	for name, f := range map[string]*fakeActivities{
		"success":      {},
		"tests failed": {testsErr: temporal.NewNonRetryableApplicationError("tests failed (exit 1)", contract.ErrTestsFailed, nil)},
		"e2e failed":   {e2eErr: temporal.NewNonRetryableApplicationError("check health: want 200, got 500", contract.ErrE2EFailed, nil)},
	} {
		g := &fakeGerrit{}
		if _, err := runVerification(t, f, g, verifyInput); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(g.reviews) != 1 || g.reviews[0].BuiltCommit != built || g.reviews[0].Revision != verifyInput.Change.Revision {
			t.Errorf("%s: reviews %+v, want one naming the built commit %s and the event's revision", name, g.reviews, built)
		}
	}
}

func TestFailedPipelineCarriesItsStatus(t *testing.T) {
	f := &fakeActivities{testsErr: temporal.NewNonRetryableApplicationError("tests failed", contract.ErrTestsFailed, nil)}
	_, err := runPipeline(t, f, verifyInput.Pipeline)
	st, ok := FailedStatus(err)
	if !ok || st.Commit != "0123456789abcdef0123456789abcdef01234567" || st.Step(StepRunTests).State != StepFailed {
		t.Errorf("FailedStatus(%v) = %+v, %v", err, st, ok)
	}
	if step, out := failureOf(err); step != StepRunTests || out != "tests failed" {
		t.Errorf("failureOf = %q, %q", step, out)
	}
}

func TestVerificationWithoutReport(t *testing.T) {
	g := &fakeGerrit{}
	in := verifyInput
	in.Report = false
	res, err := runVerification(t, &fakeActivities{}, g, in)
	if err != nil || res.Reported || len(g.reviews) != 0 || res.Outcome != contract.OutcomeSucceeded {
		t.Errorf("result %+v, %v, reviews %v", res, err, g.reviews)
	}
}

func TestVerificationFailsWhenGerritRefuses(t *testing.T) {
	g := &fakeGerrit{err: temporal.NewNonRetryableApplicationError("no permission to vote", contract.ErrGerritRejected, nil)}
	_, err := runVerification(t, &fakeActivities{}, g, verifyInput)
	if err == nil || !strings.Contains(err.Error(), "no permission to vote") {
		t.Errorf("error %v, want Gerrit's refusal", err)
	}
}

// twoVerifications runs two verifications of the same patchset at once, as a
// recheck during a run does.
func twoVerifications(ctx workflow.Context, in VerifyInput) ([]VerifyResult, error) {
	var futures []workflow.ChildWorkflowFuture
	for i, id := range []string{VerifyID("hello", 1234, 2, ""), VerifyID("hello", 1234, 2, "t1")} {
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: id})
		futures = append(futures, workflow.ExecuteChildWorkflow(cctx, ChangeVerification, in))
		if i == 0 {
			// The first pipeline must be running before the second one tries.
			if err := futures[0].GetChildWorkflowExecution().Get(ctx, nil); err != nil {
				return nil, err
			}
			_ = workflow.Sleep(ctx, 1)
		}
	}
	var out []VerifyResult
	for _, f := range futures {
		var r VerifyResult
		if err := f.Get(ctx, &r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func TestRecheckDuringARunJoinsIt(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(twoVerifications)
	env.RegisterWorkflow(ChangeVerification)
	env.RegisterWorkflow(Pipeline)
	g := &fakeGerrit{}
	(&fakeActivities{}).register(env)
	g.register(env)
	env.ExecuteWorkflow(twoVerifications, verifyInput)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var rs []VerifyResult
	if err := env.GetWorkflowResult(&rs); err != nil {
		t.Fatal(err)
	}
	if rs[0].Outcome != contract.OutcomeSucceeded || rs[1].Outcome != OutcomeJoined || len(g.reviews) != 1 {
		t.Errorf("results %+v, %d reviews: want one run reporting once and the recheck joining it", rs, len(g.reviews))
	}
}

func TestFailureOfWithoutAnActivity(t *testing.T) {
	inner := temporal.NewNonRetryableApplicationError("check hello: want 200, got 500", contract.ErrE2EFailed, nil)
	outer := temporal.NewApplicationErrorWithCause("step deploy-and-test: activity error: check hello: want 200, got 500", "wrapError", inner)
	step, out := failureOf(outer)
	if step != StepDeploy || out != "check hello: want 200, got 500" {
		t.Errorf("failureOf = %q, %q", step, out)
	}
	step, out = failureOf(temporal.NewApplicationError("project is empty", contract.ErrInvalidConfig))
	if step != "" || out != "project is empty" {
		t.Errorf("failureOf without a step = %q, %q", step, out)
	}
}

func TestVerifyID(t *testing.T) {
	if got := VerifyID("mediawiki/services/hello", 1234, 2, ""); got != "verify/mediawiki/services/hello/1234/2" {
		t.Errorf("VerifyID = %q", got)
	}
	if got := VerifyID("hello", 1, 3, "t1767226000"); got != "verify/hello/1/3/t1767226000" {
		t.Errorf("VerifyID = %q", got)
	}
}
