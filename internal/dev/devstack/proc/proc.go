// Package proc runs the background processes of the local stack: each in a
// session of its own, its pid in run/NAME.pid and its output appended to
// logs/NAME.log under the stack's state directory. devstack and its OpenStack rig
// (devstack/openstack) share it.
package proc

import (
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

// A Process is one background program of the stack.
type Process struct {
	Name string
	Bin  string
	Args []string
	Env  []string // added to the environment of the stack's own process
	// User, when set, runs the process as that uid and gid (PostgreSQL refuses
	// to run as root).
	User *syscall.Credential
}

// Dir is a stack's state directory, where its processes' pid files and logs are.
type Dir string

// PidFile records a started process: its pid and its start time in clock ticks, so
// that a reused pid is never mistaken for ours.
func (d Dir) PidFile(name string) string { return filepath.Join(string(d), "run", name+".pid") }

// LogFile is where a component's standard output and error go.
func (d Dir) LogFile(name string) string { return filepath.Join(string(d), "logs", name+".log") }

// Start launches p in a session of its own, detached from the caller, appending to
// its log file, and records its pid.
func (d Dir) Start(p Process) (int, error) {
	for _, sub := range []string{"run", "logs"} {
		if err := os.MkdirAll(filepath.Join(string(d), sub), 0o755); err != nil {
			return 0, err
		}
	}
	logf, err := os.OpenFile(d.LogFile(p.Name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("opening log: %w", err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "\n==== %s: conveyor dev up starts %s %s\n", time.Now().UTC().Format(time.RFC3339), p.Bin, strings.Join(p.Args, " "))
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Dir = string(d)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: p.User}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting %s: %w", p.Bin, err)
	}
	pid := cmd.Process.Pid
	st, _ := startTime(pid)
	if err := os.WriteFile(d.PidFile(p.Name), fmt.Appendf(nil, "%d %d\n", pid, st), 0o644); err != nil {
		return 0, err
	}
	// Reap it if it dies while we are still running, so that alive() sees it gone.
	go cmd.Wait() //nolint:errcheck
	return pid, nil
}

// Running returns the pid of the named component if the process this stack
// started for it is still alive.
func (d Dir) Running(name string) (int, bool) {
	b, err := os.ReadFile(d.PidFile(name))
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

// Stop ends the named component's process group: SIGTERM, then SIGKILL after
// grace. It reports whether there was a process to stop.
func (d Dir) Stop(name string, grace time.Duration) (bool, error) {
	return d.StopWith(name, syscall.SIGTERM, grace)
}

// StopWith is Stop with another signal than SIGTERM first.
func (d Dir) StopWith(name string, sig syscall.Signal, grace time.Duration) (bool, error) {
	pid, ok := d.Running(name)
	defer os.Remove(d.PidFile(name))
	if !ok {
		return false, nil
	}
	_ = syscall.Kill(-pid, sig)
	_ = syscall.Kill(pid, sig)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if _, ok := d.Running(name); !ok {
			return true, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 50; i++ {
		if _, ok := d.Running(name); !ok {
			return true, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true, fmt.Errorf("%s (pid %d) did not exit after SIGKILL", name, pid)
}

// LogTail returns the last n lines of a component's log.
func (d Dir) LogTail(name string, n int) string {
	b, err := os.ReadFile(d.LogFile(name))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
