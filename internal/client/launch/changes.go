package launch

import (
	"context"
	"fmt"
	"strings"

	"github.com/wikimedia/conveyor/workflows/changes"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/internal/lib/gerrit"
	"github.com/wikimedia/conveyor/workflows"
)

// pipelineAttributes are the search attributes of a pipeline run: its project,
// and the change and patchset of a change ref.
func pipelineAttributes(in changes.PipelineInput) []temporal.SearchAttributeUpdate {
	attrs := []temporal.SearchAttributeUpdate{workflows.ProjectKey.ValueSet(in.Project)}
	if change, ps, ok := gerrit.ParseChangeRef(in.Ref); ok {
		attrs = append(attrs, workflows.ChangeKey.ValueSet(int64(change)), workflows.PatchsetKey.ValueSet(int64(ps)))
	}
	return attrs
}

// Pipeline starts the pipeline for in, or returns the run already going for the same
// change: the workflow id is derived from the project and the change
// (changes.PipelineID), so a change cannot run twice at once, and a duplicate
// request joins the running one (PolicyJoinOrRerun). It runs on the build pool's
// queue unless an option says another.
func Pipeline(ctx context.Context, s Starter, in changes.PipelineInput, opts ...Option) (client.WorkflowRun, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	return start{id: changes.PipelineID(in.Project, in.Ref), queue: workflows.TaskQueueBuild, policy: PolicyJoinOrRerun,
		attrs: pipelineAttributes(in), workflow: changes.Pipeline, input: in,
		what: fmt.Sprintf("the pipeline for %s at %s", in.Project, in.Ref)}.execute(ctx, s, opts)
}

// RefPipelineID is the workflow id of the pipeline run for a ref update:
// pipeline/<project>/<ref>@<first 12 digits of the new commit>.
func RefPipelineID(project, ref, rev string) string {
	if len(rev) > 12 {
		rev = rev[:12]
	}
	return fmt.Sprintf("pipeline/%s/%s@%s", project, strings.TrimPrefix(ref, "refs/heads/"), rev)
}

// RefPipeline starts the pipeline for a ref's update to the commit rev, with the
// id RefPipelineID(in.Project, in.Ref, rev), the project as its one search
// attribute, and PolicyJoinOrRefuse: a
// redelivery of the update while it runs joins it, one after it finished starts
// nothing and gets an error for which temporal.IsWorkflowExecutionAlreadyStartedError
// holds. It runs on the build pool's queue unless an option says another.
//
// The pipeline builds rev itself (its input's Commit), not whatever in.Ref points
// at when it fetches: the ref may have moved on since the update, and the
// update's run must build the update's commit. rev must be a full commit hash.
func RefPipeline(ctx context.Context, s Starter, in changes.PipelineInput, rev string, opts ...Option) (client.WorkflowRun, error) {
	if !gerrit.IsCommit(rev) {
		return nil, fmt.Errorf("the update of %s names %q as its new commit, not a full commit hash", in.Ref, rev)
	}
	id := RefPipelineID(in.Project, in.Ref, rev)
	in.Commit = strings.ToLower(rev)
	return start{id: id, queue: workflows.TaskQueueBuild, policy: PolicyJoinOrRefuse,
		attrs:    []temporal.SearchAttributeUpdate{workflows.ProjectKey.ValueSet(in.Project)},
		workflow: changes.Pipeline, input: in, what: id}.execute(ctx, s, opts)
}

// ScheduledPipeline is the action of a schedule (id) that runs the pipeline for
// in: the same task queue and search attributes as Pipeline's. Temporal starts
// it, with ids made of the schedule's and the time.
func ScheduledPipeline(id string, in changes.PipelineInput, opts ...Option) (*client.ScheduleWorkflowAction, error) {
	o, err := startOptions(id, workflows.TaskQueueBuild, PolicyServerDefault, pipelineAttributes(in), opts)
	if err != nil {
		return nil, err
	}
	return &client.ScheduleWorkflowAction{
		ID:                    o.ID,
		Workflow:              changes.Pipeline,
		Args:                  []any{in},
		TaskQueue:             o.TaskQueue,
		TypedSearchAttributes: o.TypedSearchAttributes,
	}, nil
}

// PipelineStatus asks a running or finished pipeline for its status.
func PipelineStatus(ctx context.Context, q Querier, workflowID, runID string) (changes.PipelineStatus, error) {
	return Query[changes.PipelineStatus](ctx, q, workflowID, runID, workflows.QueryStatus)
}

// Verification starts the verification of a patchset (ChangeVerification), with
// the id changes.VerifyID of its change and patchset and key ("" for a new
// patchset, the event's key for a recheck) and PolicyJoinOrRefuse: a redelivery
// while it runs joins it, one after it finished starts nothing and gets an error
// for which temporal.IsWorkflowExecutionAlreadyStartedError holds. It runs on
// the build pool's queue unless an option says another.
func Verification(ctx context.Context, s Starter, in changes.VerifyInput, key string, opts ...Option) (client.WorkflowRun, error) {
	t := in.Change
	id := changes.VerifyID(t.Project, t.Change, t.Patchset, key)
	attrs := []temporal.SearchAttributeUpdate{workflows.ProjectKey.ValueSet(t.Project),
		workflows.ChangeKey.ValueSet(int64(t.Change)), workflows.PatchsetKey.ValueSet(int64(t.Patchset))}
	return start{id: id, queue: workflows.TaskQueueBuild, policy: PolicyJoinOrRefuse, attrs: attrs,
		workflow: changes.ChangeVerification, input: in, what: id}.execute(ctx, s, opts)
}

// MergeSignal tells the merge batcher of target's branch (changes.BatcherID)
// about a merged change, starting the batcher if none runs (signal-with-start,
// PolicySignalOrRestart). It runs on the build pool's queue unless an option says
// another. It returns the batcher's workflow id.
func MergeSignal(ctx context.Context, s Starter, target changes.BatchTarget, m changes.MergedChange, opts ...Option) (string, error) {
	id := changes.BatcherID(target.Project, target.Branch)
	o, err := startOptions(id, workflows.TaskQueueBuild, PolicySignalOrRestart,
		[]temporal.SearchAttributeUpdate{workflows.ProjectKey.ValueSet(target.Project)}, opts)
	if err != nil {
		return id, err
	}
	_, err = s.SignalWithStartWorkflow(ctx, id, changes.SignalMerged, changes.MergeSignal{Target: target, Change: m},
		o, changes.MergeBatcher, changes.BatcherInput{Target: target})
	if err != nil {
		return id, fmt.Errorf("signalling the merge batcher %s: %w", id, err)
	}
	return id, nil
}

// BaseCheck gives the base image check (changes.BaseCheckID) its configuration,
// starting the check if it does not run (signal-with-start, PolicyServerDefault).
// It runs on the build pool's queue unless an option says another. It returns
// the check's workflow id.
func BaseCheck(ctx context.Context, s Starter, cfg changes.BaseCheckConfig, opts ...Option) (string, error) {
	id := changes.BaseCheckID
	o, err := startOptions(id, workflows.TaskQueueBuild, PolicyServerDefault, nil, opts)
	if err != nil {
		return id, err
	}
	if _, err := s.SignalWithStartWorkflow(ctx, id, changes.SignalBaseCheckConfig, cfg,
		o, changes.BaseImageCheck, changes.BaseCheckInput{Config: cfg}); err != nil {
		return id, fmt.Errorf("starting the base image check: %w", err)
	}
	return id, nil
}
