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
	"slices"
	"strings"
	"testing"
	"time"

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
	start := time.Now()
	if code := m.Run(); code != 0 {
		return code
	}
	return scanHistories(start)
}

// scanHistories fails the run when a history that its tests wrote holds one of
// the stack's secrets (every credential and key it keeps under its state
// directory's secrets/, and the configuration's passwords) in the clear.
func scanHistories(since time.Time) int {
	secrets, err := stacktest.StackSecrets(cfg.StateDir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	secrets = append(secrets, cfg.Registry.Password, cfg.OpenStack.Password, cfg.Gerrit.Password)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	found, scanned, err := stacktest.ScanHistories(ctx, stacktest.UsedNamespaces(cfg.Temporal), since, secrets...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: scanning the histories the tests wrote: %v\n", err)
		return 1
	}
	if len(found) > 0 {
		fmt.Fprintf(os.Stderr, "integration: %d places in the histories of this run hold a secret of the stack in the clear:\n  %s\n",
			len(found), strings.Join(found, "\n  "))
		return 1
	}
	fmt.Printf("integration: %d histories written by the tests hold none of the stack's %d secrets in the clear\n",
		scanned, len(slices.DeleteFunc(secrets, func(s string) bool { return s == "" })))
	return 0
}
