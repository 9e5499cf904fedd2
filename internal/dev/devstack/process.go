package devstack

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/wikimedia/conveyor/internal/dev/devstack/proc"
)

// A process is one background program of the stack.
type process = proc.Process

// procDir is the stack's state directory as the process helpers see it.
func (s *stack) procDir() proc.Dir { return proc.Dir(s.dir) }

// pidFile records a started process (proc.Dir.PidFile).
func (s *stack) pidFile(name string) string { return s.procDir().PidFile(name) }

// logFile is where a component's standard output and error go.
func (s *stack) logFile(name string) string { return s.procDir().LogFile(name) }

// start launches p detached, appending to its log file, and records its pid.
func (s *stack) start(p process) (int, error) { return s.procDir().Start(p) }

// running returns the pid of the named component if the process this stack started
// for it is still alive.
func (s *stack) running(name string) (int, bool) { return s.procDir().Running(name) }

// stopComponent ends c's process group with its own stop signal, then SIGKILL
// after its grace.
func (s *stack) stopComponent(c component) (bool, error) {
	sig := c.stopSignal
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	return s.procDir().StopWith(c.name, sig, c.grace())
}

// logTail returns the last n lines of a component's log.
func (s *stack) logTail(name string, n int) string { return s.procDir().LogTail(name, n) }

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
