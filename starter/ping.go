package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/internal/client/launch"
	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/workflows"
)

func pingCommand() *cli.Command {
	return &cli.Command{
		Name:  "ping",
		Usage: "check that Temporal and a worker for each pool answer",
		Description: "Starts the Ping workflow, which runs an activity on each pool's task queue in\n" +
			"turn, and prints who answered. It needs `conveyor-worker` running for the\n" +
			"pools asked for; the workflow runs on the first pool's task queue.\n\n" +
			"Example:\n\n   conveyor ping\n   conveyor ping --pools build --address 127.0.0.1:7233",
		Flags: append([]cli.Flag{
			&cli.StringSliceFlag{Name: "pools", Value: cli.NewStringSlice(workflows.Pools...),
				Usage: "comma-separated `POOL`s to ping, in order: " + strings.Join(workflows.Pools, ", ")},
			&cli.StringFlag{Name: "message", Value: "ping", Usage: "`TEXT` every pool echoes back"},
			&cli.DurationFlag{Name: "timeout", Value: time.Minute, Usage: "give up after `DURATION`"},
			&cli.StringFlag{Name: "workflow-id", Usage: "workflow `ID`", DefaultText: "conveyor-ping-<UTC time>"},
		}, temporalclient.Flags()...),
		Action: ping,
	}
}

func ping(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: ping takes only flags (see `conveyor ping --help`)", c.Args().Slice())
	}
	pools, err := workflows.ParsePools(c.StringSlice("pools"))
	if err != nil {
		return fmt.Errorf("--pools: %w", err)
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	timeout := c.Duration("timeout")
	ctx, cancel := context.WithTimeout(c.Context, timeout)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cl, err := temporalclient.Dial(ctx, cfg.Temporal, logger)
	if err != nil {
		return err
	}
	defer cl.Close()

	id := c.String("workflow-id")
	if id == "" {
		id = launch.PingID(time.Now())
	}
	// The workflow times out with the command: a ping nobody serves does not stay open.
	run, err := launch.Ping(ctx, cl, id, timeout, workflows.PingInput{Pools: pools, Message: c.String("message")})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, "Started workflow %s on %s\n", id, workflows.TaskQueue(pools[0]))
	if u := cfg.Temporal.WorkflowURL(run.GetID(), run.GetRunID()); u != "" {
		fmt.Fprintf(c.App.ErrWriter, "  %s\n", u)
	}

	var res workflows.PingResult
	if err := run.Get(ctx, &res); err != nil {
		hint := fmt.Sprintf("is `conveyor-worker --pools %s` running against %s (namespace %s)?",
			strings.Join(pools, ","), cfg.Temporal.Address, cfg.Temporal.Namespace)
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("no answer within %s: %s", timeout, hint)
		}
		// The workflow's own errors say what went wrong; the SDK's wrapping does not.
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && (appErr.Type() == contract.ErrPoolUnavailable || appErr.Type() == contract.ErrInvalidPool) {
			return fmt.Errorf("ping failed: %s\n%s", appErr.Message(), hint)
		}
		return fmt.Errorf("ping failed: %w\n%s", err, hint)
	}
	w := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "POOL\tTASK QUEUE\tWORKER\tHOST\tMESSAGE")
	for _, a := range res.Answers {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", a.Pool, a.TaskQueue, a.Identity, a.Host, a.Message)
	}
	return w.Flush()
}
