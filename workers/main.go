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
		UsageText: "conveyor-worker [--config FILE] [--pools POOL,...] [--log-format text|json] [Temporal connection flags]",
		Description: "Starts one worker per selected pool (task queues " + queues() + ")\n" +
			"and runs until SIGINT or SIGTERM, then stops them gracefully.\n\n" +
			"Example, against the local stack started by `conveyor dev up`:\n\n" +
			"   conveyor-worker --config .local/conveyor.yaml --pools build,deploy",
		HideHelpCommand: true,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "config", EnvVars: []string{"CONVEYOR_CONFIG"},
				Usage: "configuration `FILE`", DefaultText: config.Path("")},
			&cli.StringSliceFlag{Name: "pools", Value: cli.NewStringSlice(workflows.Pools...),
				Usage: "comma-separated `POOL`s to serve: " + strings.Join(workflows.Pools, ", ")},
			&cli.DurationFlag{Name: "shutdown-timeout", Value: 10 * time.Second,
				Usage: "on SIGINT/SIGTERM, how long (`DURATION`) running activities get to finish before they are cancelled"},
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
