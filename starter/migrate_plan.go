package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wikimedia/conveyor/workflows/migrations"

	"github.com/urfave/cli/v2"
	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/internal/client/launch"
	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/workflows"
)

func migratePlanCommand() *cli.Command {
	return &cli.Command{
		Name:      "plan",
		Usage:     "check a migration plan and show its stages, tasks and planned dates",
		UsageText: "conveyor migrate plan [--plan FILE] [--from NAME --to NAME] [--start DATE] [--print-defaults] [--json]",
		Description: "Reads a plan file (YAML or JSON; - for standard input), or the default plan of\n" +
			"five stages over 27 months, checks it and prints each stage with its planned\n" +
			"dates, entry checks and tasks. Nothing is started and Temporal is not asked.\n" +
			"A plan file has from, to, start (YYYY-MM-DD, default: when it starts),\n" +
			"reminderEvery (a duration, default 168h), maxEventsPerRun and stages; each stage\n" +
			"has name, months, entryChecks and tasks (name, automated, and for a task run\n" +
			"as a child workflow: workflow, one of " + strings.Join(migrations.TaskWorkflows, ", ") + ", and its input).\n" +
			"Without stages the default stages are used.\n\n" +
			"Examples:\n\n" +
			"   conveyor migrate plan --print-defaults --from codfw1dev --to codfw2dev > plan.yaml\n" +
			"   conveyor migrate plan --plan plan.yaml\n" +
			"   conveyor migrate plan --from codfw1dev --to codfw2dev --start 2027-01-04",
		Flags: append(planFlags(),
			&cli.BoolFlag{Name: "print-defaults", Usage: "print the plan (the default one unless --plan) as a plan file to edit"},
			&cli.BoolFlag{Name: "json", Usage: "print the plan as workflows.MigrationPlan JSON, the workflow's input"},
		),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			p, err := planFromFlags(c, c.Bool("print-defaults"))
			if err != nil {
				return err
			}
			switch {
			case c.Bool("print-defaults"):
				return encodePlan(c.App.Writer, p)
			case c.Bool("json"):
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(p)
			}
			return renderPlan(c.App.Writer, p, time.Now())
		},
	}
}

// planFlags are the flags that make a plan: a file, and the pair and start that
// override it.
func planFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "plan", Usage: "plan `FILE` (YAML or JSON, - for standard input)", DefaultText: "the default five stages"},
		&cli.StringFlag{Name: "start", Usage: "baseline start `DATE` (YYYY-MM-DD), overriding the plan's", DefaultText: "the plan's, else when the workflow starts"},
	}, pairFlags()...)
}

// planFromFlags builds the plan from --plan, --from, --to and --start and
// validates it. With loose, a plan without a pair is accepted (for printing a
// template).
func planFromFlags(c *cli.Context, loose bool) (migrations.MigrationPlan, error) {
	p := migrations.MigrationPlan{Stages: migrations.DefaultMigrationStages()}
	if path := c.String("plan"); path != "" {
		var err error
		if p, err = readPlanFile(path, c.App.Reader); err != nil {
			return p, err
		}
	}
	for _, f := range []struct {
		flag string
		dst  *string
	}{{"from", &p.From}, {"to", &p.To}} {
		v := strings.TrimSpace(c.String(f.flag))
		if v == "" {
			continue
		}
		if *f.dst != "" && *f.dst != v {
			return p, fmt.Errorf("--%s %q contradicts the plan file's %s: %q; give one or the other", f.flag, v, f.flag, *f.dst)
		}
		*f.dst = v
	}
	if s := c.String("start"); s != "" {
		t, err := parseDate(s)
		if err != nil {
			return p, fmt.Errorf("--start: %w", err)
		}
		p.Start = t
	}
	if loose {
		return p, nil
	}
	if err := p.Validate(); err != nil {
		if p.From == "" || p.To == "" {
			return p, fmt.Errorf("the plan: %w (give --from and --to, or from: and to: in the plan file)", err)
		}
		return p, fmt.Errorf("the plan: %w", err)
	}
	return p, nil
}

