package heartbeat

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// recorder keeps what every records.
type recorder struct {
	mu  sync.Mutex
	got []any
}

func (r *recorder) record(_ context.Context, details ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, details...)
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// waitFor waits until r has at least n records, failing after a deadline.
func (r *recorder) waitFor(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for r.len() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d records after 5s, want at least %d", r.len(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestEveryRecordsTheLatestDetailUntilStopped(t *testing.T) {
	var r recorder
	var mu sync.Mutex
	n := 0
	stop := every(context.Background(), time.Millisecond, func() any {
		mu.Lock()
		defer mu.Unlock()
		n++
		return n
	}, r.record)
	r.waitFor(t, 3)
	stop()
	after := r.len()
	time.Sleep(10 * time.Millisecond)
	if r.len() != after {
		t.Errorf("%d records after stop returned, want none", r.len()-after)
	}
	for i, v := range r.got[:3] {
		if v != i+1 {
			t.Errorf("record %d = %v, want the detail of that tick, %d", i, v, i+1)
		}
	}
	stop() // a second stop does nothing
}

func TestEveryStopsWhenTheContextEnds(t *testing.T) {
	var r recorder
	ctx, cancel := context.WithCancel(context.Background())
	stop := every(ctx, time.Millisecond, func() any { return "x" }, r.record)
	r.waitFor(t, 1)
	cancel()
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("stop did not return after the context ended")
	}
}

func TestEveryWithoutIntervalRecordsNothing(t *testing.T) {
	var r recorder
	stop := every(context.Background(), 0, func() any { return "x" }, r.record)
	time.Sleep(5 * time.Millisecond)
	stop()
	if r.len() != 0 {
		t.Errorf("%d records with interval 0, want none", r.len())
	}
}

func TestOutsideAnActivityNothingIsRecordedAndNothingPanics(t *testing.T) {
	ctx := context.Background()
	Record(ctx, "x")
	Every(ctx, time.Millisecond, func() any { t.Error("detail asked for outside an activity"); return nil })()
	if iv := ForTimeout(ctx, time.Second); iv != 0 {
		t.Errorf("ForTimeout outside an activity = %s, want 0", iv)
	}
	v, err := While(ctx, time.Millisecond, "x", func() (int, error) { return 7, nil })
	if v != 7 || err != nil {
		t.Errorf("While = %d, %v, want 7, nil", v, err)
	}
}

func TestWhileReturnsAtOnceWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	release := make(chan struct{})
	defer close(release)
	cancel()
	_, err := While(ctx, time.Millisecond, "x", func() (int, error) { <-release; return 1, nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("While after cancel = %v, want context.Canceled", err)
	}
}

// TestInAnActivity runs the exported functions in Temporal's activity test
// environment: While records the detail as given (a struct stays a struct), and
// ForTimeout is 0 for an activity without a heartbeat timeout.
func TestInAnActivity(t *testing.T) {
	type progress struct{ Step string }
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	var mu sync.Mutex
	var got []progress
	env.SetOnActivityHeartbeatListener(func(_ *activity.Info, d converter.EncodedValues) {
		var p progress
		if err := d.Get(&p); err != nil {
			t.Errorf("decoding a heartbeat: %v", err)
		}
		mu.Lock()
		got = append(got, p)
		mu.Unlock()
	})
	var interval time.Duration
	env.RegisterActivityWithOptions(func(ctx context.Context) (int, error) {
		interval = ForTimeout(ctx, time.Millisecond)
		return While(ctx, time.Hour, progress{Step: "installing"}, func() (int, error) { return 3, nil })
	}, activity.RegisterOptions{Name: "Act"})
	env.SetTestTimeout(10 * time.Second)
	val, err := env.ExecuteActivity("Act")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := val.Get(&n); err != nil || n != 3 {
		t.Errorf("result %d, %v, want 3", n, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 || got[0] != (progress{Step: "installing"}) {
		t.Errorf("heartbeats %+v, want the detail recorded at once", got)
	}
	if interval != 0 {
		t.Errorf("ForTimeout without a heartbeat timeout = %s, want 0", interval)
	}
}

// TestForTimeoutIsAThirdOfTheHeartbeatTimeout runs an activity from a workflow,
// which can set a heartbeat timeout.
func TestForTimeoutIsAThirdOfTheHeartbeatTimeout(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivityWithOptions(func(ctx context.Context) ([]time.Duration, error) {
		return []time.Duration{ForTimeout(ctx, time.Second), ForTimeout(ctx, 10*time.Second)}, nil
	}, activity.RegisterOptions{Name: "Act"})
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context) ([]time.Duration, error) {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute, HeartbeatTimeout: 9 * time.Second})
		var got []time.Duration
		err := workflow.ExecuteActivity(ctx, "Act").Get(ctx, &got)
		return got, err
	}, workflow.RegisterOptions{Name: "Wf"})
	env.ExecuteWorkflow("Wf")
	var got []time.Duration
	if err := env.GetWorkflowResult(&got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != 3*time.Second || got[1] != 10*time.Second {
		t.Errorf("ForTimeout with a 9s heartbeat timeout and floors 1s, 10s = %v, want [3s 10s]", got)
	}
}
