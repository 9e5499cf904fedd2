package main

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/internal/client/triggers"
)

func triggerCommand() *cli.Command {
	return &cli.Command{
		Name:  "trigger",
		Usage: "manage the nightly schedules, merge batchers and the base image check",
		Description: "The triggers that run builds without an event: a Temporal Schedule per nightly\n" +
			"target (nightly/<project>/<branch>), a merge batcher per branch with merges\n" +
			"(batch/<project>/<branch>), and the base image check (basecheck).\n\n" +
			"Examples:\n\n" +
			"   conveyor trigger sync --triggers /etc/conveyor/triggers.yaml\n" +
			"   conveyor trigger list\n" +
			"   conveyor trigger pause batch/mediawiki/services/hello/main --note 'registry maintenance'\n" +
			"   conveyor trigger resume batch/mediawiki/services/hello/main\n" +
			"   conveyor trigger run nightly/mediawiki/services/hello/main",
		Subcommands: []*cli.Command{triggerSyncCommand(), triggerListCommand(),
			triggerPauseCommand("pause", true), triggerPauseCommand("resume", false), triggerRunCommand()},
	}
}

func triggerSyncCommand() *cli.Command {
	return &cli.Command{
		Name:      "sync",
		Usage:     "create or update the schedules and the base image check from the triggers file",
		UsageText: "conveyor trigger sync --triggers FILE",
		Description: "Creates a nightly schedule for each project branch under nightly (at nightly.cron,\n" +
			"04:00 UTC by default), updates existing ones in place (a paused one stays paused),\n" +
			"deletes the nightly schedules the file no longer lists, and starts the base image\n" +
			"check or gives it the new targets. Running it twice changes nothing more.\n\n" +
			"Example:\n\n   conveyor trigger sync --triggers /etc/conveyor/triggers.yaml",
		Flags: append([]cli.Flag{triggersFlag()}, temporalclient.Flags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("unexpected arguments %q: sync takes only flags", c.Args().Slice())
			}
			_, tc, cl, err := triggersSetup(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			return printSync(c.Context, c, cl, tc)
		},
	}
}

func triggerListCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list the schedules, the running batchers and the base image check",
		Description: "Shows each trigger with its kind, whether it is paused, what it does or did, and\n" +
			"when a schedule runs next. It reads the workflows' memo: no worker is needed.\n\n" +
			"Example:\n\n   conveyor trigger list",
		Flags: temporalclient.Flags(),
		Action: func(c *cli.Context) error {
			cfg, cl, err := dialFromCLI(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			dc, err := temporalclient.DataConverter(cfg.Temporal)
			if err != nil {
				return err
			}
			all, err := triggers.List(c.Context, cl, triggers.WithMemoConverter(dc))
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tKIND\tSTATE\tNEXT\tSUMMARY")
			for _, t := range all {
				state, next := "active", "-"
				if t.Paused {
					state = "paused"
				}
				if !t.Next.IsZero() {
					next = t.Next.UTC().Format(time.DateTime)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Kind, state, next, t.Summary)
			}
			return w.Flush()
		},
	}
}

func triggerPauseCommand(verb string, pause bool) *cli.Command {
	usage := "stop a trigger from starting builds (events are still collected)"
	if !pause {
		usage = "let a paused trigger start builds again"
	}
	return &cli.Command{
		Name:      verb,
		Usage:     usage,
		UsageText: "conveyor trigger " + verb + " ID [--note TEXT]",
		Description: "ID is a schedule (nightly/<project>/<branch>), a merge batcher\n" +
			"(batch/<project>/<branch>) or basecheck, as `conveyor trigger list` shows them.\n" +
			"A paused batcher keeps collecting merges and builds them once resumed.\n\n" +
			"Example:\n\n   conveyor trigger " + verb + " nightly/mediawiki/services/hello/main --note 'registry maintenance'",
		Flags: append([]cli.Flag{&cli.StringFlag{Name: "note", Usage: "`TEXT` saying why, shown on schedules"}}, temporalclient.Flags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("give one trigger id (see conveyor trigger list)")
			}
			id := c.Args().First()
			if err := triggers.CheckID(id); err != nil {
				return err
			}
			_, cl, err := dialFromCLI(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			if pause {
				err = triggers.Pause(c.Context, cl, id, c.String("note"))
			} else {
				err = triggers.Resume(c.Context, cl, id, c.String("note"))
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "%s: %sd\n", id, verb)
			return nil
		},
	}
}

func triggerRunCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "make a schedule start its build, or the base image check check, now",
		UsageText: "conveyor trigger run ID",
		Description: "Triggers a nightly schedule at once (its build starts even when it is paused), or\n" +
			"asks the base image check to check now.\n\n" +
			"Examples:\n\n   conveyor trigger run nightly/mediawiki/services/hello/main\n   conveyor trigger run basecheck",
		Flags: temporalclient.Flags(),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("give one trigger id (see conveyor trigger list)")
			}
			if err := triggers.CheckID(c.Args().First()); err != nil {
				return err
			}
			_, cl, err := dialFromCLI(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			if err := triggers.Run(c.Context, cl, c.Args().First()); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "%s: triggered\n", c.Args().First())
			return nil
		},
	}
}
