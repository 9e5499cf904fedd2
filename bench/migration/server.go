package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/internal/dev/devstack"
)

// devServer is a Temporal dev server of the benchmark's own: the pinned
// `temporal server start-dev` the local stack runs, with the same dynamic
// configuration and search attributes, but in memory and on free ports, so that
// a run neither fills the stack's database with a million events nor slows the
// workflows of whoever else uses the stack.
type devServer struct {
	cmd     *exec.Cmd
	address string
	logPath string
}

// startDevServer starts the dev server and waits until it answers.
func startDevServer(ctx context.Context) (*devServer, error) {
	out, err := exec.Command("tools/build.sh", "--print-dir", "temporal").Output()
	if err != nil {
		return nil, fmt.Errorf("finding the temporal CLI with tools/build.sh (run from the repository root; `make tools` builds it): %v", err)
	}
	bin := filepath.Join(strings.TrimSpace(string(out)), "temporal")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s missing: run `make tools`", bin)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	ui, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{"server", "start-dev", "--ip", "127.0.0.1", "--port", fmt.Sprint(port), "--ui-port", fmt.Sprint(ui),
		"--namespace", "default", "--log-format", "json", "--log-level", "error"}
	args = append(args, devstack.TemporalServerFlags(strings.Fields(os.Getenv("BENCH_DYNAMIC_CONFIG"))...)...)
	logf, err := os.CreateTemp("", "bench-migration-temporal-*.log")
	if err != nil {
		return nil, err
	}
	s := &devServer{cmd: exec.Command(bin, args...), address: fmt.Sprintf("127.0.0.1:%d", port), logPath: logf.Name()}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if g := os.Getenv("BENCH_SERVER_GOGC"); g != "" {
		s.cmd.Env = append(os.Environ(), "GOGC="+g)
	}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := client.DialContext(ctx, client.Options{HostPort: s.address})
		if err == nil {
			_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
			c.Close()
		}
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("the dev server at %s does not answer after a minute (log: %s): %w", s.address, s.logPath, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func (s *devServer) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
