package changes

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wikimedia/conveyor/workflows"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/internal/lib/gerrit"
)

// The pipeline's steps, in order.
const (
	StepBuildTest       = "build-test"
	StepRunTests        = "run-tests"
	StepBuildProduction = "build-production"
	StepDeploy          = "deploy-and-test"
	StepPublish         = "publish"
)

// PipelineSteps lists the steps in the order they run.
var PipelineSteps = []string{StepBuildTest, StepRunTests, StepBuildProduction, StepDeploy, StepPublish}

// StepState is where a step is.
type StepState string

// The states of a step.
const (
	StepPending   StepState = "pending"
	StepRunning   StepState = "running"
	StepSucceeded StepState = "succeeded"
	StepFailed    StepState = "failed"
	StepSkipped   StepState = "skipped"
)

// PipelineInput is one change of one repository.
type PipelineInput struct {
	// Project names the repository, e.g. "mediawiki/services/hello" (Gerrit's name).
	Project string `json:"project"`
	// Repo is a git URL or a local path.
	Repo string `json:"repo"`
	// Ref is a Gerrit change ref (refs/changes/34/1234/2), a branch, a tag or a commit.
	Ref string `json:"ref"`
	// Publish tags the tested image into the public repository (step 5). Without it
	// the pipeline verifies only (steps 1–4).
	Publish bool `json:"publish"`
	// Commit, when set, is the commit of Ref to build (a ref update's new
	// commit): built as Ref's when Ref still points at it, else as a commit of
	// no branch (contract.PrepareSourceInput.Commit).
	Commit string `json:"commit,omitempty"`
	// Image, when set, is the image (and so the service it promotes) that
	// conveyor's trusted configuration, the triggers file, gives Project: the
	// repository's pipeline.image must be the same, or the pipeline stops before
	// building. Empty leaves the repository's choice.
	Image string `json:"image,omitempty"`
}

