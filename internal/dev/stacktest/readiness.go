package stacktest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/internal/dev/devstack"
)

// Answers returns a condition for WaitFor: GET url answers code with a body
// containing want.
func Answers(url string, code int, want string) func() error {
	return func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != code || !strings.Contains(string(b), want) {
			return fmt.Errorf("GET %s = %d %q, want %d with %q", url, resp.StatusCode, b, code, want)
		}
		return nil
	}
}

// ReadinessThroughOutage takes the running dev server s through an outage and
// checks a service's health endpoints (base + /healthz and /readyz) follow it
// without a restart of the service: /readyz 200 while s runs, 503 saying Temporal
// is unreachable at s's address while it is stopped, 200 again once it is back on
// the same address; /healthz 200 throughout.
func ReadinessThroughOutage(t testing.TB, s *devstack.DevServer, base string) {
	t.Helper()
	live, ready := base+"/healthz", base+"/readyz"
	step := func(what string, code int, want string) {
		t.Helper()
		WaitFor(t, time.Minute, what, Answers(ready, code, want))
		if err := Answers(live, http.StatusOK, "ok")(); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	step("/readyz while Temporal answers", http.StatusOK, "ready")
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	step("/readyz while Temporal is down", http.StatusServiceUnavailable, "temporal: unreachable at "+s.Address+": ")
	if err := s.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	step("/readyz once Temporal is back on "+s.Address, http.StatusOK, "ready")
}
