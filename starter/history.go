package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/internal/client/replay"
	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/workflows/all"
)

func historyCommand() *cli.Command {
	return &cli.Command{
		Name:  "history",
		Usage: "export workflow histories, and replay them against this build's workflow code",
		Description: "Before deploying a new worker build, replay what runs today against it: a\n" +
			"history that fails to replay is a workflow the new build would break\n" +
			"(docs/operating.md, \"Replay before deploying\").\n\n" +
			"Examples:\n\n" +
			"   conveyor history export promote/hello/3f2a9c0d1e4b -o promotion.json\n" +
			"   conveyor history replay --query \"ExecutionStatus = 'Running'\"",
		Subcommands: []*cli.Command{historyExportCommand(), historyReplayCommand()},
	}
}

func historyExportCommand() *cli.Command {
	return &cli.Command{
		Name:      "export",
		Usage:     "write a workflow run's history as JSON (the form of `temporal workflow show --output json`)",
		ArgsUsage: "WORKFLOW-ID",
		Description: "Writes the history as the server keeps it: payloads stay encrypted when\n" +
			"temporal.payloadKeyFile encrypts them, so the file can be shared without the\n" +
			"secrets in it; `conveyor history replay FILE` reads it back with the keys.\n\n" +
			"Examples:\n\n" +
			"   conveyor history export pipeline/mediawiki/services/hello/1234/2 -o pipeline.json\n" +
			"   conveyor history export promote/hello/3f2a9c0d1e4b --run 0190c3…",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "run", Usage: "the run `ID`", DefaultText: "the latest run"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to `FILE`", DefaultText: "standard output"},
		}, temporalclient.Flags()...),
		Action: func(c *cli.Context) error {
			c, args, err := interspersed(c)
			if err != nil {
				return err
			}
			if len(args) != 1 {
				return fmt.Errorf("export takes one workflow id, got %d arguments (see `conveyor history export --help`)", len(args))
			}
			_, cl, err := dialFromCLI(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			h, exec, err := replay.Fetch(c.Context, cl, args[0], c.String("run"))
			if err != nil {
				return err
			}
			b, err := replay.Marshal(h)
			if err != nil {
				return err
			}
			out := c.String("output")
			if out == "" {
				_, err = c.App.Writer.Write(b)
				return err
			}
			if err := os.WriteFile(out, b, 0o600); err != nil {
				return fmt.Errorf("--output: %w", err)
			}
			fmt.Fprintf(c.App.ErrWriter, "wrote %d events of %s (run %s) to %s\n", len(h.GetEvents()), exec.ID, exec.RunID, out)
			return nil
		},
	}
}

func historyReplayCommand() *cli.Command {
	return &cli.Command{
		Name:      "replay",
		Usage:     "replay histories against the workflows compiled into this binary",
		ArgsUsage: "[WORKFLOW-ID|FILE ...]",
		Description: "Replays each history with the data converter the workers use (temporal.payloadKeyFile)\n" +
			"and the run's own workflow id, and prints one line per history: OK, FAIL with the\n" +
			"first event that disagrees and why, or SKIP for a workflow type this binary does\n" +
			"not have. The exit status is 1 when any history fails, 2 on bad usage.\n\n" +
			"An argument naming an existing file is a history file (`conveyor history export`,\n" +
			"`temporal workflow show --output json`); any other is a workflow id, read from the\n" +
			"server. --recent, --type, --since and --query pull histories from the server too.\n\n" +
			"Examples:\n\n" +
			"   conveyor history replay pipeline.json workflows/testdata/histories/*.json\n" +
			"   conveyor history replay promote/hello/3f2a9c0d1e4b\n" +
			"   conveyor history replay --recent 50 --type Pipeline\n" +
			"   conveyor history replay --since 24h          # everything started in the last day",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "run", Usage: "with one workflow id: the run `ID`", DefaultText: "the latest run"},
			&cli.IntFlag{Name: "recent", Usage: "replay the `N` most recent runs (open and closed) that --type, --since and --query select"},
			&cli.StringFlag{Name: "type", Usage: "only runs of workflow `TYPE` (Pipeline, Promotion, VMMigration, …)"},
			&cli.StringFlag{Name: "since", Usage: "only runs started since `WHEN`: a duration ago (24h) or an RFC 3339 time"},
			&cli.StringFlag{Name: "query", Usage: "only runs a visibility `QUERY` selects (ExecutionStatus = 'Running')"},
			&cli.StringFlag{Name: "workflow-id", Usage: "for history files: the workflow `ID` they ran as (workflows that read their own id)"},
		}, temporalclient.Flags()...),
		Action: historyReplay,
	}
}

