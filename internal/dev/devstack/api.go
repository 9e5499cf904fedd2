// Package devstack runs conveyor's local stack: the Temporal dev server, buildkitd, the
// registry, a single-node Kubernetes cluster (eqiad) and a second control plane whose
// nodes kwok simulates (codfw), each a background process with its state, log and pid
// file under one state directory.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/wikimedia/conveyor/internal/lib/config"
)

// Options says where the stack lives and where progress goes.
type Options struct {
	// StateDir holds every component's data, logs and pid files. Default ".local".
	StateDir string
	// CacheDir holds the pinned tool builds. Default $CONVEYOR_CACHE or ~/.cache/conveyor.
	CacheDir string
	// RepoDir is the conveyor source tree (for tools/build.sh). Default: found upwards
	// from the working directory.
	RepoDir string
	// Progress receives human-readable progress lines. Default io.Discard.
	Progress io.Writer
	// Components limits Up to the named components (see Status for the names), in
	// stack order. Empty means all of them but the optional ones.
	Components []string
	// With adds optional components to Up: "debian" builds the Debian base image
	// (DebianImage). Default none.
	With []string
	// Rebuild makes the optional components of With build their result again even
	// when it exists. Default false.
	Rebuild bool
	// Temporal is the Temporal the stack runs and its configuration file points
	// at: "dev" (the CLI's dev server, fast to start) or "postgres" (Temporal's
	// own server on PostgreSQL, as production runs it). Empty means what the
	// state directory last ran, else "dev". With "temporal-postgres" starts the
	// production Temporal beside the dev server without pointing at it.
	Temporal string
}

// ComponentStatus is one line of `conveyor dev status`.
type ComponentStatus struct {
	Name    string
	Address string
	PID     int
	Healthy bool
	Detail  string // why it is not healthy, or extra facts
	Log     string // the component's log file
}

// stack is one state directory's view of the components.
type stack struct {
	dir      string
	cache    string
	repo     string
	progress io.Writer
	tools    map[string]string // tool name -> bin dir
	procs    map[string]bool   // names of the components that are processes
	only     []string          // Options.Components
	with     []string          // Options.With
	rebuild  bool              // Options.Rebuild
	profile  string            // Options.Temporal, resolved
	explicit bool              // Options.Temporal was given
}

func newStack(o Options) (*stack, error) {
	if o.StateDir == "" {
		o.StateDir = config.DefaultStateDir
	}
	dir, err := filepath.Abs(o.StateDir)
	if err != nil {
		return nil, err
	}
	// The real path: the stack's mounts and processes are found by their paths, so
	// a state directory reached through a symlink must name them as they are.
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	if o.CacheDir == "" {
		o.CacheDir = os.Getenv("CONVEYOR_CACHE")
	}
	if o.CacheDir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("finding the tool cache: %w (set CONVEYOR_CACHE)", err)
		}
		o.CacheDir = filepath.Join(home, ".cache", "conveyor")
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	s := &stack{dir: dir, cache: o.CacheDir, repo: o.RepoDir, progress: o.Progress, procs: map[string]bool{},
		only: o.Components, with: o.With, rebuild: o.Rebuild, profile: o.Temporal, explicit: o.Temporal != ""}
	if s.profile == "" {
		s.profile = TemporalProfileDev
		if b, err := os.ReadFile(s.profileFile()); err == nil {
			s.profile = strings.TrimSpace(string(b))
		}
	}
	if s.profile != TemporalProfileDev && s.profile != TemporalProfilePostgres {
		return nil, fmt.Errorf("--temporal %q: want %s or %s", s.profile, TemporalProfileDev, TemporalProfilePostgres)
	}
	var names, optional []string
	for _, c := range s.components() {
		names = append(names, c.name)
		if c.optional {
			optional = append(optional, c.name)
			if c.group != "" && !slices.Contains(optional, c.group) {
				optional = append(optional, c.group)
			}
		}
		if c.process {
			s.procs[c.name] = true
		}
	}
	for _, n := range o.Components {
		if !slices.Contains(names, n) {
			return nil, fmt.Errorf("no component %q; the components are %v", n, names)
		}
	}
	for _, n := range o.With {
		if !slices.Contains(optional, n) {
			return nil, fmt.Errorf("no optional component %q; the optional components are %v", n, optional)
		}
	}
	return s, nil
}

// wanted says whether Up starts c: an optional component only when named in With or
// Components, any other when Components is empty or names it.
func (s *stack) wanted(c component) bool {
	named := slices.Contains(s.only, c.name)
	if c.group == prodGroup && s.profile == TemporalProfilePostgres && len(s.only) == 0 {
		return true
	}
	if c.name == "temporal" && s.profile == TemporalProfilePostgres {
		return named
	}
	if c.optional {
		return slices.Contains(s.with, c.name) || (c.group != "" && slices.Contains(s.with, c.group)) || named
	}
	return len(s.only) == 0 || named
}

// profileFile remembers the Temporal a state directory runs (Options.Temporal).
func (s *stack) profileFile() string { return s.path("temporal.profile") }

// stateName is the directory under the state directory that shows c was asked for.
func (c component) stateName() string {
	if c.group != "" {
		return c.group
	}
	return c.name
}

func (s *stack) isProcess(name string) bool { return s.procs[name] }

func (s *stack) say(format string, args ...any) {
	fmt.Fprintf(s.progress, "dev: "+format+"\n", args...)
}

// ConfigFile is the configuration file Up writes for the stack in stateDir.
func ConfigFile(stateDir string) string { return filepath.Join(stateDir, config.FileName) }

