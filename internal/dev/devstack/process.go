package devstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A process is one background program of the stack.
type process struct {
	name string
	bin  string
	args []string
	env  []string // added to the environment of the stack's own process
}

// pidFile records a started process: its pid and its start time in clock ticks, so
// that a reused pid is never mistaken for ours.
func (s *stack) pidFile(name string) string { return filepath.Join(s.dir, "run", name+".pid") }

// logFile is where a component's standard output and error go.
func (s *stack) logFile(name string) string { return filepath.Join(s.dir, "logs", name+".log") }

// start launches p in a session of its own, detached from the caller, appending to its
// log file, and records its pid.
func (s *stack) start(p process) (int, error) {
	for _, d := range []string{"run", "logs"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o755); err != nil {
			return 0, err
		}
	}
	logf, err := os.OpenFile(s.logFile(p.name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("opening log: %w", err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "\n==== %s: conveyor dev up starts %s %s\n", time.Now().UTC().Format(time.RFC3339), p.bin, strings.Join(p.args, " "))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting %s: %w", p.bin, err)
	}
	pid := cmd.Process.Pid
	st, _ := startTime(pid)
	if err := os.WriteFile(s.pidFile(p.name), fmt.Appendf(nil, "%d %d\n", pid, st), 0o644); err != nil {
		return 0, err
	}
	// Reap it if it dies while we are still running, so that alive() sees it gone.
	go cmd.Wait() //nolint:errcheck
	return pid, nil
}

// running returns the pid of the named component if the process this stack started
// for it is still alive.
func (s *stack) running(name string) (int, bool) {
	b, err := os.ReadFile(s.pidFile(name))
	if err != nil {
		return 0, false
	}
	var pid int
	var st uint64
	if _, err := fmt.Sscan(string(b), &pid, &st); err != nil || pid <= 0 {
		return 0, false
	}
	return pid, alive(pid, st)
}

func alive(pid int, st uint64) bool {
	now, err := startTime(pid)
	if err != nil || (st != 0 && now != st) {
		return false
	}
	state, _ := procState(pid)
	return state != "Z" && state != "X"
}

// startTime reads field 22 of /proc/PID/stat.
func startTime(pid int) (uint64, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(f[19], 10, 64)
}

func procState(pid int) (string, error) {
	f, err := statFields(pid)
	if err != nil {
		return "", err
	}
	return f[0], nil
}

// statFields returns the fields of /proc/PID/stat after the command name.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, errors.New("malformed stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return nil, errors.New("malformed stat")
	}
	return f, nil
}

// stop ends the named component's process group: SIGTERM, then SIGKILL after grace.
func (s *stack) stop(name string, grace time.Duration) (bool, error) {
	pid, ok := s.running(name)
	defer os.Remove(s.pidFile(name))
	if !ok {
		return false, nil
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if _, ok := s.running(name); !ok {
			return true, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 50; i++ {
		if _, ok := s.running(name); !ok {
			return true, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true, fmt.Errorf("%s (pid %d) did not exit after SIGKILL", name, pid)
}

// waitReady polls check until it succeeds, the process dies, or the timeout passes.
func (s *stack) waitReady(ctx context.Context, name string, timeout time.Duration, check func(context.Context, *stack) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		last = check(cctx, s)
		ccancel()
		if last == nil {
			return nil
		}
		if _, ok := s.running(name); !ok && s.isProcess(name) {
			return fmt.Errorf("%s exited during start-up (last check: %v)", name, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %v", name, timeout, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// logTail returns the last n lines of a component's log.
func (s *stack) logTail(name string, n int) string {
	b, err := os.ReadFile(s.logFile(name))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
