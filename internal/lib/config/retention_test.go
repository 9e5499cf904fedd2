package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRetentionDefaultsAndOverrides(t *testing.T) {
	path := filepath.Join(t.TempDir(), "conveyor.yaml")
	if err := os.WriteFile(path, []byte("retention:\n  workspaces: {keep: 5}\n  candidates: {maxAge: 72h}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, true)
	if err != nil {
		t.Fatal(err)
	}
	want := Retention{
		Workspaces: Keep{MaxAge: DefaultWorkspaceRetention.MaxAge, Keep: 5},
		Candidates: Keep{MaxAge: 72 * time.Hour, Keep: DefaultCandidateRetention.Keep},
	}
	if c.Retention != want {
		t.Errorf("retention = %+v; want %+v (each field not written keeps its default)", c.Retention, want)
	}

	// What Write stores, Load reads back.
	if err := Write(path, c); err != nil {
		t.Fatal(err)
	}
	again, err := Load(path, true)
	if err != nil {
		t.Fatalf("loading what Write stored: %v", err)
	}
	if again.Retention != want {
		t.Errorf("after Write and Load, retention = %+v; want %+v", again.Retention, want)
	}
}

func TestRetentionRefusals(t *testing.T) {
	for text, want := range map[string]string{
		"retention: {workspaces: {maxAge: 30m}}": "retention.workspaces.maxAge: 30m0s is shorter than 2h0m0s",
		"retention: {candidates: {keep: -1}}":    "retention.candidates: maxAge 336h0m0s and keep -1 must not be negative",
		"retention: {candidates: {maxAge: 2d}}":  `maxAge "2d" is not a duration: write a Go duration such as 168h`,
		"retention: {candidates: {max: 2h}}":     `field "max" is not a retention field`,
	} {
		path := filepath.Join(t.TempDir(), "conveyor.yaml")
		if err := os.WriteFile(path, []byte(text+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path, true)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v; want one saying %q", text, err, want)
		}
	}
}
