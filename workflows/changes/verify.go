package changes

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wikimedia/conveyor/workflows"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/activities/contract"
)

// What asked for a verification (VerifyInput.Trigger).
const (
	// TriggerPatchset is a new patchset (patchset-created).
	TriggerPatchset = "patchset-created"
	// TriggerRecheck is a "recheck" comment (comment-added).
	TriggerRecheck = "recheck"
)

// Outcomes of a verification (VerifyResult.Outcome), besides the review's
// contract.OutcomeSucceeded, OutcomeFailed and OutcomeCancelled.
const (
	// OutcomeJoined: the pipeline of the same patchset was already running; that
	// run's verification reports, this one does nothing.
	OutcomeJoined = "joined"
)

// ChangeTarget is the Gerrit patchset a verification reports on.
type ChangeTarget struct {
	Project  string `json:"project"`
	Branch   string `json:"branch,omitempty"`
	Change   int    `json:"change"`
	Patchset int    `json:"patchset"`
	// ChangeID is the Change-Id (I…), used when the number is missing.
	ChangeID string `json:"changeId,omitempty"`
	// Revision is the patchset's commit.
	Revision string `json:"revision,omitempty"`
}

// VerifyInput asks for one patchset to be verified and the result reported.
type VerifyInput struct {
	// Pipeline is the pipeline to run (Publish false for a patchset).
	Pipeline PipelineInput `json:"pipeline"`
	// Change is where the result goes.
	Change ChangeTarget `json:"change"`
	// Report posts the result on the patchset through Gerrit's REST API.
	Report bool `json:"report"`
	// Trigger is TriggerPatchset or TriggerRecheck.
	Trigger string `json:"trigger,omitempty"`
}

// VerifyResult is what a verification did.
type VerifyResult struct {
	// PipelineID and PipelineRunID are the pipeline run (a child workflow).
	PipelineID    string `json:"pipelineId"`
	PipelineRunID string `json:"pipelineRunId,omitempty"`
	// Outcome is contract.OutcomeSucceeded, OutcomeFailed, OutcomeCancelled or
	// OutcomeJoined.
	Outcome    string `json:"outcome"`
	Verified   int    `json:"verified"`
	FailedStep string `json:"failedStep,omitempty"`
	// Reported says the review was posted.
	Reported bool `json:"reported"`
}

// VerifyID is the verification's workflow id, derived from the event so that
// deliveries of the same event find the same workflow:
// verify/<project>/<change>/<patchset> for the patchset's creation, and
// verify/<project>/<change>/<patchset>/<key> for another event about it (a
// recheck, key being the event's Key).
func VerifyID(project string, change, patchset int, key string) string {
	id := fmt.Sprintf("verify/%s/%d/%d", project, change, patchset)
	if key != "" {
		id += "/" + key
	}
	return id
}

// reviewOptions are PostReview's: Gerrit may be down for a while (a restart, a
// maintenance window), so the report keeps trying for about two hours.
var reviewOptions = workflow.ActivityOptions{
	TaskQueue:           workflows.TaskQueueBuild,
	StartToCloseTimeout: time.Minute,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:        5 * time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        10 * time.Minute,
		MaximumAttempts:        20,
		NonRetryableErrorTypes: []string{contract.ErrGerritRejected, contract.ErrInvalidConfig},
	},
}