// Up starts every component that is not already running and waits until each is
// ready. A second Up is a no-op. It writes the stack's configuration file into the
// state directory and returns its path. When a component fails, Up says which, why
// and where its log is; the components started before it keep running.
func Up(ctx context.Context, o Options) (string, error) {
	s, err := newStack(o)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return "", fmt.Errorf("creating state directory: %w", err)
	}
	unlock, err := s.lock()
	if err != nil {
		return "", err
	}
	defer unlock()
	if s.explicit {
		if err := os.WriteFile(s.profileFile(), []byte(s.profile+"\n"), 0o644); err != nil {
			return "", err
		}
	}
	var cs []component
	for _, c := range s.components() {
		if s.wanted(c) {
			cs = append(cs, c)
		}
	}
	if err := s.ensureTools(ctx, cs); err != nil {
		return "", err
	}
	for _, c := range cs {
		if err := s.up(ctx, c); err != nil {
			return "", err
		}
	}
	cfg := s.config()
	path := ConfigFile(s.dir)
	if err := config.Write(path, cfg); err != nil {
		return "", err
	}
	return path, nil
}

func (s *stack) up(ctx context.Context, c component) error {
	fail := func(err error) error {
		msg := fmt.Sprintf("dev up: %s failed: %v", c.name, err)
		if c.process {
			msg += fmt.Sprintf("\n  log: %s", s.logFile(c.name))
			if tail := s.logTail(c.name, 15); tail != "" {
				msg += "\n  last lines:\n" + indent(tail, "    ")
			}
		}
		return errors.New(msg)
	}
	start := time.Now()
	if c.process {
		if _, ok := s.running(c.name); ok {
			if err := s.waitReady(ctx, c.name, c.timeout, c.ready); err != nil {
				return fail(err)
			}
			s.say("%-24s already running", c.name)
			return nil
		}
	}
	p, err := c.prepare(ctx, s)
	if err != nil {
		return fail(err)
	}
	if p != nil {
		if _, err := s.start(*p); err != nil {
			return fail(err)
		}
	}
	if c.ready != nil {
		if err := s.waitReady(ctx, c.name, c.timeout, c.ready); err != nil {
			return fail(err)
		}
	}
	s.say("%-24s ready in %.1fs  %s", c.name, time.Since(start).Seconds(), c.address(s))
	return nil
}

// Down stops the components Up started, in reverse order, and only those.
func Down(ctx context.Context, o Options) error {
	s, err := newStack(o)
	if err != nil {
		return err
	}
	if _, err := os.Stat(s.dir); errors.Is(err, os.ErrNotExist) {
		s.say("nothing to stop: %s does not exist", s.dir)
		return nil
	}
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := s.locateTools(ctx); err != nil {
		return err
	}
	var errs []error
	cs := s.components()
	slices.Reverse(cs)
	for _, c := range cs {
		if c.beforeStop != nil {
			if err := c.beforeStop(ctx, s); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
			}
		}
		if c.process {
			stopped, err := s.stopComponent(c)
			if err != nil {
				errs = append(errs, err)
			} else if stopped {
				s.say("%-24s stopped", c.name)
			}
		}
		if c.cleanup != nil {
			if err := c.cleanup(s); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Status reports each component.
func Status(ctx context.Context, o Options) ([]ComponentStatus, error) {
	s, err := newStack(o)
	if err != nil {
		return nil, err
	}
	var out []ComponentStatus
	for _, c := range s.components() {
		if c.ready == nil {
			continue
		}
		// An optional component shows once it was asked for: its state directory exists.
		if _, err := os.Stat(s.path(c.stateName())); c.optional && !s.wanted(c) && err != nil {
			continue
		}
		st := ComponentStatus{Name: c.name, Address: c.address(s)}
		if c.process {
			st.Log = s.logFile(c.name)
			pid, ok := s.running(c.name)
			if !ok {
				st.Detail = "not running"
				out = append(out, st)
				continue
			}
			st.PID = pid
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := c.ready(cctx, s)
		cancel()
		st.Healthy = err == nil
		if err != nil {
			st.Detail = err.Error()
		}
		out = append(out, st)
	}
	return out, nil
}

// LogFile returns the log file of the named component.
func LogFile(o Options, component string) (string, error) {
	s, err := newStack(o)
	if err != nil {
		return "", err
	}
	var names []string
	for _, c := range s.components() {
		if c.process {
			if c.name == component {
				return s.logFile(component), nil
			}
			names = append(names, c.name)
		}
	}
	return "", fmt.Errorf("no component %q; components with logs: %v", component, names)
}

// lock serialises Up and Down on one state directory, across processes (tests in
// several packages may all ask for the stack at once).
func (s *stack) lock() (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.dir, "devstack.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking state directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking state directory: %w", err)
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// Restart stops the named process component and starts it again, waiting until it
// is ready: the fault tests restart PostgreSQL under a running pipeline with it.
func Restart(ctx context.Context, o Options, name string) error {
	s, err := newStack(o)
	if err != nil {
		return err
	}
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := s.locateTools(ctx); err != nil {
		return err
	}
	for _, c := range s.components() {
		if c.name != name {
			continue
		}
		if !c.process {
			return fmt.Errorf("%s is a step, not a process: nothing to restart", name)
		}
		stopped, err := s.stopComponent(c)
		if err != nil {
			return err
		}
		if !stopped {
			return fmt.Errorf("%s was not running: start it with `conveyor dev up`", name)
		}
		s.say("%-24s stopped", name)
		return s.up(ctx, c)
	}
	return fmt.Errorf("no component %q", name)
}
