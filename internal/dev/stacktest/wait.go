package stacktest

import (
	"fmt"
	"net/http"
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

// WaitForOK waits (WaitFor) until GET url answers 200.
func WaitForOK(t testing.TB, timeout time.Duration, url string) {
	t.Helper()
	WaitFor(t, timeout, "GET "+url, func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	})
}