// historyReplay is `conveyor history replay`.
func historyReplay(c *cli.Context) error {
	c, args, err := interspersed(c)
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	query, err := replayQuery(c)
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	listing := c.IsSet("recent") || query != ""
	if len(args) == 0 && !listing {
		return cli.Exit("nothing to replay: name workflow ids or history files, or select runs with --recent, --type, --since or --query (see `conveyor history replay --help`)", 2)
	}
	if c.IsSet("run") && len(args) != 1 {
		return cli.Exit("--run goes with exactly one workflow id", 2)
	}
	if c.Int("recent") < 0 {
		return cli.Exit(fmt.Sprintf("--recent: want a positive number, got %d", c.Int("recent")), 2)
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	dc, fc, err := temporalclient.ConvertersFor(cfg.Temporal)
	if err != nil {
		return err
	}
	r := replay.New(all.Workflows(), dc, fc)

	// Dialled once, when a history is read from the server, with the
	// configuration already loaded.
	var cl client.Client
	dial := func() (client.Client, error) {
		if cl == nil {
			logger := slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelWarn}))
			cl, err = temporalclient.Dial(c.Context, cfg.Temporal, logger)
		}
		return cl, err
	}
	defer func() {
		if cl != nil {
			cl.Close()
		}
	}()

	var ok, failed, skipped int
	report := func(res replay.Result) {
		switch {
		case res.Skipped != "":
			skipped++
		case res.Err != nil:
			failed++
		default:
			ok++
		}
		fmt.Fprintln(c.App.Writer, res)
	}
	// replayRun reports the replay of a run read from the server; an error is
	// one to reach the server at all.
	replayRun := func(id, run, notFound string) error {
		cl, err := dial()
		if err != nil {
			return err
		}
		h, exec, err := replay.Fetch(c.Context, cl, id, run)
		if err != nil {
			name := id
			if run != "" {
				name += " (run " + run + ")"
			}
			report(replay.Result{Name: name, Err: fmt.Errorf("%w%s", err, notFound)})
			return nil
		}
		report(r.Replay(exec.ID+" (run "+exec.RunID+")", h, exec))
		return nil
	}
	for _, arg := range args {
		if st, err := os.Stat(arg); err == nil && !st.IsDir() {
			h, err := replay.ReadFile(arg)
			if err != nil {
				report(replay.Result{Name: arg, Err: err})
				continue
			}
			report(r.Replay(arg, h, workflow.Execution{ID: c.String("workflow-id")}))
			continue
		}
		if err := replayRun(arg, c.String("run"), " (not a file either)"); err != nil {
			return err
		}
	}
	if listing {
		cl, err := dial()
		if err != nil {
			return err
		}
		execs, err := replay.Executions(c.Context, cl, cfg.Temporal.Namespace, query, c.Int("recent"))
		if err != nil {
			return err
		}
		if len(execs) == 0 {
			fmt.Fprintf(c.App.ErrWriter, "no runs in namespace %s match %q\n", cfg.Temporal.Namespace, query)
		}
		for _, ex := range execs {
			if err := replayRun(ex.ID, ex.RunID, ""); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(c.App.Writer, "%d replayed: %d OK, %d failed, %d skipped\n", ok+failed+skipped, ok, failed, skipped)
	if failed > 0 {
		return cli.Exit("", 1)
	}
	return nil
}

// replayQuery is the visibility query --type, --since and --query select.
func replayQuery(c *cli.Context) (string, error) {
	var parts []string
	if t := c.String("type"); t != "" {
		if strings.ContainsAny(t, `'"`) {
			return "", fmt.Errorf("--type: %q is not a workflow type", t)
		}
		parts = append(parts, fmt.Sprintf("WorkflowType = '%s'", t))
	}
	if s := c.String("since"); s != "" {
		since, err := parseSince(s, time.Now())
		if err != nil {
			return "", fmt.Errorf("--since: %w", err)
		}
		parts = append(parts, fmt.Sprintf("StartTime >= '%s'", since.UTC().Format(time.RFC3339)))
	}
	if q := c.String("query"); q != "" {
		parts = append(parts, "("+q+")")
	}
	return strings.Join(parts, " AND "), nil
}

// parseSince reads a duration before now (24h) or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%q: want a positive duration", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, errors.New(`want a duration (24h, 90m) or an RFC 3339 time (2026-12-01T00:00:00Z), got "` + s + `"`)
	}
	return t, nil
}
