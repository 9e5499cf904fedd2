// Command conveyor-worker runs conveyor's Temporal workers: one per selected pool,
// each serving that pool's task queue with the workflows and activities that
// workers/pools assigns to it.
package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/workflows"
)

// version is stamped at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	app := newApp()
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "conveyor-worker: %v\n", err)
		os.Exit(1)
	}
}

// newApp returns the command line of conveyor-worker.
func newApp() *cli.App {
	return &cli.App{
		Name:      "conveyor-worker",
		Version:   version,
		Usage:     "run conveyor's Temporal workers",
		UsageText: "conveyor-worker [--config FILE] [--pools POOL,...] [--health-listen ADDR] [--log-format text|json] [Temporal connection flags]",
		Description: "Starts one worker per selected pool (task queues " + queues() + ")\n" +
			"and runs until SIGINT or SIGTERM, then drains: /readyz answers 503, every pool\n" +
			"stops polling at once and running activities get --shutdown-timeout to finish;\n" +
			"after a clean drain the process exits 0.\n\n" +
			"With --health-listen it serves GET /healthz (200 while the process runs and is not\n" +
			"shutting down) and GET /readyz (200 while Temporal answers, re-checked every 3s, and\n" +
			"every pool's pollers have reached it; 503 with what is not ready otherwise), and\n" +
			"GET /metrics in Prometheus' format: the Temporal SDK's metrics (temporal_*) and\n" +
			"conveyor's own (conveyor_*; docs/operating.md, \"Metrics\").\n\n" +
			"Started before Temporal, it stays up: /readyz answers 503 saying Temporal is\n" +
			"unreachable at its address and why, and it tries again with a backoff from 500ms\n" +
			"to 10s, logging each failure; once Temporal answers it checks the namespace (one\n" +
			"that does not exist stops it), starts the pools and becomes ready. A signal while\n" +
			"it waits exits 0 at once.\n\n" +
			"Examples, against the local stack started by `conveyor dev up`:\n\n" +
			"   conveyor-worker --config .local/conveyor.yaml --pools build,deploy\n" +
			"   conveyor-worker --config /etc/conveyor/conveyor.yaml --health-listen :8081 --shutdown-timeout 5m\n" +
			"   curl -i http://127.0.0.1:8081/readyz\n" +
			"   conveyor-worker --deployment conveyor --build-id 2026.12.03-1   # then: conveyor workers rollout --deployment conveyor --build-id 2026.12.03-1",
		HideHelpCommand: true,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "config", EnvVars: []string{"CONVEYOR_CONFIG"},
				Usage: "configuration `FILE`", DefaultText: config.Path("")},
			&cli.StringSliceFlag{Name: "pools", Value: cli.NewStringSlice(workflows.Pools...),
				Usage: "comma-separated `POOL`s to serve: " + strings.Join(workflows.Pools, ", ")},
			&cli.DurationFlag{Name: "shutdown-timeout", Value: 10 * time.Second,
				Usage: "on SIGINT/SIGTERM, how long (`DURATION`) running activities get to finish before they are cancelled"},
			&cli.StringFlag{Name: "health-listen", EnvVars: []string{"CONVEYOR_HEALTH_LISTEN"},
				Usage: "serve /healthz and /readyz on `ADDR` (host:port, e.g. :8081); empty: no health endpoints"},
			&cli.StringFlag{Name: "deployment", EnvVars: []string{"CONVEYOR_WORKER_DEPLOYMENT"}, Category: "Worker versioning",
				Usage: "serve as a version of Temporal worker deployment `NAME` (with --build-id): new workflows go to the deployment's current version, and each finishes on the build it started on, but the months-long ones (docs/operating.md, \"Rolling out a worker build\"); empty: unversioned"},
			&cli.StringFlag{Name: "build-id", EnvVars: []string{"CONVEYOR_WORKER_BUILD_ID"}, Category: "Worker versioning",
				Usage: "this build's `ID` within --deployment", DefaultText: "the version conveyor-worker was built as (--version)"},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "log `FORMAT`: text or json"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "minimum log `LEVEL`: debug, info, warn or error"},
		}, temporalclient.Flags()...),
		ExitErrHandler: func(*cli.Context, error) {}, // main reports errors.
		Action:         run,
	}
}

func queues() string {
	var q []string
	for _, p := range workflows.Pools {
		q = append(q, workflows.TaskQueue(p))
	}
	return strings.Join(q, ", ")
}
