package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/workflows"
)

// temporalCLI returns the pinned temporal CLI that tools/build.sh builds.
func temporalCLI(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(filepath.Join("..", "tools", "build.sh"), "--print-dir", "temporal").Output()
	if err != nil {
		t.Fatalf("finding the temporal CLI: %v", err)
	}
	bin := filepath.Join(strings.TrimSpace(string(out)), "temporal")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("the temporal CLI is not built (%v): run `tools/build.sh temporal` (or `make up`, which builds it)", err)
	}
	return bin
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startDevServer starts a throwaway, in-memory Temporal dev server on a free port,
// stopped when the test ends, and returns its address once it is healthy.
func startDevServer(t *testing.T) string {
	t.Helper()
	bin := temporalCLI(t)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	_, port, _ := net.SplitHostPort(addr)
	var log bytes.Buffer
	cmd := exec.Command(bin, "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", port, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the temporal dev server: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if exec.Command(bin, "operator", "cluster", "health", "--address", addr).Run() == nil {
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("the temporal dev server on %s was not healthy within 60s; its log:\n%s", addr, log.String())
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWorkerAnswersPingOnEveryPool runs the real worker against a real Temporal dev
// server and the Ping workflow through all three pools, then stops the worker.
func TestWorkerAnswersPingOnEveryPool(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: needs the pinned temporal CLI (`make tools`); `make test` runs it")
	}
	addr := startDevServer(t)
	t.Setenv("CONVEYOR_CONFIG", "")

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	app := newApp()
	var logs syncBuffer
	app.Writer, app.ErrWriter = &logs, &logs
	done := make(chan error, 1)
	go func() {
		done <- app.RunContext(ctx, []string{"conveyor-worker", "--address", addr, "--log-format", "json"})
	}()

	c, err := client.Dial(client.Options{HostPort: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	run, err := c.ExecuteWorkflow(rctx, client.StartWorkflowOptions{ID: "e2e-ping", TaskQueue: workflows.TaskQueueDeploy},
		workflows.Ping, workflows.PingInput{Message: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.PingResult
	if err := run.Get(rctx, &res); err != nil {
		t.Fatalf("Ping: %v\nworker log:\n%s", err, logs.String())
	}
	host, _ := os.Hostname()
	for i, p := range workflows.Pools {
		a := res.Answers[i]
		if a.Pool != p || a.TaskQueue != workflows.TaskQueue(p) || a.Host != host || a.Message != "e2e" || !strings.HasSuffix(a.Identity, "@conveyor-worker/"+p) {
			t.Errorf("answer %d = %+v, want pool %s from this host's worker", i, a, p)
		}
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the worker returned %v when stopped", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not stop within 30s")
	}
	for _, p := range workflows.Pools {
		if !strings.Contains(logs.String(), `"msg":"Stopped Worker","Namespace":"default","TaskQueue":"`+workflows.TaskQueue(p)) {
			t.Errorf("the worker for %s did not log its stop:\n%s", p, logs.String())
		}
	}
}
