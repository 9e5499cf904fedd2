package stacktest

import (
	"testing"
	"time"
)

// WaitFor polls cond every 100ms until it returns nil, and fails the test with
// what and cond's last error once timeout has passed. Tests wait on a condition
// with it, never for a fixed time.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
