package helmkit

import (
	"fmt"
	"time"
)

// Waits are the settings the Helm activities (activities/helm, activities/promote)
// share for waiting on a release: how long, how often to look, and when a crash
// loop is final. Each package sets its defaults and has an option for each field
// (WithReadyTimeout, WithPollInterval, WithCrashLoopLimit) that calls the setter
// below, so the settings are checked in one place and the same way.
type Waits struct {
	// ReadyTimeout bounds each wait for the release's pods to become ready (and
	// Helm's own install or upgrade); the activity's deadline, if earlier, wins.
	ReadyTimeout time.Duration
	// Poll is how often the waits look at the cluster.
	Poll time.Duration
	// CrashLimit is how many restarts of a crash-looping container make its
	// failure final (PodQuery.CrashLimit).
	CrashLimit int32
}

// SetReadyTimeout sets ReadyTimeout; d must be positive.
func (w *Waits) SetReadyTimeout(d time.Duration) error {
	if err := Positive("ready timeout", d); err != nil {
		return err
	}
	w.ReadyTimeout = d
	return nil
}

// SetPollInterval sets Poll; d must be positive.
func (w *Waits) SetPollInterval(d time.Duration) error {
	if err := Positive("poll interval", d); err != nil {
		return err
	}
	w.Poll = d
	return nil
}

// SetCrashLoopLimit sets CrashLimit; n must be at least 1.
func (w *Waits) SetCrashLoopLimit(n int) error {
	if n < 1 {
		return fmt.Errorf("crash loop limit %d is less than 1", n)
	}
	w.CrashLimit = int32(n)
	return nil
}

// Positive checks a duration option: what names it in the error.
func Positive(what string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%s %s is not positive", what, d)
	}
	return nil
}
