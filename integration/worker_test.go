package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startWorker runs the real conveyor-worker binary against the stack for pools and
// returns it with its combined output; the test's cleanup stops it.
func startWorker(t *testing.T, pools string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	out := &syncBuffer{}
	cmd := exec.Command(filepath.Join(binDir, "conveyor-worker"), "--config", stackConfigPath(), "--pools", pools)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_, _ = cmd.Process.Wait()
		}
	})
	return cmd, out
}

// startLoggedWorker runs conveyor-worker against the stack with args after
// --config and env added to its environment; it dies with the test binary (a
// binary killed by its timeout runs no cleanup, and the worker must not take the
// next run's tasks), the test's cleanup stops it, and a failed test logs its output.
func startLoggedWorker(t *testing.T, env []string, args ...string) *syncBuffer {
	t.Helper()
	out := &syncBuffer{}
	cmd := exec.Command(filepath.Join(binDir, "conveyor-worker"), append([]string{"--config", stackConfigPath()}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		if t.Failed() {
			t.Logf("worker output:\n%s", out.String())
		}
	})
	return out
}

// TestPingThroughWorkerPools starts a trivial workflow that visits each pool and sees
// it complete on a real worker, then stops the worker with SIGTERM.
func TestPingThroughWorkerPools(t *testing.T) {
	worker, wout := startWorker(t, "build,deploy,migrate")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	msg := "foundation-" + randomHex(t)[:8]
	ping := exec.CommandContext(ctx, filepath.Join(binDir, "conveyor"), "--config", stackConfigPath(),
		"ping", "--pools", "build,deploy,migrate", "--message", msg)
	out, err := ping.CombinedOutput()
	if err != nil {
		t.Fatalf("conveyor ping: %v\n%s\nworker:\n%s", err, out, wout.String())
	}
	for _, q := range []string{"conveyor-build", "conveyor-deploy", "conveyor-migrate"} {
		if !strings.Contains(string(out), q) {
			t.Errorf("ping output has no answer from %s:\n%s", q, out)
		}
	}
	if strings.Count(string(out), msg) < 3 {
		t.Errorf("ping output does not echo %q from three pools:\n%s", msg, out)
	}

	if err := worker.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- worker.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("worker exited with %v after SIGTERM, want a clean exit:\n%s", err, wout.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("worker still running 30s after SIGTERM:\n%s", wout.String())
	}
}

func stackConfigPath() string {
	return filepath.Join(cfg.StateDir, "conveyor.yaml")
}

// syncBuffer is a bytes.Buffer safe for a process's output and the test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
