// Package gittest runs git for conveyor's tests, benchmarks and dev rig as a fixed
// identity, so that the repositories they make do not depend on the machine's git
// configuration. It has no Temporal in it and does not import testing: the helpers
// for tests take a TB, which *testing.T and *testing.B satisfy.
package gittest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Identity is who makes the commits, and optionally when.
type Identity struct {
	// Name and Email are the author's and the committer's.
	Name, Email string
	// Date, when set, is the author and committer date of every commit (RFC 3339),
	// so that a commit of the same files is the same commit on every machine.
	Date string
	// Isolated makes git ignore the user's and the system's configuration.
	Isolated bool
}

// Tester is the identity of the tests' and the benchmarks' commits.
var Tester = Identity{Name: "conveyor test", Email: "conveyor@localhost", Isolated: true}

// Environ is the process environment plus git's: the C locale, no prompts, and id
// as author and committer.
func (id Identity) Environ() []string {
	env := append(os.Environ(), "LC_ALL=C", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME="+id.Name, "GIT_AUTHOR_EMAIL="+id.Email)
	if id.Date != "" {
		env = append(env, "GIT_AUTHOR_DATE="+id.Date)
	}
	env = append(env, "GIT_COMMITTER_NAME="+id.Name, "GIT_COMMITTER_EMAIL="+id.Email)
	if id.Date != "" {
		env = append(env, "GIT_COMMITTER_DATE="+id.Date)
	}
	if id.Isolated {
		env = append(env, "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	}
	return env
}

// Run runs git in dir (the working directory when empty) as id and returns its
// standard output; the error carries the arguments and git's standard error.
func (id Identity) Run(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = id.Environ()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// CommitAll makes dir a git repository (branch main) with one commit of everything
// in it, as Tester, and returns the commit.
func CommitAll(ctx context.Context, dir, message string) (string, error) {
	for _, args := range [][]string{
		{"init", "--quiet", "--initial-branch=main"},
		{"add", "--all"},
		{"commit", "--quiet", "--message", message},
	} {
		if _, err := Tester.Run(ctx, dir, args...); err != nil {
			return "", fmt.Errorf("in %s: %w", dir, err)
		}
	}
	out, err := Tester.Run(ctx, dir, "rev-parse", "HEAD")
	return strings.TrimSpace(out), err
}

// TB is what the helpers need of a test or benchmark.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Git runs git in dir as Tester and returns its output without the surrounding
// space; a failure ends the test.
func Git(t TB, dir string, args ...string) string {
	t.Helper()
	out, err := Tester.Run(context.Background(), dir, args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return strings.TrimSpace(out)
}

// Commit is CommitAll for tests: a failure ends the test.
func Commit(t TB, dir, message string) string {
	t.Helper()
	commit, err := CommitAll(context.Background(), dir, message)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return commit
}
