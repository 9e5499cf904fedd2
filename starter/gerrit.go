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

	"github.com/wikimedia/conveyor/internal/client/health"
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

func gerritServeCommand() *cli.Command {
	return &cli.Command{
		Name:      "serve",
		Usage:     "serve the endpoint of Gerrit's webhooks plugin",
		UsageText: "conveyor gerrit serve --triggers FILE [--listen ADDR] [--no-sync] [--shutdown-timeout DURATION]",
		Description: "Listens for the webhooks plugin's POSTs on /gerrit/events/<secret> (or, with\n" +
			"webhook.auth: basic, /gerrit/events with basic auth), the secret coming from\n" +
			"webhook.secretFile or CONVEYOR_WEBHOOK_SECRET. At start it syncs the nightly\n" +
			"schedules and the base image check with the triggers file (like `conveyor\n" +
			"trigger sync`).\n\n" +
			"The same address serves GET /healthz (200 while the process runs and is not\n" +
			"shutting down) and GET /readyz (200 while Temporal answers, re-checked every 3s;\n" +
			"503 with the reason otherwise). On SIGINT or SIGTERM /readyz answers 503, the\n" +
			"listener closes and the requests in flight get --shutdown-timeout to finish.\n\n" +
			"Example:\n\n" +
			"   CONVEYOR_WEBHOOK_SECRET=$(cat /etc/conveyor/webhook-secret) \\\n" +
			"     conveyor gerrit serve --triggers /etc/conveyor/triggers.yaml --listen :8080\n" +
			"   curl -i http://127.0.0.1:8080/readyz\n\n" +
			"and in the project's webhooks.config on refs/meta/config:\n\n" +
			"   [remote \"conveyor\"]\n" +
			"     url = https://conveyor.example.org/gerrit/events/<secret>\n" +
			"     event = patchset-created\n     event = change-merged\n     event = comment-added\n     event = ref-updated",
		Flags: append([]cli.Flag{
			triggersFlag(),
			&cli.StringFlag{Name: "listen", Value: ":8080", Usage: "`ADDR`ess to listen on, host:port"},
			&cli.BoolFlag{Name: "no-sync", Usage: "do not sync the schedules and the base image check at start"},
			&cli.DurationFlag{Name: "shutdown-timeout", Value: 10 * time.Second,
				Usage: "on SIGINT/SIGTERM, how long (`DURATION`) the requests in flight get to finish"},
		}, temporalclient.Flags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("unexpected arguments %q: serve takes only flags", c.Args().Slice())
			}
			logger := slog.New(slog.NewTextHandler(c.App.ErrWriter, nil))
			tc, cl, h, err := triggersHandler(c, logger)
			if err != nil {
				return err
			}
			defer cl.Close()
			probe, err := health.New(cl)
			if err != nil {
				return err
			}
			opts := []triggers.ServerOption{triggers.WithMaxBodyBytes(tc.Webhook.MaxBodyBytes), triggers.WithServerLogger(logger), triggers.WithProbe(probe)}
			if tc.Webhook.Auth == triggers.AuthBasic {
				opts = append(opts, triggers.WithBasicAuth(tc.Webhook.Username))
			}
			srv, err := triggers.NewServer(h, tc.Webhook.Secret, opts...)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if !c.Bool("no-sync") {
				if err := printSync(ctx, c, cl, tc); err != nil {
					return err
				}
			}
			pctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go probe.Run(pctx)
			hs, err := health.Listen(c.String("listen"), srv.Handler(), logger)
			if err != nil {
				return fmt.Errorf("--listen: %w", err)
			}
			path := triggers.EventsPath + "/<secret>"
			if tc.Webhook.Auth == triggers.AuthBasic {
				path = triggers.EventsPath + " (basic auth, user " + tc.Webhook.Username + ")"
			}
			fmt.Fprintf(c.App.ErrWriter, "listening on http://%s%s, health on %s and %s\n", hs.Addr(), path, health.LivePath, health.ReadyPath)
			select {
			case err := <-hs.Done():
				return err
			case <-ctx.Done():
			}
			// Readiness goes false first; then the listener closes and the requests
			// in flight get --shutdown-timeout to finish.
			probe.Drain()
			fmt.Fprintf(c.App.ErrWriter, "draining: /readyz answers 503, finishing the requests in flight (up to %s)\n", c.Duration("shutdown-timeout"))
			return hs.Shutdown(c.Duration("shutdown-timeout"))
		},
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
			tc, cl, h, err := triggersHandler(c, logger)
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
			_, cl, h, err := triggersHandler(c, slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelWarn})))
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

// triggersSetup loads the configuration and the triggers file and dials Temporal.
func triggersSetup(c *cli.Context) (config.Config, *triggers.Config, client.Client, error) {
	cfg, err := loadConfig(c)
	if err != nil {
		return cfg, nil, nil, err
	}
	tc, err := triggers.LoadFile(c.String("triggers"), cfg.Gerrit.URL)
	if err != nil {
		return cfg, nil, nil, fmt.Errorf("--triggers: %w", err)
	}
	cl, err := temporalclient.Dial(c.Context, cfg.Temporal, slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return cfg, nil, nil, err
	}
	return cfg, tc, cl, nil
}

// triggersHandler is triggersSetup plus the handler that turns events into
// workflows, ignoring the events of conveyor's own Gerrit account. The caller
// closes the client.
func triggersHandler(c *cli.Context, logger *slog.Logger) (*triggers.Config, client.Client, *triggers.Handler, error) {
	cfg, tc, cl, err := triggersSetup(c)
	if err != nil {
		return nil, nil, nil, err
	}
	h, err := triggers.NewHandler(cl, tc, triggers.WithIgnoredAccounts(cfg.Gerrit.Username), triggers.WithLogger(logger))
	if err != nil {
		cl.Close()
		return nil, nil, nil, err
	}
	return tc, cl, h, nil
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
