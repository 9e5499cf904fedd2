package changes

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/wikimedia/conveyor/workflows"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/wikimedia/conveyor/activities/contract"
)

// fakeActivities stands in for the pipeline's activities under their contract names
// and records what was called.
type fakeActivities struct {
	mu        sync.Mutex
	calls     []string
	testsErr  error
	e2eErr    error
	deployErr error
	// cancelDuringDeploy, when set, is called by DeployCandidate, which then waits
	// for the cancellation to reach it.
	cancelDuringDeploy func()
	// deployed are the DeployCandidate inputs, in order.
	deployed []contract.DeployCandidateInput
}

func (f *fakeActivities) record(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
}

func (f *fakeActivities) count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == name {
			n++
		}
	}
	return n
}

const fakeDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000abc"

func (f *fakeActivities) register(env *testsuite.TestWorkflowEnvironment) {
	reg := func(fn any, name string) { env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name}) }
	reg(func(_ context.Context, in contract.PrepareSourceInput) (contract.PrepareSourceOutput, error) {
		f.record(contract.PrepareSource.Name)
		return contract.PrepareSourceOutput{
			Source: contract.Source{Repo: in.Repo, Commit: "0123456789abcdef0123456789abcdef01234567"},
			Settings: contract.Settings{Blubber: ".pipeline/blubber.yaml", TestVariant: "test", ProductionVariant: "production",
				Image: "hello", ServicePort: 8080, E2E: []contract.Check{{Name: "health", Path: "/healthz"}}},
			Variants: []string{"test", "production"},
		}, nil
	}, contract.PrepareSource.Name)
	reg(func(_ context.Context, in contract.BuildVariantInput) (contract.BuildVariantOutput, error) {
		f.record(contract.BuildVariant.Name + ":" + in.Variant)
		if in.Push == "" {
			return contract.BuildVariantOutput{}, nil
		}
		repo, _, _ := strings.Cut(in.Push, ":")
		return contract.BuildVariantOutput{Digest: fakeDigest, Ref: "localhost:5000/" + repo + "@" + fakeDigest}, nil
	}, contract.BuildVariant.Name)
	reg(func(_ context.Context, in contract.RunTestsInput) (contract.RunTestsOutput, error) {
		f.record(contract.RunTests.Name)
		return contract.RunTestsOutput{Output: "10 passed, 0 failed"}, f.testsErr
	}, contract.RunTests.Name)
	reg(func(ctx context.Context, in contract.DeployCandidateInput) (contract.DeployCandidateOutput, error) {
		f.record(contract.DeployCandidate.Name)
		f.mu.Lock()
		f.deployed = append(f.deployed, in)
		f.mu.Unlock()
		if f.cancelDuringDeploy != nil {
			f.cancelDuringDeploy()
			<-ctx.Done()
			return contract.DeployCandidateOutput{}, ctx.Err()
		}
		return contract.DeployCandidateOutput{ServiceURL: "http://10.96.0.10:8080", Revision: 1}, f.deployErr
	}, contract.DeployCandidate.Name)
	reg(func(_ context.Context, in contract.HelmTestInput) error {
		f.record(contract.HelmTest.Name)
		return nil
	}, contract.HelmTest.Name)
	reg(func(_ context.Context, in contract.RunE2EInput) (contract.RunE2EOutput, error) {
		f.record(contract.RunE2E.Name)
		return contract.RunE2EOutput{Results: []contract.CheckResult{{Name: "health", OK: f.e2eErr == nil}}}, f.e2eErr
	}, contract.RunE2E.Name)
	reg(func(_ context.Context, in contract.TeardownInput) error {
		f.record(contract.Teardown.Name)
		return nil
	}, contract.Teardown.Name)
	reg(func(_ context.Context, in contract.PublishImageInput) (contract.PublishImageOutput, error) {
		f.record(contract.PublishImage.Name)
		var refs []string
		for _, t := range in.Tags {
			refs = append(refs, "localhost:5000/"+in.Repository+":"+t+"@"+fakeDigest)
		}
		return contract.PublishImageOutput{Digest: fakeDigest, Refs: refs}, nil
	}, contract.PublishImage.Name)
}

