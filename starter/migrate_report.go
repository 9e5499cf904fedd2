package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/wikimedia/conveyor/internal/temporalclient"
	"github.com/wikimedia/conveyor/workflows"
)

func migrateReportCommand() *cli.Command {
	return &cli.Command{
		Name:      "report",
		Usage:     "report a migration: baseline against actuals, who did what, projects",
		UsageText: "conveyor migrate report --from NAME --to NAME",
		Description: "Prints what happened so far: for each stage the planned and actual dates and how\n" +
			"late it is or was, every task with who did it and when, who approved each gate,\n" +
			"and the per-project summary of stage 4. It reads the migration's plan query.\n\n" +
			"Example:\n\n" +
			"   conveyor migrate report --from codfw1dev --to codfw2dev",
		Flags: append(pairFlags(), temporalclient.Flags()...),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			from, to, err := pairOf(c)
			if err != nil {
				return err
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
			renderReport(c.App.Writer, st, time.Now())
			return nil
		},
	}
}

// renderReport prints the baseline against the actuals, then who did what.
func renderReport(w io.Writer, st workflows.MigrationStatus, now time.Time) {
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
			if t.State == workflows.TaskDone {
				fmt.Fprintf(w, "   %s  %-10s %-28s %s\n", day(t.Done), s.Name, t.Name, t.By)
			}
		}
		if s.ApprovedBy != "" {
			fmt.Fprintf(w, "   %s  %-10s %-28s %s\n", day(s.Finished), s.Name, "(gate approved)", s.ApprovedBy)
		}
	}
	renderProjects(w, st)
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
