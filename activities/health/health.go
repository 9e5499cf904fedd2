// Package health holds the activities that prove a worker pool is alive: they touch
// no outside system, so a failing ping points at Temporal or the worker itself.
package health

import (
	"context"
	"fmt"
	"os"

	"go.temporal.io/sdk/activity"
)

// PingRequest is the input of Activities.Ping.
type PingRequest struct {
	// Message is echoed back unchanged.
	Message string `json:"message"`
}

// PingAnswer is one pool's answer to a ping.
type PingAnswer struct {
	// Pool is the pool of the worker that answered, as the worker was started with.
	Pool string `json:"pool"`
	// TaskQueue is the task queue the activity was taken from.
	TaskQueue string `json:"taskQueue"`
	// Identity is the answering worker's Temporal identity.
	Identity string `json:"identity"`
	// Host is the host name of the machine the worker runs on.
	Host string `json:"host"`
	// Message is the request's message, echoed.
	Message string `json:"message"`
}

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
func (a *Activities) Ping(ctx context.Context, req PingRequest) (PingAnswer, error) {
	host, err := os.Hostname()
	if err != nil {
		return PingAnswer{}, fmt.Errorf("reading the host name: %w", err)
	}
	info := activity.GetInfo(ctx)
	activity.GetLogger(ctx).Info("Answering ping", "pool", a.Pool, "taskQueue", info.TaskQueue)
	return PingAnswer{
		Pool:      a.Pool,
		TaskQueue: info.TaskQueue,
		Identity:  a.Identity,
		Host:      host,
		Message:   req.Message,
	}, nil
}
