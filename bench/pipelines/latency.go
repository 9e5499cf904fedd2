package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

// sampleSize is how many runs of a load scheduleToStart reads the history of.
const sampleSize = 50

// latencies are the schedule-to-start times of one kind of task: how long a task
// waited in its queue for a worker, the signal to scale workers on.
type latencies []time.Duration

func (l latencies) pct(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	return l[min(len(l)-1, int(p*float64(len(l))))]
}

func (l latencies) String() string {
	if len(l) == 0 {
		return "-"
	}
	r := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	return fmt.Sprintf("p50 %s, p95 %s, max %s (%d tasks)", r(l.pct(0.5)), r(l.pct(0.95)), r(l[len(l)-1]), len(l))
}

// scheduleToStart reads the histories of runs and returns the schedule-to-start
// latencies of their activity tasks and of their workflow tasks: an
// ActivityTaskStarted's (or WorkflowTaskStarted's) time minus its scheduled
// event's.
func scheduleToStart(ctx context.Context, c client.Client, runs []client.WorkflowRun) (activities, workflowTasks latencies, err error) {
	for _, run := range runs {
		scheduled := map[int64]time.Time{}
		it := c.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			e, err := it.Next()
			if err != nil {
				return nil, nil, fmt.Errorf("history of %s: %w", run.GetID(), err)
			}
			at := e.GetEventTime().AsTime()
			switch e.GetEventType() {
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
				scheduled[e.GetEventId()] = at
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
				if t, ok := scheduled[e.GetActivityTaskStartedEventAttributes().GetScheduledEventId()]; ok {
					activities = append(activities, at.Sub(t))
				}
			case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
				if t, ok := scheduled[e.GetWorkflowTaskStartedEventAttributes().GetScheduledEventId()]; ok {
					workflowTasks = append(workflowTasks, at.Sub(t))
				}
			}
		}
	}
	slices.Sort(activities)
	slices.Sort(workflowTasks)
	return activities, workflowTasks, nil
}
