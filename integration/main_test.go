// Package integration holds the end-to-end tests that run on the real local stack.
// TestMain brings the stack up (the same code as `conveyor dev up`) when it is not up;
// a component that cannot start fails the run with the make target that provides it.
package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/internal/lib/config"
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
	var err error
	if repoDir, err = stacktest.RepoDir(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if cfg, err = stacktest.Up(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	if binDir, err = os.MkdirTemp("", "conveyor-bin-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(binDir)
	for _, b := range []struct{ pkg, name string }{{"./starter", "conveyor"}, {"./workers", "conveyor-worker"}} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, b.name), b.pkg)
		cmd.Dir = repoDir
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "integration: building %s: %v\n%s", b.pkg, err, out)
			return 1
		}
	}
	return m.Run()
}
