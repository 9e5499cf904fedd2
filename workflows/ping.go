package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/activities/contract"
)

// PingInput is the input of the Ping workflow.
type PingInput struct {
	// Pools are the pools to ping, in order. Empty means every pool.
	Pools []string `json:"pools,omitempty"`
	// Message is echoed back by every pool.
	Message string `json:"message"`
}

// PingResult is the output of the Ping workflow.
type PingResult struct {
	// Answers holds one answer per pool, in the order of the input's pools.
	Answers []contract.PingAnswer `json:"answers"`
}

// PingActivityTimeout bounds each pool's answer, including the time spent waiting
// for a worker of that pool to pick the activity up: a pool with no worker fails the
// ping instead of leaving it waiting forever.
const PingActivityTimeout = 30 * time.Second

// Ping runs the health Ping activity on each requested pool's task queue, one pool
// after the other, and returns their answers. It proves that Temporal, and a worker
// for each pool, are up. The workflow itself may run on any pool's task queue.
func Ping(ctx workflow.Context, in PingInput) (PingResult, error) {
	pools := in.Pools
	if len(pools) == 0 {
		pools = Pools
	}
	for _, p := range pools {
		if TaskQueue(p) == "" {
			return PingResult{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("unknown pool %q: valid pools are %s", p, strings.Join(Pools, ", ")),
				contract.ErrInvalidPool, nil)
		}
	}

	var res PingResult
	for _, p := range pools {
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue:              TaskQueue(p),
			ScheduleToCloseTimeout: PingActivityTimeout,
			StartToCloseTimeout:    10 * time.Second,
		})
		var ans contract.PingAnswer
		if err := Execute(actx, contract.Ping, contract.PingRequest{Message: in.Message}).Get(ctx, &ans); err != nil {
			var timeout *temporal.TimeoutError
			if errors.As(err, &timeout) {
				return PingResult{}, temporal.NewNonRetryableApplicationError(
					fmt.Sprintf("pool %s did not answer within %s: no worker serves task queue %s", p, PingActivityTimeout, TaskQueue(p)),
					contract.ErrPoolUnavailable, err)
			}
			return PingResult{}, fmt.Errorf("pinging pool %s on task queue %s: %w", p, TaskQueue(p), err)
		}
		res.Answers = append(res.Answers, ans)
	}
	return res, nil
}
