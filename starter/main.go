// Command conveyor is conveyor's command line: it runs the local stack and starts
// workflows. Each command lives in its own file and delegates to a library.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/wikimedia/conveyor/internal/lib/config"
)

func main() {
	if err := newApp().Run(os.Args); err != nil {
		code := 1
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			code = ec.ExitCode()
		}
		if msg := err.Error(); msg != "" {
			fmt.Fprintf(os.Stderr, "conveyor: %s\n", msg)
		}
		os.Exit(code)
	}
}

// commands lists conveyor's commands, in the order --help shows them. Add new verbs
// here, each built by a function in its own file.
func commands() []*cli.Command {
	return []*cli.Command{
		blubberCommand(),
		devCommand(),
		gcCommand(),
		gerritCommand(),
		historyCommand(),
		migrateCommand(),
		pipelineCommand(),
		pingCommand(),
		promoteCommand(),
		psCommand(),
		workersCommand(),
		temporalCommand(),
		triggerCommand(),
		versionCommand(),
	}
}

// newApp returns conveyor's command line.
func newApp() *cli.App {
	return &cli.App{
		Name:  "conveyor",
		Usage: "build, deploy and migrate with Temporal workflows",
		Description: "conveyor runs a local stack (Temporal, BuildKit, a registry, Kubernetes) and the\n" +
			"workflows that build and deploy on it. Start here:\n\n" +
			"   conveyor dev up                    # start the local stack\n" +
			"   conveyor-worker &                  # run the workers\n" +
			"   conveyor ping                      # check that every pool answers\n" +
			"   conveyor pipeline run --repo DIR --ref main --follow   # the change pipeline",
		Version:                strings.TrimPrefix(versionLine(), "conveyor "),
		EnableBashCompletion:   true,
		UseShortOptionHandling: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", EnvVars: []string{"CONVEYOR_CONFIG"},
				Usage: "configuration `FILE`", DefaultText: "conveyor.yaml in the state directory"},
			&cli.StringFlag{Name: "state-dir", EnvVars: []string{"CONVEYOR_STATE_DIR"},
				Usage: "`DIR` holding the local stack's state, logs and configuration", DefaultText: config.DefaultStateDir},
		},
		Commands:       commands(),
		ExitErrHandler: func(*cli.Context, error) {}, // main reports errors and exit codes.
	}
}
