package gittest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestCommitAllIsDeterministic commits the same files twice with a fixed date and
// expects the same commit, and checks Tester's identity is the author.
func TestCommitAllIsDeterministic(t *testing.T) {
	ctx := context.Background()
	id := Tester
	id.Date = "2026-01-01T00:00:00Z"
	var commits []string
	for range 2 {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", "a"}} {
			if _, err := id.Run(ctx, dir, args...); err != nil {
				t.Fatal(err)
			}
		}
		commits = append(commits, Git(t, dir, "rev-parse", "HEAD"))
	}
	if commits[0] != commits[1] {
		t.Errorf("two commits of the same files at the same date differ: %v", commits)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "b.txt"), []byte("b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	commit := Commit(t, dir, "b")
	if got := Git(t, dir, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%s", commit); got != "conveyor test <conveyor@localhost>|conveyor test <conveyor@localhost>|b" {
		t.Errorf("commit = %q", got)
	}
	if got := Git(t, dir, "rev-parse", "--abbrev-ref", "HEAD"); got != "main" {
		t.Errorf("branch = %q, want main", got)
	}
}
