// Package health holds the activities that prove a worker pool is alive: they touch
// no outside system, so a failing ping points at Temporal or the worker itself.
package health

import (
	"context"
	"fmt"
	"os"

	"go.temporal.io/sdk/activity"

	"github.com/wikimedia/conveyor/activities/contract"
)

// Activities answers pings for one pool. The worker builds one per pool and registers
// it as a pointer; workflows call its methods through a nil *Activities.
type Activities struct {
	// Pool is the pool this worker serves.
	Pool string
	// Identity is the worker's Temporal identity, reported in answers.
	Identity string
}

// Ping answers with the worker's pool, identity and host, and the echoed message.
// It has no side effects, so retrying it is always safe.
func (a *Activities) Ping(ctx context.Context, req contract.PingRequest) (contract.PingAnswer, error) {
	host, err := os.Hostname()
	if err != nil {
		return contract.PingAnswer{}, fmt.Errorf("reading the host name: %w", err)
	}
	info := activity.GetInfo(ctx)
	activity.GetLogger(ctx).Info("Answering ping", "pool", a.Pool, "taskQueue", info.TaskQueue)
	return contract.PingAnswer{
		Pool:      a.Pool,
		TaskQueue: info.TaskQueue,
		Identity:  a.Identity,
		Host:      host,
		Message:   req.Message,
	}, nil
}
