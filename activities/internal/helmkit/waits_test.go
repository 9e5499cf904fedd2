package helmkit

import (
	"testing"
	"time"
)

func TestWaitsSettersCheckTheirInput(t *testing.T) {
	var w Waits
	if err := w.SetReadyTimeout(0); err == nil {
		t.Error("SetReadyTimeout(0) accepted")
	}
	if err := w.SetPollInterval(-time.Second); err == nil {
		t.Error("SetPollInterval(-1s) accepted")
	}
	if err := w.SetCrashLoopLimit(0); err == nil {
		t.Error("SetCrashLoopLimit(0) accepted")
	}
	if w != (Waits{}) {
		t.Errorf("refused settings changed the waits: %+v", w)
	}
	if err := w.SetReadyTimeout(time.Minute); err != nil {
		t.Error(err)
	}
	if err := w.SetPollInterval(time.Second); err != nil {
		t.Error(err)
	}
	if err := w.SetCrashLoopLimit(2); err != nil {
		t.Error(err)
	}
	if want := (Waits{ReadyTimeout: time.Minute, Poll: time.Second, CrashLimit: 2}); w != want {
		t.Errorf("waits %+v, want %+v", w, want)
	}
}