// ChangeVerification runs the pipeline of one patchset as a child workflow (the
// Pipeline workflow itself knows nothing of Gerrit) and posts the result on the
// patchset: Verified +1 on success, -1 with the failed step and its output tail on
// failure, no vote when the pipeline was cancelled or terminated. The review
// names the commit the pipeline built, and PostReview votes only on that commit:
// it refuses when the event's revision is another one.
//
// The child's id is PipelineID, one per patchset: when that pipeline is already
// running (a recheck during a run, or a run started by hand), the verification
// joins it instead: it ends with OutcomeJoined and leaves the report to the run in
// progress. Once the pipeline has finished, a new verification starts a new run.
func ChangeVerification(ctx workflow.Context, in VerifyInput) (VerifyResult, error) {
	res := VerifyResult{PipelineID: PipelineID(in.Pipeline.Project, in.Pipeline.Ref)}
	if err := in.Pipeline.Validate(); err != nil {
		return res, temporal.NewNonRetryableApplicationError(err.Error(), contract.ErrInvalidConfig, nil)
	}
	attrs := []temporal.SearchAttributeUpdate{workflows.ProjectKey.ValueSet(in.Pipeline.Project)}
	if in.Change.Change > 0 {
		attrs = append(attrs, workflows.ChangeKey.ValueSet(int64(in.Change.Change)), workflows.PatchsetKey.ValueSet(int64(in.Change.Patchset)))
	}
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            res.PipelineID,
		TaskQueue:             workflows.TaskQueueBuild,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		// Cancelling the verification cancels the pipeline, which tears down.
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
		TypedSearchAttributes: temporal.NewSearchAttributes(attrs...),
	})
	describe := func(now string) { workflow.SetCurrentDetails(ctx, verifyDetails(in, res.PipelineID, now)) }
	describe("Starting the pipeline `" + res.PipelineID + "` as a child workflow.")
	child := workflow.ExecuteChildWorkflow(cctx, Pipeline, in.Pipeline)
	var exec workflow.Execution
	if err := child.GetChildWorkflowExecution().Get(ctx, &exec); err != nil {
		if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
			workflow.GetLogger(ctx).Info("The patchset's pipeline is already running: joining it", "pipeline", res.PipelineID)
			res.Outcome = OutcomeJoined
			describe("Done: the pipeline `" + res.PipelineID + "` was already running; this verification joined it and leaves the report to it.")
			return res, nil
		}
		describe("Failed: the pipeline could not start: " + workflows.ErrorDetail(err))
		return res, fmt.Errorf("starting the pipeline %s: %w", res.PipelineID, err)
	}
	res.PipelineRunID = exec.RunID
	describe("Waiting for the pipeline `" + res.PipelineID + "` (run `" + exec.RunID + "`): its page has the step it is in.")

	var st PipelineStatus
	perr := child.Get(ctx, &st)
	review := reviewOf(in, res, st, perr)
	if in.Report {
		describe(fmt.Sprintf("The pipeline ended (%s): posting the review to Gerrit (%s).", review.Outcome, vote(review.Verified)))
	} else {
		describe(fmt.Sprintf("Done: the pipeline ended (%s); reporting to Gerrit is off for this project.", review.Outcome))
	}
	if workflow.GetVersion(ctx, versionReviewBuiltCommit, workflow.DefaultVersion, 1) == 1 {
		review.BuiltCommit = builtCommit(st, perr)
	}
	res.Outcome, res.Verified, res.FailedStep = review.Outcome, review.Verified, review.FailedStep
	if !in.Report {
		return res, nil
	}
	// A cancelled verification still says so on the change.
	rctx := ctx
	if ctx.Err() != nil {
		var cancel workflow.CancelFunc
		rctx, cancel = workflow.NewDisconnectedContext(ctx)
		defer cancel()
	}
	rctx = workflow.WithActivityOptions(rctx, reviewOptions)
	if err := workflows.Execute(rctx, contract.PostReview, review).Get(rctx, nil); err != nil {
		return res, fmt.Errorf("reporting to Gerrit: %w", err)
	}
	res.Reported = true
	describe(fmt.Sprintf("Done: the pipeline ended (%s) and Gerrit has the review (%s).", review.Outcome, vote(review.Verified)))
	return res, nil
}

// vote says a review's Verified label.
func vote(v int) string {
	if v == 0 {
		return "no vote"
	}
	return fmt.Sprintf("Verified %+d", v)
}

