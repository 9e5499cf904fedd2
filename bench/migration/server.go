package main

import (
	"context"
	"os"
	"strings"

	"github.com/wikimedia/conveyor/internal/dev/devstack"
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
