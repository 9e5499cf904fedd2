// Package heartbeat is how the activities report progress to Temporal: Record a
// detail now, record one Every interval while a blocking call runs, or run a call
// that cannot be cancelled While heartbeating.
//
// Every function is a no-op outside an activity (a unit test, a dry run from the
// command line, a library call), so code shared with those callers heartbeats
// without asking where it runs. The details are recorded as given: a retried
// attempt that reads them back with activity.GetHeartbeatDetails gets the same
// type the attempt before it recorded.
package heartbeat

import (
	"context"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
)

// Record records details as the activity's heartbeat when ctx is an activity's.
func Record(ctx context.Context, details ...any) {
	if activity.IsActivity(ctx) {
		activity.RecordHeartbeat(ctx, details...)
	}
}

// Every records detail() every interval, the first time after one interval, until
// stop is called or ctx ends. stop waits until the recording has stopped, so
// nothing is recorded after it returns; calling it again does nothing. Outside an
// activity, or with an interval that is not positive, nothing is recorded.
//
// detail is called from another goroutine: it must be safe to call while the
// caller works (read shared progress under a lock).
func Every(ctx context.Context, interval time.Duration, detail func() any) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	return every(ctx, interval, detail, Record)
}

// ForTimeout is the interval for Every that keeps well inside the activity's
// heartbeat timeout: a third of it, at least floor. It is 0 (Every then records
// nothing) outside an activity and for an activity without a heartbeat timeout.
func ForTimeout(ctx context.Context, floor time.Duration) time.Duration {
	if !activity.IsActivity(ctx) {
		return 0
	}
	timeout := activity.GetInfo(ctx).HeartbeatTimeout
	if timeout <= 0 {
		return 0
	}
	return max(timeout/3, floor)
}

// While runs fn, which cannot be cancelled, recording detail at once and then
// every interval until fn returns. When ctx ends first, While returns ctx's error
// at once and leaves fn to finish on its own: fn must be bounded by a timeout of
// its own.
func While[T any](ctx context.Context, interval time.Duration, detail any, fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := fn()
		done <- result{v, err}
	}()
	Record(ctx, detail)
	stop := Every(ctx, interval, func() any { return detail })
	defer stop()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// every is Every with the recorder given, for the tests.
func every(ctx context.Context, interval time.Duration, detail func() any, record func(context.Context, ...any)) (stop func()) {
	if interval <= 0 {
		return func() {}
	}
	quit := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				record(ctx, detail())
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-finished
	}
}
