package health

import (
	"context"
	"fmt"
	"sync/atomic"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
)

// TaskQueueDescriber is the part of a Temporal client PollersCheck uses.
type TaskQueueDescriber interface {
	DescribeTaskQueue(ctx context.Context, taskQueue string, typ enumspb.TaskQueueType) (*workflowservice.DescribeTaskQueueResponse, error)
}

// PollersCheck is ready once started is true (the caller sets it when the worker's
// Start has returned) and Temporal lists a poller of identity on both the workflow
// and the activity side of taskQueue: the worker is not only started, its pollers
// have reached the server. After Temporal comes back from an outage it is ready
// again as soon as the pollers have reconnected.
func PollersCheck(c TaskQueueDescriber, taskQueue, identity string, started *atomic.Bool) Check {
	return func(ctx context.Context) error {
		if !started.Load() {
			return fmt.Errorf("the worker of task queue %s has not started", taskQueue)
		}
		for _, typ := range []enumspb.TaskQueueType{enumspb.TASK_QUEUE_TYPE_WORKFLOW, enumspb.TASK_QUEUE_TYPE_ACTIVITY} {
			resp, err := c.DescribeTaskQueue(ctx, taskQueue, typ)
			if err != nil {
				return fmt.Errorf("describing task queue %s: %w", taskQueue, err)
			}
			if !polledBy(resp, identity) {
				return fmt.Errorf("no %s poller of %s on task queue %s yet", kind(typ), identity, taskQueue)
			}
		}
		return nil
	}
}

func polledBy(resp *workflowservice.DescribeTaskQueueResponse, identity string) bool {
	for _, p := range resp.GetPollers() {
		if p.GetIdentity() == identity {
			return true
		}
	}
	return false
}

func kind(typ enumspb.TaskQueueType) string {
	if typ == enumspb.TASK_QUEUE_TYPE_WORKFLOW {
		return "workflow"
	}
	return "activity"
}
