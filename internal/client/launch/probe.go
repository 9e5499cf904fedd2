package launch

import (
	"context"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// ProbeStart starts a workflow with id and search attributes sa on a task queue
// of the same name that no worker polls, and terminates it at once with reason:
// it says whether c's namespace accepts a start carrying sa (temporalsetup.Register
// waits for that after adding search attributes). An earlier probe with the same
// id is terminated by the start.
func ProbeStart(ctx context.Context, c client.Client, id string, sa temporal.SearchAttributes, reason string) error {
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: id, TypedSearchAttributes: sa,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}, "ConveyorProbe")
	if err != nil {
		return err
	}
	return c.TerminateWorkflow(ctx, run.GetID(), run.GetRunID(), reason)
}
