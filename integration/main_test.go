// Package integration holds the end-to-end tests that run on the real local stack.
// TestMain brings the stack up (the same code as `conveyor dev up`) when it is not up;
// a component that cannot start fails the run with the make target that provides it.
package integration

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/internal/client/replay"
	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/workflows/all"
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
// directory's secrets/, and the configuration's passwords) in the clear, or when
// one that conveyor's workers ran does not replay against the workflow code of
// this tree (replayRan).
func scanHistories(since time.Time) int {
	secrets, err := stacktest.StackSecrets(cfg.StateDir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	secrets = append(secrets, cfg.Registry.Password, cfg.OpenStack.Password, cfg.Gerrit.Password)
	secrets = slices.DeleteFunc(secrets, func(s string) bool { return s == "" })
	dc, fc, err := temporalclient.ConvertersFor(cfg.Temporal)
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	replayer := replay.New(all.Workflows(), dc, fc)
	var found, failed []string
	replayed, others := 0, 0
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	scanned, err := stacktest.EachHistory(ctx, stacktest.UsedNamespaces(cfg.Temporal), since,
		func(tc config.Temporal, exec workflow.Execution, h *historypb.History) {
			for _, f := range stacktest.SecretsInClear(h, secrets...) {
				found = append(found, fmt.Sprintf("%s/%s (run %s): %s", tc.Namespace, exec.ID, exec.RunID, f))
			}
			if !ranOnConveyorWorkers(h) {
				others++
				return
			}
			res := replayer.Replay(tc.Namespace+"/"+exec.ID+" (run "+exec.RunID+")", h, exec)
			switch {
			case res.Skipped != "":
				others++
			case res.Err != nil:
				failed = append(failed, res.String())
			default:
				replayed++
			}
		})
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: reading the histories the tests wrote: %v\n", err)
		return 1
	}
	code := 0
	if len(found) > 0 {
		fmt.Fprintf(os.Stderr, "integration: %d places in the histories of this run hold a secret of the stack in the clear:\n  %s\n",
			len(found), strings.Join(found, "\n  "))
		code = 1
	}
	if len(failed) > 0 {
		fmt.Fprintf(os.Stderr, "integration: %d histories that conveyor's workers wrote in this run do not replay against this tree's workflows:\n%s\n",
			len(failed), strings.Join(failed, "\n"))
		code = 1
	}
	fmt.Printf("integration: %d histories written by the tests hold none of the stack's %d secrets in the clear; "+
		"%d run by conveyor's workers replay against this tree (%d others not replayed: test workflows, or run by in-process workers)\n",
		scanned, len(secrets), replayed, others)
	// The whole package runs pipelines, promotions and migrations on conveyor's
	// workers: replaying none of them would mean the check checks nothing.
	if f := flag.Lookup("test.run"); replayed == 0 && code == 0 && (f == nil || f.Value.String() == "") {
		fmt.Fprintln(os.Stderr, "integration: no history of conveyor's workers was replayed: the replay check checked nothing")
		code = 1
	}
	return code
}

// ranOnConveyorWorkers says whether every workflow task of h was completed by a
// conveyor-worker process (identity <pid>@<host>@conveyor-worker/<pool>), the
// workflows of this tree; tests also run workflows of their own, or stand-ins
// registered under conveyor's names, on workers of their own.
func ranOnConveyorWorkers(h *historypb.History) bool {
	n := 0
	for _, ev := range h.GetEvents() {
		if a := ev.GetWorkflowTaskCompletedEventAttributes(); a != nil {
			if !strings.Contains(a.GetIdentity(), "@conveyor-worker/") {
				return false
			}
			n++
		}
	}
	return n > 0
}
