// Package launch starts conveyor's workflows from outside Temporal — the command line
// and the Gerrit triggers share it, so a change gets the same workflow id, options and
// search attributes whichever way it arrives.
package launch

import (
	"context"
	"fmt"

	"github.com/wikimedia/conveyor/workflows/changes"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/internal/lib/gerrit"
	"github.com/wikimedia/conveyor/workflows"
)

// Pipeline starts the pipeline for in, or returns the run already going for the same
// change: the workflow id is derived from the project and the change, so a change
// cannot run twice at once, and a duplicate request joins the running one.
func Pipeline(ctx context.Context, c client.Client, in changes.PipelineInput) (client.WorkflowRun, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	attrs := []temporal.SearchAttributeUpdate{workflows.ProjectKey.ValueSet(in.Project)}
	if change, ps, ok := gerrit.ParseChangeRef(in.Ref); ok {
		attrs = append(attrs, workflows.ChangeKey.ValueSet(int64(change)), workflows.PatchsetKey.ValueSet(int64(ps)))
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       changes.PipelineID(in.Project, in.Ref),
		TaskQueue:                workflows.TaskQueueBuild,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		TypedSearchAttributes:    temporal.NewSearchAttributes(attrs...),
	}, changes.Pipeline, in)
	if err != nil {
		return nil, fmt.Errorf("starting the pipeline for %s at %s: %w", in.Project, in.Ref, err)
	}
	return run, nil
}

// PipelineStatus asks a running or finished pipeline for its status.
func PipelineStatus(ctx context.Context, c client.Client, workflowID, runID string) (changes.PipelineStatus, error) {
	var st changes.PipelineStatus
	v, err := c.QueryWorkflow(ctx, workflowID, runID, workflows.QueryStatus)
	if err != nil {
		return st, fmt.Errorf("querying %s: %w", workflowID, err)
	}
	if err := v.Get(&st); err != nil {
		return st, fmt.Errorf("decoding the status of %s: %w", workflowID, err)
	}
	return st, nil
}
