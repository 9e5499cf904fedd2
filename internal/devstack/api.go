// Package devstack runs conveyor's local stack: the Temporal dev server, buildkitd, the
// registry, and a single-node Kubernetes cluster, each a background process with its
// state, log and pid file under one state directory.
package devstack

import (
	"context"
	"errors"
	"io"
)

// Options says where the stack lives and where progress goes.
type Options struct {
	// StateDir holds every component's data, logs and pid files. Default ".local".
	StateDir string
	// CacheDir holds the pinned tool builds. Default ~/.cache/conveyor.
	CacheDir string
	// RepoDir is the conveyor source tree (for tools/build.sh). Default: found upwards
	// from the working directory.
	RepoDir string
	// Progress receives human-readable progress lines. Default io.Discard.
	Progress io.Writer
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

// Up starts every component that is not already running and waits until each is
// ready. A second Up is a no-op. It writes the stack's configuration file into the
// state directory and returns its path.
func Up(ctx context.Context, o Options) (string, error) { return "", errors.New("not implemented") }

// Down stops the components Up started, in reverse order, and only those.
func Down(ctx context.Context, o Options) error { return errors.New("not implemented") }

// Status reports each component.
func Status(ctx context.Context, o Options) ([]ComponentStatus, error) {
	return nil, errors.New("not implemented")
}

// LogFile returns the log file of the named component.
func LogFile(o Options, component string) (string, error) { return "", errors.New("not implemented") }
