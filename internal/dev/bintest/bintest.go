// Package bintest runs conveyor's real binaries in tests: built with `go build`
// into the test's temporary directory, started with their output captured, sent
// signals, and waited for with their exit status.
package bintest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Build builds the main package pkg (an import path or ./dir) into a fresh
// temporary directory and returns the binary.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	name := filepath.Base(pkg)
	if abs, err := filepath.Abs(pkg); err == nil && strings.HasPrefix(pkg, ".") {
		name = filepath.Base(abs)
	}
	bin := filepath.Join(t.TempDir(), name)
	out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// Process is a running binary; its standard output and error are captured
// together.
type Process struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    strings.Builder
	lines  chan struct{} // closed and replaced at each new line
	exited chan struct{}
	err    error
}

// env is the test's environment without conveyor's and Temporal's variables
// (CONVEYOR_*, TEMPORAL_*), so that a binary under test never reaches the
// machine's local stack by accident: its flags say everything.
func env() []string {
	var e []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONVEYOR_") && !strings.HasPrefix(kv, "TEMPORAL_") {
			e = append(e, kv)
		}
	}
	return e
}

// Start runs bin with args and the environment of env, killed when the test ends
// if still running.
func Start(t testing.TB, bin string, args ...string) *Process {
	t.Helper()
	p := &Process{cmd: exec.Command(bin, args...), lines: make(chan struct{}), exited: make(chan struct{})}
	p.cmd.Env = env()
	r, w := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	go p.read(r)
	go func() {
		p.err = p.cmd.Wait()
		w.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

func (p *Process) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		p.mu.Lock()
		p.out.WriteString(sc.Text() + "\n")
		close(p.lines)
		p.lines = make(chan struct{})
		p.mu.Unlock()
	}
}

// Output is what the process has written so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// WaitForMatch waits up to timeout for output matching re and returns the
// match's first group (the whole match when re has none).
func (p *Process) WaitForMatch(t testing.TB, re *regexp.Regexp, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		m := re.FindStringSubmatch(p.out.String())
		next := p.lines
		p.mu.Unlock()
		if m != nil {
			return m[len(m)-1]
		}
		select {
		case <-next:
		case <-p.exited:
			t.Fatalf("the process exited (%v) before writing %s; its output:\n%s", p.err, re, p.Output())
		case <-deadline:
			t.Fatalf("no %s in the output after %s:\n%s", re, timeout, p.Output())
		}
	}
}

// Signal sends sig to the process.
func (p *Process) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("sending %s: %v", sig, err)
	}
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Wait waits up to timeout for the process to exit and returns its exit code.
func (p *Process) Wait(timeout time.Duration) (int, error) {
	select {
	case <-p.exited:
	case <-time.After(timeout):
		return -1, fmt.Errorf("still running after %s", timeout)
	}
	var exit *exec.ExitError
	switch {
	case p.err == nil:
		return 0, nil
	case errors.As(p.err, &exit):
		return exit.ExitCode(), nil
	}
	return -1, p.err
}

// Run runs bin with args and the environment of env to its end and returns its
// exit code and output.
func Run(t testing.TB, bin string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env()
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	}
	t.Fatalf("running %s: %v", bin, err)
	return -1, ""
}
