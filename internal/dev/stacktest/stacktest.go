// Package stacktest gives tests the real local stack: the first caller in a test
// binary brings it up (the same code as `conveyor dev up`, a no-op when it is up) and
// every caller gets its configuration. A stack that cannot be brought up fails the
// test with the make target that provides it; it never skips.
package stacktest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/internal/client/payloadcrypt"
	"github.com/wikimedia/conveyor/internal/client/replay"
	"github.com/wikimedia/conveyor/internal/dev/devstack"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// stack is the plain stack, brought up once per test binary.
var stack memo

// memo keeps the result of bringing the stack up, which happens once per test
// binary and kind of stack.
type memo struct {
	once sync.Once
	cfg  config.Config
	err  error
}

func (m *memo) get(up func() (config.Config, error)) (config.Config, error) {
	m.once.Do(func() { m.cfg, m.err = up() })
	return m.cfg, m.err
}

// Config brings the stack up if needed and returns its configuration.
func Config(t testing.TB) config.Config {
	t.Helper()
	c, err := Up()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Up brings the stack up once per test binary (for TestMain) and returns its
// configuration, or an error naming the make target that provides the stack.
func Up() (config.Config, error) {
	cfg, err := stack.get(func() (config.Config, error) { return up() })
	if err != nil {
		return config.Config{}, fmt.Errorf("the local stack is required (`make up` starts it; `make tools` builds its parts): %w", err)
	}
	return cfg, nil
}

// RepoDir returns the root of the conveyor source tree.
func RepoDir() (string, error) { return devstack.RepoDir() }

// up runs dev up with the optional components with, and reads the configuration
// it writes.
func up(with ...string) (config.Config, error) {
	repo, err := RepoDir()
	if err != nil {
		return config.Config{}, err
	}
	stateDir := cfgStateDir()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	path, err := devstack.Up(ctx, devstack.Options{StateDir: stateDir, RepoDir: repo, Progress: &progress, With: with})
	if err != nil {
		return config.Config{}, fmt.Errorf("%v\n%s", err, progress.String())
	}
	return config.Load(path, true)
}

// RecordHistory keeps the history of a workflow run as the replay tests of workflows/
// read it (workflows/testdata/histories/FILE), when CONVEYOR_RECORD_HISTORIES is set;
// otherwise it does nothing. An empty runID means the latest run. Payloads the
// stack's key encrypted (temporal.payloadKeyFile) are kept decrypted: the replay
// tests have no key.
func RecordHistory(t testing.TB, c client.Client, workflowID, runID, file string) {
	t.Helper()
	if os.Getenv("CONVEYOR_RECORD_HISTORIES") == "" {
		return
	}
	h := History(t, c, workflowID, runID)
	cfg, err := config.Load(devstack.ConfigFile(cfgStateDir()), false)
	if err != nil {
		t.Fatal(err)
	}
	if f := cfg.Temporal.PayloadKeyFile; f != "" {
		codec, err := payloadcrypt.Load("temporal.payloadKeyFile", f)
		if err != nil {
			t.Fatal(err)
		}
		if err := DecodeHistory(h, codec); err != nil {
			t.Fatalf("decrypting the history of %s to record it: %v", workflowID, err)
		}
	}
	b, err := replay.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	root, err := RepoDir()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "workflows", "testdata", "histories", file)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s", path)
}
