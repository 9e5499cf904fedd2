// Package integration holds the end-to-end tests that run on the real local stack.
// TestMain brings the stack up (the same code as `conveyor dev up`) when it is not up;
// a component that cannot start fails the run with the make target that provides it.
package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/internal/config"
	"github.com/wikimedia/conveyor/internal/devstack"
)

var (
	// cfg is the stack's configuration, as `conveyor dev up` writes it.
	cfg config.Config
	// repoDir is the root of the source tree.
	repoDir string
	// binDir holds the conveyor binaries built for this run.
	binDir string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	repoDir = filepath.Dir(wd)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	stateDir := os.Getenv("CONVEYOR_STATE_DIR")
	if stateDir == "" {
		stateDir = filepath.Join(repoDir, config.DefaultStateDir)
	}
	path, err := devstack.Up(ctx, devstack.Options{StateDir: stateDir, RepoDir: repoDir, Progress: os.Stderr})
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: the local stack is required and could not be brought up (it is provided by `make up`; tools by `make tools`):\n%v\n", err)
		return 1
	}
	if cfg, err = config.Load(path, true); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	binDir, err = os.MkdirTemp("", "conveyor-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(binDir)
	for _, pkg := range []string{"./starter", "./workers"} {
		out := filepath.Join(binDir, map[string]string{"./starter": "conveyor", "./workers": "conveyor-worker"}[pkg])
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		cmd.Dir = repoDir
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "integration: building %s: %v\n%s", pkg, err, b)
			return 1
		}
	}
	return m.Run()
}

// waitFor polls cond until it returns nil or the deadline passes; it never sleeps a
// fixed time on its own.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not after %s: %v", what, timeout, err)
}
