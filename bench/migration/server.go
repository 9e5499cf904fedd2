package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/wikimedia/conveyor/bench/internal/procstat"
	"github.com/wikimedia/conveyor/internal/dev/devstack"
	"github.com/wikimedia/conveyor/internal/dev/devstack/proc"
)

// startDevServer starts the benchmark's own Temporal dev server: the stack's, in
// memory and on free ports, so that a run neither fills the stack's database with
// a million events nor slows the workflows of whoever else uses the stack.
// BENCH_DYNAMIC_CONFIG adds dynamic configuration, BENCH_SERVER_GOGC sets its GOGC.
func startDevServer(ctx context.Context) (*devstack.DevServer, error) {
	opts := []devstack.DevServerOption{devstack.WithDynamicConfig(strings.Fields(os.Getenv("BENCH_DYNAMIC_CONFIG"))...)}
	if g := os.Getenv("BENCH_SERVER_GOGC"); g != "" {
		opts = append(opts, devstack.WithServerEnv("GOGC="+g))
	}
	return devstack.StartDevServer(ctx, opts...)
}

// prodServices are the stack's processes of the production Temporal.
var prodServices = []string{"temporal-frontend", "temporal-history", "temporal-matching", "temporal-worker", "postgresql"}

// prodServerCPU is the CPU used so far by the production Temporal's processes in
// stateDir (their pid files), by process; PostgreSQL's includes its backends (the
// postmaster's children, which live as long as their connections; one that has
// exited is not counted).
func prodServerCPU(stateDir string) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	var errs []error
	for _, name := range prodServices {
		b, err := os.ReadFile(proc.Dir(stateDir).PidFile(name))
		if err != nil {
			return nil, fmt.Errorf("%s: %w (is the stack up with --with temporal-postgres?)", name, err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("pid file of %s: %w", name, err)
		}
		pids := []int{pid}
		if name == "postgresql" {
			pids = append(pids, children(pid)...)
		}
		for _, p := range pids {
			d, err := procstat.CPUTime(p)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			out[name] += d
		}
	}
	return out, errors.Join(errs...)
}

// total is the sum of a prodServerCPU reading.
func total(by map[string]time.Duration) time.Duration {
	var t time.Duration
	for _, d := range by {
		t += d
	}
	return t
}

// children are the pids whose parent is pid.
func children(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(b[i+2:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			if c, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}
