package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wikimedia/conveyor/workflows/changes"

	"github.com/urfave/cli/v2"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/internal/client/launch"
	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/workflows"
)

func pipelineCommand() *cli.Command {
	return &cli.Command{
		Name:  "pipeline",
		Usage: "run the change pipeline: test, build, isolated deploy + e2e, publish",
		Description: "A pipeline takes one ref of one repository through five steps: build the\n" +
			"'test' variant of .pipeline/blubber.yaml, run its tests, build the 'production'\n" +
			"variant, deploy it in a namespace of its own and smoke-test it from outside the\n" +
			"pod, then (with --publish) tag the tested digest into the public repository.\n\n" +
			"Examples:\n\n" +
			"   conveyor pipeline run --repo examples/hello --ref HEAD --follow\n" +
			"   conveyor pipeline run --repo https://gerrit.example/r/x --ref refs/changes/34/1234/2\n" +
			"   conveyor pipeline status pipeline/hello/1234/2\n" +
			"   conveyor pipeline list",
		Subcommands: []*cli.Command{pipelineRunCommand(), pipelineStatusCommand(), pipelineListCommand()},
	}
}

func pipelineRunCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "start a pipeline (or join the one already running for the same change)",
		UsageText: "conveyor pipeline run --repo URL|DIR --ref REF [--project NAME] [--publish] [--follow]",
		Description: "Starts the pipeline for one ref and prints its workflow id and where to watch it\n" +
			"in the Temporal UI. Workers for the build and deploy pools must be running.\n" +
			"The workflow id comes from the project and the change, so starting the same change\n" +
			"again joins the run already going.\n\n" +
			"Examples:\n\n" +
			"   conveyor pipeline run --repo ./myservice --ref main --follow\n" +
			"   conveyor pipeline run --repo ./myservice --ref refs/changes/34/1234/2 --project mediawiki/services/myservice\n" +
			"   conveyor pipeline run --repo ./myservice --ref main --publish   # a merged change: publish the image",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "repo", Required: true, Usage: "git `URL` or local directory of the repository"},
			&cli.StringFlag{Name: "ref", Value: "HEAD", Usage: "`REF` to build: a branch, commit or Gerrit change ref (refs/changes/34/1234/2)"},
			&cli.StringFlag{Name: "project", Usage: "project `NAME` (Gerrit's), used in the workflow id", DefaultText: "the repository's base name"},
			&cli.BoolFlag{Name: "publish", Usage: "publish the tested image (a merged change); without it the pipeline verifies only"},
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "show live step progress until the pipeline ends"},
		}, temporalclient.Flags()...),
		Action: func(c *cli.Context) error {
			repo := c.String("repo")
			if !strings.Contains(repo, "://") && !strings.Contains(repo, "@") {
				abs, err := filepath.Abs(repo)
				if err != nil {
					return err
				}
				if _, err := os.Stat(abs); err != nil {
					return fmt.Errorf("--repo: %v (give a git URL or an existing directory)", err)
				}
				repo = abs
			}
			project := c.String("project")
			if project == "" {
				project = strings.TrimSuffix(filepath.Base(strings.TrimRight(repo, "/")), ".git")
			}
			in := changes.PipelineInput{Project: project, Repo: repo, Ref: c.String("ref"), Publish: c.Bool("publish")}
			cfg, cl, err := dialFromCLI(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			run, err := launch.Pipeline(c.Context, cl, in)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.ErrWriter, "pipeline %s (run %s)\n", run.GetID(), run.GetRunID())
			if u := cfg.Temporal.WorkflowURL(run.GetID(), run.GetRunID()); u != "" {
				fmt.Fprintf(c.App.ErrWriter, "  watch it in the Temporal UI: %s\n", u)
			}
			if !c.Bool("follow") {
				return nil
			}
			return follow(c.Context, c.App.Writer, cl, run)
		},
	}
}

