package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

// execution is one workflow run of the benchmark.
type execution struct {
	Type, ID, RunID string
	Status          enumspb.WorkflowExecutionStatus
	// Events is the run's history length, counted from its history.
	Events int
	// TimerLate is how long after their due time the run's timers fired.
	TimerLate []time.Duration
}

// settle waits until visibility shows no run started since since as running:
// a run's closing reaches visibility a moment after its result reaches the
// client.
func settle(ctx context.Context, c client.Client, since time.Time) error {
	q := fmt.Sprintf("StartTime >= '%s' AND ExecutionStatus = 'Running'", since.UTC().Add(-time.Second).Format(time.RFC3339))
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: q})
		if err != nil {
			return fmt.Errorf("counting the benchmark's running workflows: %w", err)
		}
		if resp.GetCount() == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of the benchmark's workflows still running a minute after the last project closed", resp.GetCount())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// listRuns lists every run (continued-as-new runs are runs of their own) started
// in the namespace since since.
func listRuns(ctx context.Context, c client.Client, since time.Time) ([]execution, error) {
	q := fmt.Sprintf("StartTime >= '%s'", since.UTC().Add(-time.Second).Format(time.RFC3339))
	var out []execution
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: 1000, NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("listing the benchmark's workflows: %w", err)
		}
		for _, e := range resp.Executions {
			out = append(out, execution{Type: e.GetType().GetName(), ID: e.GetExecution().GetWorkflowId(),
				RunID: e.GetExecution().GetRunId(), Status: e.GetStatus(), Events: int(e.GetHistoryLength())})
		}
		if token = resp.NextPageToken; len(token) == 0 {
			return out, nil
		}
	}
}

// countEvents reads every run's history and sets Events to its length.
func countEvents(ctx context.Context, c client.Client, runs []execution, parallel int) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(runs))
	next := make(chan int)
	for range parallel {
		wg.Go(func() {
			for i := range next {
				n := 0
				due := map[int64]time.Time{}
				it := c.GetWorkflowHistory(ctx, runs[i].ID, runs[i].RunID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
				for it.HasNext() {
					e, err := it.Next()
					if err != nil {
						errs <- fmt.Errorf("reading the history of %s/%s: %w", runs[i].ID, runs[i].RunID, err)
						break
					}
					n++
					if a := e.GetTimerStartedEventAttributes(); a != nil {
						due[e.GetEventId()] = e.GetEventTime().AsTime().Add(a.GetStartToFireTimeout().AsDuration())
					}
					if a := e.GetTimerFiredEventAttributes(); a != nil {
						if d, ok := due[a.GetStartedEventId()]; ok {
							runs[i].TimerLate = append(runs[i].TimerLate, e.GetEventTime().AsTime().Sub(d))
						}
					}
				}
				runs[i].Events = n
			}
		})
	}
	for i := range runs {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	return <-errs
}

// timerLateness returns the median, 99th percentile and maximum of how late the
// timers of every run fired.
func timerLateness(runs []execution) (p50, p99, most time.Duration, n int) {
	var all []time.Duration
	for _, r := range runs {
		all = append(all, r.TimerLate...)
	}
	if len(all) == 0 {
		return 0, 0, 0, 0
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	return all[len(all)/2], all[len(all)*99/100], all[len(all)-1], len(all)
}

// typeSummary is the runs of one workflow type.
type typeSummary struct {
	Type      string
	Runs      int
	Completed int
	MaxEvents int
	MaxID     string
}

func summarize(runs []execution) []typeSummary {
	by := map[string]*typeSummary{}
	for _, r := range runs {
		s := by[r.Type]
		if s == nil {
			s = &typeSummary{Type: r.Type}
			by[r.Type] = s
		}
		s.Runs++
		if r.Status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED || r.Status == enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW {
			s.Completed++
		}
		if r.Events > s.MaxEvents {
			s.MaxEvents, s.MaxID = r.Events, r.ID+" "+r.RunID
		}
	}
	var out []typeSummary
	for _, s := range by {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	return out
}
