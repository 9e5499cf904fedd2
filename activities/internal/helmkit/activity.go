package helmkit

import (
	"context"
	"log/slog"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/log"
)

// Progress is the heartbeat detail of the long activities: what they wait for.
type Progress struct {
	// Step is the activity's current step, e.g. "waiting for readiness".
	Step string `json:"step"`
	// Detail says what is not done yet, e.g. the pods that are not ready and why.
	Detail string `json:"detail,omitempty"`
}

// Logger is the activity's logger, or a silent one outside an activity.
func Logger(ctx context.Context) log.Logger {
	if activity.IsActivity(ctx) {
		return activity.GetLogger(ctx)
	}
	return log.NewStructuredLogger(slog.New(slog.DiscardHandler))
}

// Within returns d, shortened so that it ends a little before ctx's deadline: the
// activity should report its own timeout, with its reasons, before Temporal's fires.
func Within(ctx context.Context, d time.Duration) time.Duration {
	dl, ok := ctx.Deadline()
	if !ok {
		return d
	}
	left := time.Until(dl) - 5*time.Second
	if left < time.Second {
		left = time.Second
	}
	return min(d, left)
}
