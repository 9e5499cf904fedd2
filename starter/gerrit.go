package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/internal/client/triggers"
	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/internal/lib/gerrit"
)

func triggersFlag() cli.Flag {
	return &cli.StringFlag{Name: "triggers", EnvVars: []string{"CONVEYOR_TRIGGERS"}, Required: true,
		Usage: "triggers `FILE`: the enabled projects and their settings (docs/triggers.md)"}
}

func gerritCommand() *cli.Command {
	return &cli.Command{
		Name:  "gerrit",
		Usage: "receive Gerrit's events and start pipelines (webhooks, stream-events, hooks)",
		Description: "Gerrit's events start workflows: a new patchset or a \"recheck\" comment runs the\n" +
			"pipeline without publishing and reports Verified +1/-1 on the patchset; merges are\n" +
			"batched per branch into published builds; ref updates follow the triggers file.\n" +
			"Pick one way to receive the events (docs/triggers.md).\n\n" +
			"Examples:\n\n" +
			"   conveyor gerrit serve --triggers /etc/conveyor/triggers.yaml --listen :8080\n" +
			"   conveyor gerrit stream --triggers /etc/conveyor/triggers.yaml\n" +
			"   conveyor gerrit hook --triggers /etc/conveyor/triggers.yaml patchset-created --change I0123… --project p …",
		Subcommands: []*cli.Command{gerritServeCommand(), gerritStreamCommand(), gerritHookCommand()},
	}
}

func gerritStreamCommand() *cli.Command {
	return &cli.Command{
		Name:      "stream",
		Usage:     "read `gerrit stream-events` and start pipelines",
		UsageText: "conveyor gerrit stream --triggers FILE [--command CMD | --stdin] [--max-reconnects N]",
		Description: "Runs stream.command of the triggers file (or --command), typically\n" +
			"`ssh -p 29418 bot@gerrit gerrit stream-events`, and acts on each event; when the\n" +
			"connection drops it runs the command again, with a backoff from stream.minBackoff\n" +
			"to stream.maxBackoff. With --stdin (or no command configured) it reads standard\n" +
			"input once. The account needs Gerrit's Stream Events capability.\n\n" +
			"Examples:\n\n" +
			"   conveyor gerrit stream --triggers /etc/conveyor/triggers.yaml\n" +
			"   ssh -p 29418 bot@gerrit.example.org gerrit stream-events | conveyor gerrit stream --triggers t.yaml --stdin",
		Flags: append([]cli.Flag{
			triggersFlag(),
			&cli.StringFlag{Name: "command", Usage: "`CMD` printing stream-events lines, split on spaces", DefaultText: "stream.command of the triggers file"},
			&cli.BoolFlag{Name: "stdin", Usage: "read the events from standard input instead of running a command"},
			&cli.IntFlag{Name: "max-reconnects", Usage: "give up after `N` reconnections in a row without an event (0: never)"},
		}, temporalclient.Flags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("unexpected arguments %q: stream takes only flags", c.Args().Slice())
			}
			logger := slog.New(slog.NewTextHandler(c.App.ErrWriter, nil))
			_, tc, cl, h, err := triggersHandler(c, logger, dialClient)
			if err != nil {
				return err
			}
			defer cl.Close()
			argv := tc.Stream.Command
			if cmd := c.String("command"); cmd != "" {
				argv = strings.Fields(cmd)
			}
			src := triggers.CommandSource(argv, c.App.ErrWriter)
			if c.Bool("stdin") || len(argv) == 0 {
				src = triggers.ReaderSource(os.Stdin)
			}
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			stats, err := triggers.Stream(ctx, src, h, triggers.WithBackoff(tc.Stream.MinBackoff, tc.Stream.MaxBackoff),
				triggers.WithMaxReconnects(c.Int("max-reconnects")), triggers.WithStreamLogger(logger))
			fmt.Fprintf(c.App.ErrWriter, "%d events acted on, %d ignored, %d failed, %d malformed lines, %d connections\n",
				stats.Acted, stats.Ignored, stats.Failed, stats.Malformed, stats.Connections)
			return err
		},
	}
}