// verifyDetails is a verification's current details: the patchset, what it does
// now, and what a person may do (nothing but comment "recheck" on the change).
func verifyDetails(in VerifyInput, pipelineID, now string) string {
	project := in.Change.Project
	if project == "" {
		project = in.Pipeline.Project
	}
	var b strings.Builder
	fmt.Fprintf(&b, "**Verifying patchset %d of change %d** of %s (`%s`", in.Change.Patchset, in.Change.Change, project, in.Pipeline.Ref)
	if in.Trigger == TriggerRecheck {
		b.WriteString(", a recheck")
	}
	b.WriteString(")\n\n")
	b.WriteString(now)
	b.WriteString("\n\nNobody needs to act: the pipeline runs by itself and the verification reports to Gerrit. To run it again, comment \"recheck\" on the change.\n")
	return b.String()
}

// versionReviewBuiltCommit marks the verifications that post their review at
// the commit the pipeline built (contract.ReviewInput.BuiltCommit).
const versionReviewBuiltCommit = "review-built-commit"

// builtCommit is the commit the pipeline built, from its result or its
// failure; "" when it built nothing (or cannot say).
func builtCommit(st PipelineStatus, err error) string {
	if err == nil {
		return st.Commit
	}
	failed, _ := FailedStatus(err)
	return failed.Commit
}

// reviewOf turns the pipeline's end into the review to post.
func reviewOf(in VerifyInput, res VerifyResult, st PipelineStatus, err error) contract.ReviewInput {
	r := contract.ReviewInput{
		Project: in.Change.Project, Change: in.Change.Change, ChangeID: in.Change.ChangeID, Branch: in.Change.Branch,
		Revision: in.Change.Revision, Patchset: in.Change.Patchset,
		WorkflowID: res.PipelineID, RunID: res.PipelineRunID,
	}
	if r.Project == "" {
		r.Project = in.Pipeline.Project
	}
	var canceled *temporal.CanceledError
	var terminated *temporal.TerminatedError
	switch {
	case err == nil:
		r.Outcome, r.Verified = contract.OutcomeSucceeded, 1
		r.Summary = successSummary(st)
	case errors.As(err, &canceled) || errors.As(err, &terminated):
		r.Outcome = contract.OutcomeCancelled
	default:
		r.Outcome, r.Verified = contract.OutcomeFailed, -1
		r.FailedStep, r.Output = failureOf(err)
	}
	return r
}

func successSummary(st PipelineStatus) string {
	var b strings.Builder
	var states []string
	for _, s := range st.Steps {
		states = append(states, s.Name+" "+string(s.State))
	}
	b.WriteString("Steps: " + strings.Join(states, ", ") + ".")
	if st.Candidate != "" {
		b.WriteString("\nCandidate: " + st.Candidate)
	}
	if d := st.Step(StepDeploy); d != nil && d.Detail != "" {
		b.WriteString("\n" + d.Detail)
	}
	return b.String()
}

// failureOf reads a failed pipeline's error: the step it names ("step NAME: …",
// as Pipeline's steps wrap their errors) and the failed activity's own message,
// which for failed tests and checks carries the output tail (its causes, such as
// BuildKit's "exit code: 1", say less).
func failureOf(err error) (step, output string) {
	for e := err; e != nil && step == ""; e = errors.Unwrap(e) {
		app, ok := e.(*temporal.ApplicationError)
		if !ok {
			continue
		}
		if rest, ok := strings.CutPrefix(app.Message(), "step "); ok {
			if name, _, ok := strings.Cut(rest, ":"); ok && !strings.ContainsAny(name, " \n") {
				step = name
			}
		}
	}
	var act *temporal.ActivityError
	var app *temporal.ApplicationError
	switch {
	case errors.As(err, &act) && errors.As(act.Unwrap(), &app):
		output = app.Message()
	default:
		// No activity failed (e.g. the input was refused): the innermost
		// application error says why.
		for e := err; e != nil; e = errors.Unwrap(e) {
			if a, ok := e.(*temporal.ApplicationError); ok {
				output = a.Message()
			}
		}
		if output == "" {
			output = err.Error()
		}
		output = strings.TrimPrefix(output, "step "+step+": ")
	}
	return step, output
}
