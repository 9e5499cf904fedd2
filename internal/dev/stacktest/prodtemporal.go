package stacktest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/internal/client/temporalsetup"
	"github.com/wikimedia/conveyor/internal/dev/devstack"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// prodStack is the stack with the production Temporal beside the dev server.
var prodStack memo

// ProdTemporal brings the stack up with the production Temporal (Temporal's own
// server on PostgreSQL) beside the dev server, and returns the stack's
// configuration pointed at it, in the namespace its setup step registered.
func ProdTemporal(t testing.TB) config.Config {
	t.Helper()
	cfg, err := prodStack.get(func() (config.Config, error) { return up(devstack.WithTemporalPostgres) })
	if err != nil {
		t.Fatalf("the local stack with the production Temporal is required (`conveyor dev up --with temporal-postgres`; `make tools` builds its parts, `make deps` installs PostgreSQL): %v", err)
	}
	// The same payload keys as the dev server's: the stack's workers and CLI
	// encrypt on both.
	key := cfg.Temporal.PayloadKeyFile
	cfg.Temporal = devstack.ProdTemporal()
	cfg.Temporal.PayloadKeyFile = key
	return cfg
}

// Restart restarts one process of the stack (e.g. "postgresql") and waits until it
// is ready again.
func Restart(t testing.TB, component string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := devstack.Restart(ctx, devstack.Options{StateDir: cfgStateDir()}, component); err != nil {
		t.Fatalf("restarting %s: %v", component, err)
	}
}

// cfgStateDir is the state directory up uses.
func cfgStateDir() string {
	if d := os.Getenv("CONVEYOR_STATE_DIR"); d != "" {
		return d
	}
	repo, err := RepoDir()
	if err != nil {
		panic(fmt.Sprintf("stacktest: %v", err))
	}
	return filepath.Join(repo, config.DefaultStateDir)
}

// ProdPostgres brings the stack up with the production Temporal and returns how to
// reach its PostgreSQL, and the path of Temporal's schema tool.
func ProdPostgres(t testing.TB) (temporalsetup.Postgres, string) {
	t.Helper()
	ProdTemporal(t)
	pg, err := devstack.ProdPostgres(cfgStateDir())
	if err != nil {
		t.Fatal(err)
	}
	repo, err := RepoDir()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(repo, "tools", "build.sh"), "--print-dir", "temporal-server").Output()
	if err != nil {
		t.Fatalf("tools/build.sh --print-dir temporal-server: %v", err)
	}
	return pg, filepath.Join(strings.TrimSpace(string(out)), "temporal-sql-tool")
}
