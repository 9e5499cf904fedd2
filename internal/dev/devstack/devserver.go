package devstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/internal/dev/devstack/proc"
)

// DevServer is a throwaway Temporal dev server: the pinned `temporal server
// start-dev` the local stack runs, with the same flags (TemporalServerFlags), but
// in memory and on free loopback ports, so that a test or a benchmark neither
// touches the stack's ports and database nor slows whoever else uses the stack.
type DevServer struct {
	// Address is the frontend's host:port.
	Address string
	// LogPath holds the server's output.
	LogPath string

	bin       string
	args      []string
	env       []string
	extra     []string
	level     string
	port      int
	namespace string
	cmd       *exec.Cmd
	exited    chan struct{}
}

// DevServerOption configures StartDevServer.
type DevServerOption func(*DevServer) error

// WithDynamicConfig adds dynamic configuration values (KEY=JSON) to
// TemporalDynamicConfig. Default: none.
func WithDynamicConfig(kv ...string) DevServerOption {
	return func(s *DevServer) error {
		for _, v := range kv {
			if !strings.Contains(v, "=") {
				return fmt.Errorf("devstack.WithDynamicConfig: %q is not KEY=VALUE", v)
			}
		}
		s.extra = append(s.extra, kv...)
		return nil
	}
}

// WithServerEnv adds KEY=VALUE variables to the server's environment. Default:
// the caller's environment only.
func WithServerEnv(kv ...string) DevServerOption {
	return func(s *DevServer) error {
		for _, v := range kv {
			if !strings.Contains(v, "=") {
				return fmt.Errorf("devstack.WithServerEnv: %q is not KEY=VALUE", v)
			}
		}
		s.env = append(s.env, kv...)
		return nil
	}
}

// WithServerLogLevel sets the server's log level (debug, info, warn, error).
// Default: error.
func WithServerLogLevel(level string) DevServerOption {
	return func(s *DevServer) error {
		switch level {
		case "debug", "info", "warn", "error":
			s.level = level
			return nil
		}
		return fmt.Errorf("devstack.WithServerLogLevel: want debug, info, warn or error, got %q", level)
	}
}

// WithPort listens on port of 127.0.0.1, for a test that points a process at the
// address before the server runs; FreePort picks one. Default: a free port.
func WithPort(port int) DevServerOption {
	return func(s *DevServer) error {
		if port <= 0 || port > 65535 {
			return fmt.Errorf("devstack.WithPort: want a port from 1 to 65535, got %d", port)
		}
		s.port = port
		return nil
	}
}

// WithNamespace registers namespace instead of default. Default: default.
func WithNamespace(namespace string) DevServerOption {
	return func(s *DevServer) error {
		if strings.TrimSpace(namespace) == "" {
			return errors.New("devstack.WithNamespace: empty namespace")
		}
		s.namespace = namespace
		return nil
	}
}

// TemporalBin returns the pinned temporal CLI that tools/build.sh builds, or an
// error saying to run `make tools` when it is missing.
func TemporalBin(ctx context.Context) (string, error) {
	repo, err := RepoDir()
	if err != nil {
		return "", err
	}
	s := &stack{repo: repo}
	dir, err := s.toolDir(ctx, "temporal")
	if err != nil {
		return "", fmt.Errorf("finding the temporal CLI (`make tools` builds it): %w", err)
	}
	bin := filepath.Join(dir, "temporal")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("the temporal CLI is not built (%s missing): run `make tools`", bin)
	}
	return bin, nil
}

// StartDevServer starts a dev server with namespace default on a free loopback
// port (WithNamespace, WithPort), its Web UI off, and waits until it answers.
func StartDevServer(ctx context.Context, opts ...DevServerOption) (*DevServer, error) {
	s := &DevServer{level: "error", namespace: "default"}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	bin, err := TemporalBin(ctx)
	if err != nil {
		return nil, err
	}
	port := s.port
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	logf, err := os.CreateTemp("", "conveyor-temporal-dev-*.log")
	if err != nil {
		return nil, err
	}
	logf.Close()
	s.bin, s.LogPath = bin, logf.Name()
	s.Address = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.args = append([]string{"server", "start-dev", "--ip", "127.0.0.1", "--port", strconv.Itoa(port), "--headless",
		"--namespace", s.namespace, "--log-format", "json", "--log-level", s.level}, TemporalServerFlags(s.extra...)...)
	if err := s.Restart(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Restart starts the server again, on the same address, after Stop (or starts it
// the first time), and waits until it answers. Its state starts empty.
func (s *DevServer) Restart(ctx context.Context) error {
	if s.cmd != nil {
		return fmt.Errorf("the dev server at %s is running: Stop it first", s.Address)
	}
	logf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), s.env...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.bin, err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(s.exited) }()
	if err := s.waitReady(ctx, time.Minute); err != nil {
		_ = s.Stop()
		return err
	}
	return nil
}

func (s *DevServer) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var err error
	for {
		var c client.Client
		c, err = client.DialContext(ctx, client.Options{HostPort: s.Address, Logger: quietLogger{}})
		if err == nil {
			_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
			c.Close()
		}
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("the dev server at %s exited at start; its log %s ends:\n%s", s.Address, s.LogPath, proc.Indent(tail(s.LogPath, 20), "  "))
		case <-ctx.Done():
			return fmt.Errorf("the dev server at %s does not answer after %s (log: %s): %w", s.Address, timeout, s.LogPath, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Pid is the running server's process id, 0 when it is stopped.
func (s *DevServer) Pid() int {
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop ends the server, SIGINT then SIGKILL after 20s, and waits until it has
// exited. Stopping a stopped server does nothing.
func (s *DevServer) Stop() error {
	if s.cmd == nil {
		return nil
	}
	defer func() { s.cmd = nil }()
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
		return nil
	case <-time.After(20 * time.Second):
	}
	_ = s.cmd.Process.Kill()
	select {
	case <-s.exited:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("the dev server at " + s.Address + " did not exit after SIGKILL")
	}
}

// FreePort returns a loopback port nothing listens on now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