// renderPlan prints the baseline as the workflow will lay it out: each stage
// starts when the one before is planned to end; a plan without a start is
// counted from now.
func renderPlan(w io.Writer, p migrations.MigrationPlan, now time.Time) error {
	start, note := p.Start, ""
	if start.IsZero() {
		start, note = now.UTC(), " (no start given: counted from today)"
	}
	every := p.ReminderEvery
	if every == 0 {
		every = migrations.DefaultMigrationReminderEvery
	}
	total := 0
	for _, s := range p.Stages {
		total += s.Months
	}
	fmt.Fprintf(w, "migration %s → %s, workflow %s\n", p.From, p.To, migrations.MigrationID(p.From, p.To))
	fmt.Fprintf(w, "%d stages, %d months, %s to %s%s; reminders every %s\n\n",
		len(p.Stages), total, day(start), day(start.AddDate(0, total, 0)), note, humanDuration(every))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tSTAGE\tMONTHS\tPLANNED START\tPLANNED END\tENTRY CHECKS")
	at := start
	for i, s := range p.Stages {
		end := at.AddDate(0, s.Months, 0)
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\n", i+1, s.Name, s.Months, day(at), day(end), orDash(strings.Join(s.EntryChecks, ", ")))
		at = end
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for i, s := range p.Stages {
		fmt.Fprintf(w, "\n%d %s (workflow %s)\n", i+1, s.Name, migrations.MigrationStageID(p.From, p.To, i, s.Name))
		for _, t := range s.Tasks {
			kind := "human: conveyor migrate task-done --task " + shellQuote(t.Name) + " --by WHO"
			if t.Automated {
				kind = "automated"
			}
			if t.Workflow != "" {
				kind = "automated, workflow " + t.Workflow
			}
			fmt.Fprintf(w, "   [ ] %-28s %s\n", t.Name, kind)
		}
		fmt.Fprintf(w, "   gate: conveyor migrate approve --stage %s --approver WHO\n", shellQuote(s.Name))
	}
	return nil
}

func migrateStartCommand() *cli.Command {
	return &cli.Command{
		Name:      "start",
		Usage:     "start the migration of a pair of deployments (or show what would start)",
		UsageText: "conveyor migrate start [--plan FILE] [--from NAME --to NAME] [--start DATE] [--dry-run]",
		Description: "Starts the CloudMigration workflow migration/<from>-<to> on the migrate pool's\n" +
			"task queue with the plan (see `conveyor migrate plan`). A pair is migrated once:\n" +
			"starting it again is refused while it runs or after it finished. Workers of the\n" +
			"migrate pool (conveyor-worker --pools migrate) must be running.\n\n" +
			"--dry-run starts nothing: it prints the workflow that would start, its stages,\n" +
			"tasks and dates, and what the first stage would do first.\n\n" +
			"With --project, starts instead the automatic migration of those projects\n" +
			"(ProjectMigration, migrate-project/<from>-<to>/<project>), outside stage 4's\n" +
			"driver: every server is stopped, snapshotted, copied, recreated, verified, and\n" +
			"its source deleted after the grace period. With --dry-run it asks both clouds\n" +
			"(read only, with the configuration's openstack section) and prints, server by\n" +
			"server, what would be created, stopped, copied and deleted.\n\n" +
			"Examples:\n\n" +
			"   conveyor migrate start --from codfw1dev --to codfw2dev --dry-run\n" +
			"   conveyor migrate start --plan plan.yaml\n" +
			"   conveyor migrate start --from eqiad1 --to eqiad2 --project tools --dry-run\n" +
			"   conveyor migrate start --from eqiad1 --to eqiad2 --project tools --max-parallel 4",
		Flags: append(append(planFlags(),
			&cli.BoolFlag{Name: "dry-run", Usage: "print what would be started, start nothing"},
			&cli.StringSliceFlag{Name: "project", Usage: "migrate this project's servers automatically (`NAME`); repeatable"},
			&cli.StringSliceFlag{Name: "server", Usage: "with --project, only this server (`NAME` or id); repeatable", DefaultText: "every server"},
			&cli.IntFlag{Name: "max-parallel", Usage: "with --project, `N` servers of a project at once", DefaultText: fmt.Sprint(migrations.DefaultMaxParallelVMs)},
			&cli.DurationFlag{Name: "grace-period", Usage: "with --project, keep each source this long (`DURATION`) after its copy is verified", DefaultText: migrations.DefaultGracePeriod.String()},
		), temporalclient.Flags()...),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			if projects := c.StringSlice("project"); len(projects) > 0 {
				if c.String("plan") != "" {
					return errors.New("--plan and --project: a plan starts the whole migration, --project one project's; give one")
				}
				from, to, err := pairOf(c)
				if err != nil {
					return err
				}
				return startProjects(c, from, to, projects)
			}
			p, err := planFromFlags(c, false)
			if err != nil {
				return err
			}
			id := migrations.MigrationID(p.From, p.To)
			if c.Bool("dry-run") {
				return renderStartDryRun(c.App.Writer, p, time.Now())
			}
			cfg, cl, err := dialFromCLI(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			run, err := launch.CloudMigration(c.Context, cl, p)
			if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
				return fmt.Errorf("the migration %s was already started: see `conveyor migrate status --from %s --to %s`", id, p.From, p.To)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "started %s (run %s)\n", id, run.GetRunID())
			if u := cfg.Temporal.WorkflowURL(run.GetID(), run.GetRunID()); u != "" {
				fmt.Fprintf(c.App.Writer, "  watch it in the Temporal UI: %s\n", u)
			}
			fmt.Fprintf(c.App.Writer, "  follow it: conveyor migrate status --from %s --to %s --watch\n", p.From, p.To)
			return nil
		},
	}
}

// renderStartDryRun says what `migrate start` would do.
func renderStartDryRun(w io.Writer, p migrations.MigrationPlan, now time.Time) error {
	fmt.Fprintf(w, "dry run: nothing is started.\nwould start workflow %s (CloudMigration) on task queue %s\n\n",
		migrations.MigrationID(p.From, p.To), workflows.TaskQueueMigrate)
	if err := renderPlan(w, p, now); err != nil {
		return err
	}
	first := p.Stages[0]
	fmt.Fprintf(w, "\nfirst, stage %s would start as workflow %s and\n", first.Name, migrations.MigrationStageID(p.From, p.To, 0, first.Name))
	if len(first.EntryChecks) > 0 {
		fmt.Fprintf(w, "   run its entry checks against %s and %s: %s\n", p.From, p.To, strings.Join(first.EntryChecks, ", "))
	}
	var auto, human []string
	for _, t := range first.Tasks {
		if t.Automated {
			auto = append(auto, t.Name)
		} else {
			human = append(human, t.Name)
		}
	}
	if len(auto) > 0 {
		fmt.Fprintf(w, "   run its automated tasks in order: %s\n", strings.Join(auto, ", "))
	}
	if len(human) > 0 {
		fmt.Fprintf(w, "   wait for task-done on: %s\n", strings.Join(human, ", "))
	}
	fmt.Fprintf(w, "   then wait for approve --stage %s\n", shellQuote(first.Name))
	return nil
}

func day(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.DateOnly)
}

// humanDuration prints whole days as days ("7d"), anything else as Go does.
func humanDuration(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// shellQuote quotes s for a shell when it needs it.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t'\"$`\\!*?;&|<>()[]{}#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