// Step is one step's state for the status query.
type Step struct {
	Name     string    `json:"name"`
	State    StepState `json:"state"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// Detail says what the step did or why it failed (for tests: the output tail).
	Detail string `json:"detail,omitempty"`
	// Digest is the image the step built or published, if any.
	Digest string `json:"digest,omitempty"`
}

// PipelineStatus is what the status query returns and the workflow's result.
type PipelineStatus struct {
	Project  string `json:"project"`
	Repo     string `json:"repo"`
	Ref      string `json:"ref"`
	Change   int    `json:"change,omitempty"`
	Patchset int    `json:"patchset,omitempty"`
	Commit   string `json:"commit,omitempty"`
	Steps    []Step `json:"steps"`
	// Namespace is the isolated deploy's namespace (removed after step 4).
	Namespace string `json:"namespace,omitempty"`
	// Candidate is the production image by digest, as built, deployed and tested.
	Candidate string `json:"candidate,omitempty"`
	// Published lists the public references of the candidate's digest.
	Published []string `json:"published,omitempty"`
	// Error is the failure that ended the pipeline, if any.
	Error string `json:"error,omitempty"`
}

// Step returns the named step.
func (s *PipelineStatus) Step(name string) *Step {
	for i := range s.Steps {
		if s.Steps[i].Name == name {
			return &s.Steps[i]
		}
	}
	return nil
}

// PipelineID is the workflow id of the pipeline for one change (or ref) of one
// project: the same change cannot run twice at once.
func PipelineID(project, ref string) string {
	if c, p, ok := gerrit.ParseChangeRef(ref); ok {
		return fmt.Sprintf("pipeline/%s/%d/%d", project, c, p)
	}
	return fmt.Sprintf("pipeline/%s/%s", project, strings.TrimPrefix(ref, "refs/heads/"))
}

// Validate reports the first missing field of the input.
func (in PipelineInput) Validate() error {
	switch {
	case in.Project == "":
		return errors.New("project is empty: name the repository's project (e.g. --project mediawiki/services/hello)")
	case in.Repo == "":
		return errors.New("repo is empty: give a git URL or a local path (--repo)")
	case in.Ref == "":
		return errors.New("ref is empty: give a branch, commit or change ref such as refs/changes/34/1234/2 (--ref)")
	}
	return nil
}

// Pipeline runs the five steps for one change: build the test variant, run its
// tests, build the production variant, deploy it in isolation and smoke-test it from
// outside the pod, then (with Publish) tag the tested digest into the public
// repository. The isolated release is always torn down, also on failure and on
// cancellation.
func Pipeline(ctx workflow.Context, in PipelineInput) (PipelineStatus, error) {
	r := &pipelineRun{in: in}
	r.st = PipelineStatus{Project: in.Project, Repo: in.Repo, Ref: in.Ref}
	r.st.Change, r.st.Patchset, _ = gerrit.ParseChangeRef(in.Ref)
	for _, name := range PipelineSteps {
		r.st.Steps = append(r.st.Steps, Step{Name: name, State: StepPending})
	}
	if err := workflow.SetQueryHandlerWithOptions(ctx, workflows.QueryStatus, func() (PipelineStatus, error) { return r.st, nil },
		workflow.QueryHandlerOptions{Description: "Each step with its state, timings, image digests and the namespace"}); err != nil {
		return r.st, err
	}
	if err := in.Validate(); err != nil {
		r.st.Error = err.Error()
		return r.st, temporal.NewNonRetryableApplicationError(err.Error(), contract.ErrInvalidConfig, nil)
	}
	attrs := []temporal.SearchAttributeUpdate{workflows.ProjectKey.ValueSet(in.Project)}
	if r.st.Change > 0 {
		attrs = append(attrs, workflows.ChangeKey.ValueSet(int64(r.st.Change)), workflows.PatchsetKey.ValueSet(int64(r.st.Patchset)))
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, attrs...); err != nil {
		return r.st, err
	}
	err := r.run(ctx)
	defer r.describe(ctx)
	if err != nil {
		r.st.Error = err.Error()
		// A workflow's failure carries no result: the status rides in the
		// error, so that a parent (ChangeVerification) knows the commit built.
		if !temporal.IsCanceledError(err) && workflow.GetVersion(ctx, versionFailureStatus, workflow.DefaultVersion, 1) == 1 {
			err = temporal.NewNonRetryableApplicationError("pipeline failed", ErrPipelineFailed, err, r.st)
		}
	}
	return r.st, err
}

// versionFailureStatus marks the pipelines whose failure is an
// ErrPipelineFailed error carrying their PipelineStatus.
const versionFailureStatus = "pipeline-failure-status"

// ErrPipelineFailed is the type of a failed pipeline's error; its details are
// the PipelineStatus (FailedStatus reads it). A cancelled pipeline fails with
// Temporal's cancellation instead.
const ErrPipelineFailed = "PipelineFailed"

// FailedStatus reads the PipelineStatus from a failed pipeline's error (as its
// parent sees it, wrapped in the child workflow's error); ok is false for an
// error that carries none (a cancellation, a pipeline from before
// versionFailureStatus).
func FailedStatus(err error) (st PipelineStatus, ok bool) {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if app, isApp := e.(*temporal.ApplicationError); isApp && app.Type() == ErrPipelineFailed && app.HasDetails() {
			return st, app.Details(&st) == nil
		}
	}
	return PipelineStatus{}, false
}

// pipelineRun is one execution's state.
type pipelineRun struct {
	in PipelineInput
	st PipelineStatus
}

func (r *pipelineRun) run(ctx workflow.Context) error {
	info := workflow.GetInfo(ctx)
	runID := workflows.ShortID(info.WorkflowExecution.RunID)
	build := workflow.WithActivityOptions(ctx, buildOptions)
	deploy := workflow.WithActivityOptions(ctx, deployOptions)

	// 1. Fetch the source at the ref; build the test variant.
	var src contract.PrepareSourceOutput
	err := r.step(ctx, StepBuildTest, func(s *Step) error {
		if err := workflows.Execute(build, contract.PrepareSource,
			contract.PrepareSourceInput{Repo: r.in.Repo, Ref: r.in.Ref, Commit: r.in.Commit}).Get(ctx, &src); err != nil {
			return err
		}
		r.st.Commit = src.Source.Commit
		if r.in.Image != "" && src.Settings.Image != r.in.Image {
			return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
				"pipeline.image %q in .pipeline/config.yaml is not %q, the image conveyor's triggers file gives project %s: "+
					"which image (and service) a project publishes comes from conveyor's configuration, not from the repository; "+
					"set pipeline.image to %q, or change the project's image in the triggers file",
				src.Settings.Image, r.in.Image, r.in.Project, r.in.Image), contract.ErrInvalidConfig, nil)
		}
		if src.Settings.TestVariant == "" {
			s.Detail = "no test variant configured"
			return nil
		}
		var out contract.BuildVariantOutput
		err := workflows.Execute(build, contract.BuildVariant, contract.BuildVariantInput{
			Source: src.Source, Blubber: src.Settings.Blubber, Variant: src.Settings.TestVariant}).Get(ctx, &out)
		s.Detail = fmt.Sprintf("variant %s of %s", src.Settings.TestVariant, workflows.ShortID(src.Source.Commit))
		return err
	})
	if err != nil {
		return r.skipRest(err)
	}
	set := src.Settings

	// 2. Run the test variant's entrypoint.
	err = r.step(ctx, StepRunTests, func(s *Step) error {
		if set.TestVariant == "" {
			s.State = StepSkipped
			return nil
		}
		var out contract.RunTestsOutput
		err := workflows.Execute(build, contract.RunTests, contract.RunTestsInput{
			Source: src.Source, Blubber: set.Blubber, Variant: set.TestVariant}).Get(ctx, &out)
		s.Detail = out.Output
		return err
	})
	if err != nil {
		return r.skipRest(err)
	}

	// 3. Build the production variant and push it as a candidate.
	var cand contract.BuildVariantOutput
	err = r.step(ctx, StepBuildProduction, func(s *Step) error {
		tag := "run-" + runID
		if r.st.Change > 0 {
			tag = fmt.Sprintf("%d-%d-%s", r.st.Change, r.st.Patchset, runID)
		}
		err := workflows.Execute(build, contract.BuildVariant, contract.BuildVariantInput{
			Source: src.Source, Blubber: set.Blubber, Variant: set.ProductionVariant,
			Push: "candidates/" + set.Image + ":" + tag}).Get(ctx, &cand)
		s.Digest = cand.Digest
		r.st.Candidate = cand.Ref
		return err
	})
	if err != nil {
		return r.skipRest(err)
	}

	// 4. Deploy the candidate in isolation, wait, helm test, e2e from outside; always
	// tear down.
	rel := contract.Release{Namespace: namespaceName(set.Image, r.st.Change, r.st.Patchset, runID), Name: set.Image}
	r.st.Namespace = rel.Namespace
	err = r.step(ctx, StepDeploy, func(s *Step) error {
		defer r.teardown(ctx, rel)
		s.Digest = cand.Digest
		var dep contract.DeployCandidateOutput
		if err := workflows.Execute(deploy, contract.DeployCandidate, contract.DeployCandidateInput{
			Release: rel, Source: src.Source, Settings: set, Image: cand.Ref,
			Labels: map[string]string{"conveyor.wikimedia.org/workflow-run": info.WorkflowExecution.RunID},
		}).Get(ctx, &dep); err != nil {
			return err
		}
		if err := workflows.Execute(deploy, contract.HelmTest, contract.HelmTestInput{Release: rel}).Get(ctx, nil); err != nil {
			return err
		}
		var e2e contract.RunE2EOutput
		err := workflows.Execute(deploy, contract.RunE2E, contract.RunE2EInput{BaseURL: dep.ServiceURL, Checks: set.E2E}).Get(ctx, &e2e)
		s.Detail = fmt.Sprintf("%d e2e checks passed against %s in namespace %s", len(e2e.Results), dep.ServiceURL, rel.Namespace)
		return err
	})
	if err != nil {
		return r.skipRest(err)
	}

	// 5. Publish the tested digest.
	return r.step(ctx, StepPublish, func(s *Step) error {
		if !r.in.Publish {
			s.State = StepSkipped
			s.Detail = "verify only: nothing published"
			return nil
		}
		tags := []string{workflow.Now(ctx).UTC().Format("2006-01-02-150405") + "-production"}
		if r.st.Change > 0 {
			tags = append(tags, fmt.Sprintf("change-%d-%d", r.st.Change, r.st.Patchset))
		}
		var pub contract.PublishImageOutput
		err := workflows.Execute(build, contract.PublishImage, contract.PublishImageInput{
			From: cand.Ref, Repository: set.Image, Tags: tags}).Get(ctx, &pub)
		s.Digest = pub.Digest
		r.st.Published = pub.Refs
		return err
	})
}

// step runs fn as the named step, recording its state and timings and publishing
// the current step as a search attribute.
func (r *pipelineRun) step(ctx workflow.Context, name string, fn func(*Step) error) error {
	s := r.st.Step(name)
	s.State, s.Started = StepRunning, workflow.Now(ctx)
	_ = workflow.UpsertTypedSearchAttributes(ctx, workflows.StepKey.ValueSet(name))
	r.describe(ctx)
	err := fn(s)
	s.Finished = workflow.Now(ctx)
	defer func() {
		r.describe(ctx)
		// Recorded by the SDK only when the step ran, never on replay.
		workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"step": name, "outcome": string(s.State)}).
			Timer(workflows.MetricPipelineStepDuration).Record(s.Finished.Sub(s.Started))
	}()
	switch {
	case err != nil:
		s.State = StepFailed
		s.Detail = workflows.ErrorDetail(err)
		return fmt.Errorf("step %s: %w", name, err)
	case s.State == StepRunning:
		s.State = StepSucceeded
	}
	return nil
}

// skipRest marks the steps that did not run and passes err on.
func (r *pipelineRun) skipRest(err error) error {
	for i := range r.st.Steps {
		if r.st.Steps[i].State == StepPending {
			r.st.Steps[i].State = StepSkipped
		}
	}
	return err
}

// teardown removes the isolated release even when ctx is cancelled.
func (r *pipelineRun) teardown(ctx workflow.Context, rel contract.Release) {
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	dctx = workflow.WithActivityOptions(dctx, deployOptions)
	if err := workflows.Execute(dctx, contract.Teardown, contract.TeardownInput{Release: rel}).Get(dctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("Tearing down the isolated release failed", "namespace", rel.Namespace, "error", err)
	}
}

// namespaceName is a DNS label unique to the run: ci-<image>-<change>-<ps>-<run>.
func namespaceName(image string, change, patchset int, runID string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(image) {
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-")
	if len(name) > 30 {
		name = strings.Trim(name[:30], "-")
	}
	if change > 0 {
		return fmt.Sprintf("ci-%s-%d-%d-%s", name, change, patchset, runID)
	}
	return fmt.Sprintf("ci-%s-%s", name, runID)
}

// Activity options of the two pools: builds heartbeat with BuildKit's progress,
// deploys with their readiness waits. Non-retryable error types stop at once.
var (
	retry = &temporal.RetryPolicy{
		InitialInterval:    2 * time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    time.Minute,
		MaximumAttempts:    10,
		NonRetryableErrorTypes: []string{contract.ErrInvalidConfig, contract.ErrInvalidBlubber,
			contract.ErrTestsFailed, contract.ErrBuildFailed, contract.ErrE2EFailed, contract.ErrHelmTest, contract.ErrChart},
	}
	buildOptions = workflow.ActivityOptions{
		TaskQueue:           workflows.TaskQueueBuild,
		StartToCloseTimeout: time.Hour,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         retry,
	}
	deployOptions = workflow.ActivityOptions{
		TaskQueue:           workflows.TaskQueueDeploy,
		StartToCloseTimeout: 15 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         retry,
	}
)
