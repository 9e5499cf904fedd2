package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wikimedia/conveyor/workflows/migrations"

	"github.com/urfave/cli/v2"
	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/openstack"
	"github.com/wikimedia/conveyor/internal/client/launch"
)

func migrateReportCommand() *cli.Command {
	return &cli.Command{
		Name:      "report",
		Usage:     "report a migration: baseline against actuals, projects, test battery runs, final cleanup",
		UsageText: "conveyor migrate report --from NAME --to NAME [--battery | --final] [--json]",
		Description: "Without flags, prints what happened so far: for each stage the planned and\n" +
			"actual dates and how late it is or was, every task with who did it and when, who\n" +
			"approved each gate, and every project of stage 4 with its mode, state and who\n" +
			"finished it (from the migration's plan query).\n" +
			"--battery compares the recorded runs of the stage-3 test battery, oldest first:\n" +
			"each test's outcome and time per run and the image copy's checksums (it reads\n" +
			"the report file in the state directory, on the worker's host).\n" +
			"--final prints stage 5's cleanup report: what was left, kept, deleted, and what\n" +
			"remains.\n\n" +
			"Examples:\n\n" +
			"   conveyor migrate report --from codfw1dev --to codfw2dev\n" +
			"   conveyor migrate report --from codfw1dev --to codfw2dev --battery\n" +
			"   conveyor migrate report --from codfw1dev --to codfw2dev --final --json",
		Flags: pairCommandFlags(
			&cli.BoolFlag{Name: "battery", Usage: "compare the recorded test battery runs"},
			&cli.BoolFlag{Name: "final", Usage: "the cleanup's final report"},
			&cli.BoolFlag{Name: "json", Usage: "print the report's data as JSON"},
		),
		Action: pairAction(func(c *cli.Context, from, to string) error {
			if c.Bool("battery") && c.Bool("final") {
				return errors.New("--battery and --final are two reports: ask for one at a time")
			}
			if c.Bool("battery") {
				cfg, err := loadConfig(c)
				if err != nil {
					return err
				}
				path := filepath.Join(cfg.StateDir, openstack.BatteryReportFile(from, to))
				runs, err := openstack.ReadBatteryRuns(path)
				if err != nil {
					return fmt.Errorf("reading the battery's runs: %w", err)
				}
				if len(runs) == 0 {
					return fmt.Errorf("no battery run is recorded in %s: the test battery records there when stage 3 runs it (on the worker's host; give its --state-dir)", path)
				}
				if c.Bool("json") {
					return writeJSON(c.App.Writer, runs)
				}
				renderBattery(c.App.Writer, path, runs)
				return nil
			}
			_, cl, err := dialFromCLI(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			st, err := queryPlan(c.Context, cl, from, to)
			if err != nil {
				return err
			}
			if c.Bool("final") {
				rep, err := queryCleanup(c.Context, cl, st)
				if err != nil {
					return err
				}
				if c.Bool("json") {
					return writeJSON(c.App.Writer, rep)
				}
				renderCleanup(c.App.Writer, rep)
				return nil
			}
			if c.Bool("json") {
				return writeJSON(c.App.Writer, st)
			}
			renderReport(c.App.Writer, st, time.Now())
			return nil
		}),
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// taskWorkflow finds the child workflow of type typ (e.g. WorkflowCleanup) that
// runs a task of the migration, newest stage first.
func taskWorkflow(ctx context.Context, cl client.Client, st migrations.MigrationStatus, typ, hint string) (string, error) {
	for i := len(st.Stages) - 1; i >= 0; i-- {
		for _, t := range st.Stages[i].Tasks {
			if t.Workflow == "" {
				continue
			}
			d, err := cl.DescribeWorkflowExecution(ctx, t.Workflow, "")
			if err == nil && d.GetWorkflowExecutionInfo().GetType().GetName() == typ {
				return t.Workflow, nil
			}
		}
	}
	return "", fmt.Errorf("the migration of %s to %s has not started a %s workflow: %s", st.From, st.To, typ, hint)
}

// queryCleanup asks stage 5's cleanup workflow for its report.
func queryCleanup(ctx context.Context, cl client.Client, st migrations.MigrationStatus) (migrations.CleanupReport, error) {
	var rep migrations.CleanupReport
	id, err := taskWorkflow(ctx, cl, st, migrations.WorkflowCleanup, "the final report comes with stage 5's cleanup task")
	if err != nil {
		return rep, err
	}
	rep, err = launch.Query[migrations.CleanupReport](ctx, cl, id, "", migrations.QueryCleanup)
	if err != nil {
		return rep, explainNotFound(err, id, "the cleanup is not running")
	}
	return rep, nil
}

// renderBattery compares the recorded battery runs, oldest first.
func renderBattery(w io.Writer, path string, runs []contract.BatteryRun) {
	fmt.Fprintf(w, "test battery of %s → %s: %d runs recorded in %s\n\n", runs[0].From, runs[0].To, len(runs), path)
	var tests []string
	for _, r := range runs {
		for _, t := range r.Results {
			if !slices.Contains(tests, t.Test) {
				tests = append(tests, t.Test)
			}
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "STARTED\tRESULT\t%s\n", strings.ToUpper(strings.Join(tests, "\t")))
	for _, r := range runs {
		result := "passed"
		if !r.Passed() {
			result = "FAILED"
		}
		cells := []string{r.Started.UTC().Format(time.DateTime), result}
		for _, name := range tests {
			cell := "-"
			for _, t := range r.Results {
				if t.Test != name {
					continue
				}
				switch {
				case t.Skipped:
					cell = "skipped"
				case t.OK:
					cell = fmt.Sprintf("ok %.1fs", t.Seconds)
				default:
					cell = fmt.Sprintf("FAIL %.1fs", t.Seconds)
				}
			}
			cells = append(cells, cell)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	_ = tw.Flush()
	last := runs[len(runs)-1]
	fmt.Fprintf(w, "\nlast run %s:\n", last.ID)
	for _, t := range last.Results {
		line := fmt.Sprintf("   %-10s %s", t.Test, firstLine(t.Detail))
		if t.SourceChecksum != "" {
			same := "equal"
			if t.SourceChecksum != t.CopyChecksum {
				same = "DIFFERENT"
			}
			line += fmt.Sprintf(" (checksums %s: %.16s… / %.16s…)", same, t.SourceChecksum, t.CopyChecksum)
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	if len(runs) > 1 {
		prev := runs[len(runs)-2]
		var changes []string
		for _, t := range last.Results {
			for _, p := range prev.Results {
				if p.Test == t.Test && (p.OK || p.Skipped) != (t.OK || t.Skipped) {
					changes = append(changes, fmt.Sprintf("%s %s", t.Test, map[bool]string{true: "now passes", false: "now fails"}[t.OK || t.Skipped]))
				}
			}
		}
		fmt.Fprintf(w, "since the run before: %s\n", orDash(strings.Join(changes, ", ")))
	}
}

// renderCleanup prints the cleanup's final report.
func renderCleanup(w io.Writer, rep migrations.CleanupReport) {
	fmt.Fprintf(w, "cleanup of %s: %s\n%s\n", rep.From, rep.State, rep.Summary)
	if rep.ApprovedBy != "" {
		fmt.Fprintf(w, "approved by %s on %s", rep.ApprovedBy, day(rep.Approved))
		if rep.Reason != "" {
			fmt.Fprintf(w, ": %s", rep.Reason)
		}
		fmt.Fprintln(w)
	}
	for _, part := range []struct {
		title string
		list  []contract.Leftover
	}{{"listed", rep.Listed}, {"kept", rep.Kept}, {"deleted", rep.Deleted}, {"already gone", rep.Gone}, {"remaining", rep.Remaining}} {
		fmt.Fprintf(w, "\n%s (%d):\n", part.title, len(part.list))
		for _, l := range part.list {
			fmt.Fprintf(w, "   %s\n", l)
		}
	}
}

// renderReport prints the baseline against the actuals, then who did what.
func renderReport(w io.Writer, st migrations.MigrationStatus, now time.Time) {
	fmt.Fprintf(w, "migration %s → %s: baseline %s to %s", st.From, st.To, day(st.Start), day(st.PlannedEnd))
	if !st.Finished.IsZero() {
		fmt.Fprintf(w, ", finished %s (%s)", day(st.Finished), slip(st.Finished, st.PlannedEnd))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSTAGE\tPLANNED END\tACTUAL END\tAGAINST PLAN\tAPPROVED BY")
	for _, s := range st.Stages {
		actual, against := "-", "-"
		switch {
		case !s.Finished.IsZero():
			actual, against = day(s.Finished), slip(s.Finished, s.PlannedEnd)
		case !s.Started.IsZero():
			actual, against = "running", slip(now, s.PlannedEnd)
			if now.Before(s.PlannedEnd) {
				against = "on time so far"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, day(s.PlannedEnd), actual, against, orDash(s.ApprovedBy))
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\nwho did what:")
	for _, s := range st.Stages {
		for _, t := range s.Tasks {
			if t.State == migrations.TaskDone {
				fmt.Fprintf(w, "   %s  %-10s %-28s %s\n", day(t.Done), s.Name, t.Name, t.By)
			}
		}
		if s.ApprovedBy != "" {
			fmt.Fprintf(w, "   %s  %-10s %-28s %s\n", day(s.Finished), s.Name, "(gate approved)", s.ApprovedBy)
		}
	}
	for _, s := range st.Stages {
		for _, t := range s.Tasks {
			if len(t.Projects) == 0 {
				continue
			}
			fmt.Fprintf(w, "\nprojects of %s / %s:\n", s.Name, t.Name)
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "PROJECT\tMODE\tSTATE\tSTARTED\tFINISHED\tBY\tDETAIL")
			for _, p := range t.Projects {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Mode, p.State, day(p.Started), day(p.Finished), orDash(p.By), firstLine(p.Detail))
			}
			_ = tw.Flush()
		}
	}
}

// slip says how far t is from the planned date, in days.
func slip(t, planned time.Time) string {
	d := int(t.Sub(planned).Hours() / 24)
	switch {
	case d > 0:
		return fmt.Sprintf("%d days late", d)
	case d < 0:
		return fmt.Sprintf("%d days early", -d)
	}
	return "on the day"
}
