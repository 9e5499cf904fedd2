package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/internal/lib/workspace"
)

// gcCheckouts makes checkouts of one repository under state, last used 1, 3,
// 10, 20 and 30 days ago, and returns their directories in that order.
func gcCheckouts(t *testing.T, state string) []string {
	t.Helper()
	var dirs []string
	for i, days := range []int{1, 3, 10, 20, 30} {
		dir := workspace.Dir(state, workspace.Source{Repo: "https://example.org/hello", Commit: strings.Repeat(string(rune('a'+i)), 40)})
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(-time.Duration(days) * 24 * time.Hour)
		if err := os.Chtimes(dir, at, at); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
	}
	// What Ensure records of the repository, for the report.
	if err := os.WriteFile(filepath.Join(filepath.Dir(dirs[0]), ".repo"), []byte("https://example.org/hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dirs
}

// With the default retention (a week, 3 per repository) the two oldest go: the dry
// run names them and leaves them, the real run removes them and says so.
func TestGCWorkspacesDryRunThenForReal(t *testing.T) {
	state := t.TempDir()
	dirs := gcCheckouts(t, state)

	out, err := runConveyor(t, "--state-dir", state, "gc", "--dry-run", "--what", "workspaces")
	if err != nil {
		t.Fatalf("gc --dry-run: %v\n%s", err, out)
	}
	wantLines(t, "gc --dry-run", out,
		"keeping the newest 3 of each repository and any used within 168h0m0s",
		"would remove "+dirs[4]+" (https://example.org/hello; last used ", "30d ago)",
		"would remove "+dirs[3], "would remove 2\n")
	if strings.Contains(out, dirs[2]) || strings.Contains(out, "Candidates") {
		t.Errorf("gc --dry-run --what workspaces names more than the two oldest checkouts:\n%s", out)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("the dry run removed %s", d)
		}
	}

	out, err = runConveyor(t, "--state-dir", state, "gc", "--what", "workspaces")
	if err != nil {
		t.Fatalf("gc: %v\n%s", err, out)
	}
	wantLines(t, "gc", out, "removed "+dirs[4], "removed "+dirs[3], "removed 2\n")
	for i, d := range dirs {
		_, err := os.Stat(d)
		if gone := os.IsNotExist(err); gone != (i >= 3) {
			t.Errorf("%s (%d): removed %v; want only the two oldest removed", filepath.Base(d), i, gone)
		}
	}
}

func TestGCRefusals(t *testing.T) {
	state := t.TempDir()
	if err := os.WriteFile(filepath.Join(state, "conveyor.yaml"), []byte("retention: {workspaces: {maxAge: 1h}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantCLIErrors(t, []cliError{
		{[]string{"gc", "--what", "caches"}, `--what: "caches" is not one of workspaces, candidates`},
		{[]string{"gc", "now"}, `unexpected arguments ["now"]`},
		{[]string{"--state-dir", state, "gc", "--dry-run"}, "retention.workspaces.maxAge: 1h0m0s is shorter than 2h0m0s"},
	})
	out, err := runConveyor(t, "gc", "--help")
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, "gc --help", out, "--dry-run", "maxAge", "keep", "published", "registry garbage-collect", "Example")
}