func runPipeline(t *testing.T, f *fakeActivities, in PipelineInput) (PipelineStatus, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(Pipeline)
	f.register(env)
	env.ExecuteWorkflow(Pipeline, in)
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	var st PipelineStatus
	err := env.GetWorkflowError()
	if err == nil {
		if gerr := env.GetWorkflowResult(&st); gerr != nil {
			t.Fatal(gerr)
		}
	} else {
		v, qerr := env.QueryWorkflow(workflows.QueryStatus)
		if qerr != nil {
			t.Fatal(qerr)
		}
		if gerr := v.Get(&st); gerr != nil {
			t.Fatal(gerr)
		}
	}
	return st, err
}

var changeInput = PipelineInput{Project: "hello", Repo: "/srv/hello", Ref: "refs/changes/34/1234/2", Publish: true}

func states(st PipelineStatus) string {
	var s []string
	for _, step := range st.Steps {
		s = append(s, step.Name+"="+string(step.State))
	}
	return strings.Join(s, " ")
}

func TestPipelinePublishesTheDigestItDeployed(t *testing.T) {
	f := &fakeActivities{}
	st, err := runPipeline(t, f, changeInput)
	if err != nil {
		t.Fatal(err)
	}
	want := "build-test=succeeded run-tests=succeeded build-production=succeeded deploy-and-test=succeeded publish=succeeded"
	if got := states(st); got != want {
		t.Errorf("steps: %s\nwant   %s", got, want)
	}
	if st.Step(StepDeploy).Digest != fakeDigest || st.Step(StepPublish).Digest != fakeDigest {
		t.Errorf("deployed %q, published %q: both must be the candidate %s", st.Step(StepDeploy).Digest, st.Step(StepPublish).Digest, fakeDigest)
	}
	if len(st.Published) != 2 || !strings.Contains(st.Published[0], "-production@") || !strings.Contains(st.Published[1], ":change-1234-2@") {
		t.Errorf("published %v, want a timestamp-production tag and a change tag", st.Published)
	}
	if st.Change != 1234 || st.Patchset != 2 || !strings.HasPrefix(st.Namespace, "ci-hello-1234-2-") {
		t.Errorf("change %d/%d namespace %q", st.Change, st.Patchset, st.Namespace)
	}
	if n := f.count(contract.Teardown.Name); n != 1 {
		t.Errorf("teardown ran %d times, want 1", n)
	}
}

func TestPipelineStopsWhenTestsFail(t *testing.T) {
	f := &fakeActivities{testsErr: temporal.NewNonRetryableApplicationError(
		"tests failed (exit 1):\nFAIL greeting: want hello, got bye", contract.ErrTestsFailed, nil)}
	st, err := runPipeline(t, f, changeInput)
	if err == nil {
		t.Fatal("pipeline succeeded with failing tests")
	}
	want := "build-test=succeeded run-tests=failed build-production=skipped deploy-and-test=skipped publish=skipped"
	if got := states(st); got != want {
		t.Errorf("steps: %s\nwant   %s", got, want)
	}
	if d := st.Step(StepRunTests).Detail; !strings.Contains(d, "want hello, got bye") {
		t.Errorf("run-tests detail %q does not carry the test output", d)
	}
	if f.count(contract.RunTests.Name) != 1 {
		t.Errorf("failed tests were retried: %v", f.calls)
	}
	for _, name := range []string{contract.DeployCandidate.Name, contract.PublishImage.Name, "BuildVariant:production"} {
		if f.count(name) != 0 {
			t.Errorf("%s ran after the tests failed", name)
		}
	}
}