func gerritHookCommand() *cli.Command {
	return &cli.Command{
		Name:      "hook",
		Usage:     "act on one event as a script of Gerrit's hooks plugin",
		UsageText: "conveyor gerrit hook --triggers FILE EVENT --change ID --project P --branch B --commit SHA --patchset N ...",
		Description: "Takes the arguments the hooks plugin gives its scripts, after the event's name,\n" +
			"acts on the event and prints what it did as JSON. Put a script per event in\n" +
			"$site_path/hooks (patchset-created, change-merged, comment-added, ref-updated):\n\n" +
			"   #!/bin/sh\n" +
			"   exec conveyor gerrit hook --triggers /etc/conveyor/triggers.yaml \"$(basename \"$0\")\" \"$@\"\n\n" +
			"The hooks plugin runs hooks asynchronously and may lose them when Gerrit stops;\n" +
			"prefer the webhooks plugin or stream-events where you can.\n\n" +
			"Example:\n\n" +
			"   conveyor gerrit hook --triggers t.yaml patchset-created --change I8473b95934b5732ac55d26311a706c9c2bde9940 \\\n" +
			"     --change-url https://gerrit.example.org/r/c/hello/+/1234 --project hello --branch main \\\n" +
			"     --commit 3f1c2a9d8e7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d --patchset 2",
		Flags: append([]cli.Flag{triggersFlag()}, temporalclient.Flags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return errors.New("give the event's name and its hook arguments, e.g. conveyor gerrit hook --triggers t.yaml patchset-created --change … --patchset 2")
			}
			ev, err := gerrit.ParseHookArgs(c.Args().First(), c.Args().Tail())
			if err != nil {
				return err
			}
			// A hook runs once per event, now: its time tells two rechecks apart.
			ev.CreatedOn = time.Now().Unix()
			_, _, cl, h, err := triggersHandler(c, slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelWarn})), dialClient)
			if err != nil {
				return err
			}
			defer cl.Close()
			res, err := h.Handle(c.Context, ev)
			if err != nil {
				return err
			}
			return json.NewEncoder(c.App.Writer).Encode(res)
		},
	}
}

// connectFunc returns the Temporal client a command uses, from the loaded
// configuration: dialClient, which needs Temporal now, or (gerrit serve) a lazy
// client for a service that waits for it.
type connectFunc func(ctx context.Context, cfg config.Config, logger *slog.Logger) (client.Client, error)

func dialClient(ctx context.Context, cfg config.Config, logger *slog.Logger) (client.Client, error) {
	return temporalclient.Dial(ctx, cfg.Temporal, logger)
}

// triggersSetup loads the configuration and the triggers file and dials Temporal.
func triggersSetup(c *cli.Context) (config.Config, *triggers.Config, client.Client, error) {
	return triggersConnect(c, dialClient)
}

// triggersConnect loads the configuration and the triggers file and gets a
// Temporal client from connect.
func triggersConnect(c *cli.Context, connect connectFunc) (config.Config, *triggers.Config, client.Client, error) {
	cfg, err := loadConfig(c)
	if err != nil {
		return cfg, nil, nil, err
	}
	tc, err := triggers.LoadFile(c.String("triggers"), cfg.Gerrit.URL)
	if err != nil {
		return cfg, nil, nil, fmt.Errorf("--triggers: %w", err)
	}
	cl, err := connect(c.Context, cfg, slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return cfg, nil, nil, err
	}
	return cfg, tc, cl, nil
}

// triggersHandler is triggersConnect plus the handler that turns events into
// workflows, ignoring the events of conveyor's own Gerrit account. The caller
// closes the client.
func triggersHandler(c *cli.Context, logger *slog.Logger, connect connectFunc) (config.Config, *triggers.Config, client.Client, *triggers.Handler, error) {
	cfg, tc, cl, err := triggersConnect(c, connect)
	if err != nil {
		return cfg, nil, nil, nil, err
	}
	h, err := triggers.NewHandler(cl, tc, triggers.WithIgnoredAccounts(cfg.Gerrit.Username), triggers.WithLogger(logger))
	if err != nil {
		cl.Close()
		return cfg, nil, nil, nil, err
	}
	return cfg, tc, cl, h, nil
}

// printSync syncs the schedules and the base image check and says what changed.
func printSync(ctx context.Context, c *cli.Context, cl client.Client, tc *triggers.Config) error {
	rep, err := triggers.Sync(ctx, cl, tc, "")
	if err != nil {
		return err
	}
	for _, id := range rep.Created {
		fmt.Fprintf(c.App.ErrWriter, "created schedule %s (%s UTC)\n", id, tc.NightlyCron)
	}
	for _, id := range rep.Updated {
		fmt.Fprintf(c.App.ErrWriter, "updated schedule %s (%s UTC)\n", id, tc.NightlyCron)
	}
	for _, id := range rep.Deleted {
		fmt.Fprintf(c.App.ErrWriter, "deleted schedule %s: no longer in the triggers file\n", id)
	}
	fmt.Fprintf(c.App.ErrWriter, "base image check %s: every %s\n", rep.BaseCheck, tc.BaseImagesEvery)
	return nil
}