// follow prints each step as it changes state, then the result.
func follow(ctx context.Context, w io.Writer, cl client.Client, run client.WorkflowRun) error {
	done := make(chan error, 1)
	var final changes.PipelineStatus
	go func() { done <- run.Get(ctx, &final) }()
	seen := map[string]changes.StepState{}
	show := func(st changes.PipelineStatus) {
		for _, s := range st.Steps {
			if seen[s.Name] == s.State {
				continue
			}
			seen[s.Name] = s.State
			line := fmt.Sprintf("%-17s %-9s", s.Name, s.State)
			if !s.Finished.IsZero() && !s.Started.IsZero() {
				line += fmt.Sprintf(" %6.1fs", s.Finished.Sub(s.Started).Seconds())
			}
			if s.Digest != "" {
				line += " " + s.Digest
			}
			fmt.Fprintln(w, line)
			if s.State == changes.StepFailed && s.Detail != "" {
				fmt.Fprintln(w, indentLines(s.Detail, "    "))
			}
		}
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			show(final)
			if err != nil {
				return fmt.Errorf("pipeline failed: %s", final.Error)
			}
			fmt.Fprintf(w, "candidate %s\n", final.Candidate)
			for _, p := range final.Published {
				fmt.Fprintf(w, "published %s\n", p)
			}
			return nil
		case <-tick.C:
			if st, err := launch.PipelineStatus(ctx, cl, run.GetID(), run.GetRunID()); err == nil {
				show(st)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func pipelineStatusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show a pipeline's steps, digests and namespace",
		UsageText: "conveyor pipeline status WORKFLOW-ID [--run RUN-ID]",
		Description: "Asks the pipeline for its status query: each step's state, timings, image\n" +
			"digests, the isolated namespace and what was published.\n\n" +
			"Example:\n\n   conveyor pipeline status pipeline/hello/1234/2",
		Flags: append([]cli.Flag{&cli.StringFlag{Name: "run", Usage: "`RUN-ID` (default: the latest run)"}}, temporalclient.Flags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("give one workflow id, e.g. conveyor pipeline status pipeline/hello/1234/2 (see conveyor pipeline list)")
			}
			_, cl, err := dialFromCLI(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			st, err := launch.PipelineStatus(c.Context, cl, c.Args().First(), c.String("run"))
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
			fmt.Fprintf(w, "project\t%s\nrepo\t%s\nref\t%s\ncommit\t%s\nnamespace\t%s\ncandidate\t%s\n",
				st.Project, st.Repo, st.Ref, st.Commit, st.Namespace, st.Candidate)
			for _, p := range st.Published {
				fmt.Fprintf(w, "published\t%s\n", p)
			}
			fmt.Fprintln(w, "\nSTEP\tSTATE\tSECONDS\tDIGEST\tDETAIL")
			for _, s := range st.Steps {
				secs := ""
				if !s.Finished.IsZero() && !s.Started.IsZero() {
					secs = fmt.Sprintf("%.1f", s.Finished.Sub(s.Started).Seconds())
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.State, secs, s.Digest, firstLine(s.Detail))
			}
			return w.Flush()
		},
	}
}

func pipelineListCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list recent pipelines",
		Description: "Lists pipelines, newest first, with their status and the step they are in\n" +
			"(the ConveyorStep search attribute).\n\n" +
			"Examples:\n\n   conveyor pipeline list\n   conveyor pipeline list --project hello --limit 5",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "project", Usage: "only this project's pipelines"},
			&cli.IntFlag{Name: "limit", Value: 20, Usage: "show at most `N`"},
		}, temporalclient.Flags()...),
		Action: func(c *cli.Context) error {
			_, cl, err := dialFromCLI(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			q := "WorkflowType = 'Pipeline'"
			if p := c.String("project"); p != "" {
				q += fmt.Sprintf(" AND %s = '%s'", workflows.SearchAttributeProject, strings.ReplaceAll(p, "'", ""))
			}
			w := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "WORKFLOW ID\tSTATUS\tSTARTED\tSTEP")
			var token []byte
			n := 0
			for n < c.Int("limit") {
				resp, err := cl.ListWorkflow(c.Context, &workflowservice.ListWorkflowExecutionsRequest{Query: q, NextPageToken: token, PageSize: int32(c.Int("limit"))})
				if err != nil {
					return fmt.Errorf("listing pipelines: %w", err)
				}
				for _, e := range resp.Executions {
					if n >= c.Int("limit") {
						break
					}
					step := ""
					if f := e.GetSearchAttributes().GetIndexedFields()[workflows.SearchAttributeStep]; f != nil {
						step = strings.Trim(string(f.GetData()), `"`)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", e.GetExecution().GetWorkflowId(), e.GetStatus(),
						e.GetStartTime().AsTime().UTC().Format(time.DateTime), step)
					n++
				}
				if token = resp.NextPageToken; len(token) == 0 {
					break
				}
			}
			return w.Flush()
		},
	}
}

// dialFromCLI loads the configuration with the command's flags and dials Temporal.
func dialFromCLI(c *cli.Context) (config.Config, client.Client, error) {
	cfg, err := loadConfig(c)
	if err != nil {
		return cfg, nil, err
	}
	logger := slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cl, err := temporalclient.Dial(c.Context, cfg.Temporal, logger)
	return cfg, cl, err
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

func indentLines(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}