// TestPipelineImageComesFromTheTriggersFile: the image the trusted configuration
// gives the project must be the repository's pipeline.image, or nothing is built.
func TestPipelineImageComesFromTheTriggersFile(t *testing.T) {
	in := changeInput
	in.Image = "hello"
	if _, err := runPipeline(t, &fakeActivities{}, in); err != nil {
		t.Fatalf("the same image: %v", err)
	}
	f := &fakeActivities{}
	in.Image = "payments"
	st, err := runPipeline(t, f, in)
	if err == nil || !strings.Contains(err.Error(), "(type: "+contract.ErrInvalidConfig+", retryable: false)") || !strings.Contains(err.Error(), `pipeline.image "hello" in .pipeline/config.yaml is not "payments"`) {
		t.Fatalf("another image: %v, want %s naming both images", err, contract.ErrInvalidConfig)
	}
	if got, want := states(st), "build-test=failed run-tests=skipped build-production=skipped deploy-and-test=skipped publish=skipped"; got != want {
		t.Errorf("steps: %s\nwant   %s", got, want)
	}
	if n := f.count("BuildVariant:test") + f.count("BuildVariant:production"); n != 0 {
		t.Errorf("%d builds ran for a repository claiming another project's image", n)
	}
}

func TestPipelineTearsDownWhenE2EFails(t *testing.T) {
	f := &fakeActivities{e2eErr: temporal.NewNonRetryableApplicationError("check health: want 200, got 500", contract.ErrE2EFailed, nil)}
	st, err := runPipeline(t, f, changeInput)
	if err == nil {
		t.Fatal("pipeline succeeded with a failing e2e check")
	}
	if got := st.Step(StepDeploy).State; got != StepFailed {
		t.Errorf("deploy step %s, want failed", got)
	}
	if f.count(contract.Teardown.Name) != 1 || f.count(contract.PublishImage.Name) != 0 {
		t.Errorf("calls %v: want one teardown and no publish", f.calls)
	}
}

func TestPipelineVerifyOnlyPublishesNothing(t *testing.T) {
	f := &fakeActivities{}
	in := changeInput
	in.Publish = false
	st, err := runPipeline(t, f, in)
	if err != nil {
		t.Fatal(err)
	}
	if st.Step(StepPublish).State != StepSkipped || f.count(contract.PublishImage.Name) != 0 || len(st.Published) != 0 {
		t.Errorf("verify-only run published: %v %v", st.Published, f.calls)
	}
}

func TestPipelineTearsDownOnCancel(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f := &fakeActivities{cancelDuringDeploy: env.CancelWorkflow}
	env.RegisterWorkflow(Pipeline)
	f.register(env)
	env.ExecuteWorkflow(Pipeline, changeInput)
	var canceled *temporal.CanceledError
	if err := env.GetWorkflowError(); !errors.As(err, &canceled) {
		t.Fatalf("workflow error %v, want cancelled", err)
	}
	if f.count(contract.Teardown.Name) != 1 {
		t.Errorf("teardown ran %d times after cancellation, want 1 (calls %v)", f.count(contract.Teardown.Name), f.calls)
	}
}

func TestPipelineRejectsIncompleteInput(t *testing.T) {
	f := &fakeActivities{}
	_, err := runPipeline(t, f, PipelineInput{Project: "hello", Ref: "HEAD"})
	if err == nil || !strings.Contains(err.Error(), "repo is empty") {
		t.Fatalf("error %v, want one naming the empty repo", err)
	}
	if len(f.calls) != 0 {
		t.Errorf("activities ran for invalid input: %v", f.calls)
	}
}

func TestPipelineIDAndNamespace(t *testing.T) {
	if got := PipelineID("mediawiki/services/hello", "refs/changes/34/1234/2"); got != "pipeline/mediawiki/services/hello/1234/2" {
		t.Errorf("PipelineID = %q", got)
	}
	if got := PipelineID("hello", "refs/heads/main"); got != "pipeline/hello/main" {
		t.Errorf("PipelineID = %q", got)
	}
	ns := namespaceName("Mediawiki/Services_Hello.world-with-a-very-long-name-indeed", 1234, 2, "abcdef0123")
	if len(ns) > 63 || strings.ContainsAny(ns, "/_.ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
		t.Errorf("namespace %q is not a DNS label", ns)
	}
}
