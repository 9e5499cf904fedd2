package main

// -tracing: what tracing costs a real pipeline. The same pipeline of
// examples/hello runs through `conveyor pipeline run` on a worker whose
// configuration exports every trace to the stack's Jaeger (the stack's
// conveyor.yaml sets tracing.endpoint) and on one whose configuration has no
// tracing block, alternating which goes first. Metrics cannot be turned off in
// conveyor-worker (they are recorded in memory whether or not /metrics is
// served), so both sides serve and are scraped on /metrics: the difference is
// the tracing alone. bench/pipelines -overhead measures metrics and tracing
// together on stubbed pipelines.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/wikimedia/conveyor/bench/internal/scrape"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// tracingTarget: traced ÷ untraced pipeline time at most this.
const tracingTarget = 1.02

func runTracing(runs int, stateDir string) error {
	stackConfig := filepath.Join(stateDir, config.FileName)
	b, err := os.ReadFile(stackConfig)
	if err != nil {
		return fmt.Errorf("%v (run `make up` first)", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("%s: %w", stackConfig, err)
	}
	if _, ok := doc["tracing"]; !ok {
		return fmt.Errorf("%s has no tracing block: the stack's configuration should send traces to its Jaeger (conveyor dev up)", stackConfig)
	}
	delete(doc, "tracing")
	untraced, err := yaml.Marshal(doc)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "bench-tracing-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	untracedConfig := filepath.Join(dir, config.FileName)
	if err := os.WriteFile(untracedConfig, untraced, 0o600); err != nil {
		return err
	}
	repoRoot, err := os.Getwd()
	if err != nil {
		return err
	}
	var traced, plain []time.Duration
	for i := range runs {
		sides := []struct {
			name, config string
			out          *[]time.Duration
		}{{"traced", stackConfig, &traced}, {"untraced", untracedConfig, &plain}}
		if i%2 == 1 {
			slices.Reverse(sides)
		}
		for _, s := range sides {
			d, err := pipelineOnWorker(s.config, repoRoot, stateDir)
			if err != nil {
				return fmt.Errorf("run %d, %s: %w", i+1, s.name, err)
			}
			*s.out = append(*s.out, d)
		}
		fmt.Printf("run %d: untraced %6.2fs  traced %6.2fs  ratio %.3f\n", i+1, plain[i].Seconds(), traced[i].Seconds(), traced[i].Seconds()/plain[i].Seconds())
	}
	p, t := median(plain), median(traced)
	fmt.Printf("median: untraced %.2fs  traced %.2fs  traced/untraced %.3f (target <= %.2f)\n", p.Seconds(), t.Seconds(), t.Seconds()/p.Seconds(), tracingTarget)
	return nil
}

// pipelineOnWorker starts a worker with the configuration file config, serving
// /metrics scraped every 2 s, runs one pipeline through it, and stops it.
func pipelineOnWorker(configFile, repoRoot, stateDir string) (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	addr := ln.Addr().String()
	ln.Close()
	worker := exec.Command("bin/conveyor-worker", "--config", configFile, "--pools", "build,deploy", "--log-level", "warn", "--health-listen", addr)
	worker.Stderr = os.Stderr
	if err := worker.Start(); err != nil {
		return 0, fmt.Errorf("starting bin/conveyor-worker (make bin): %v", err)
	}
	defer func() { _ = worker.Process.Signal(os.Interrupt); _ = worker.Wait() }()
	defer scrape.Every("http://"+addr+"/metrics", 2*time.Second, nil)()
	return conveyorWith(configFile, repoRoot)
}
