package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wikimedia/conveyor/workflows/migrations"

	"github.com/urfave/cli/v2"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

func migrateStatusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show a migration's stages, tasks, dates and overdue items, and its projects' progress",
		UsageText: "conveyor migrate status --from NAME --to NAME [--all] [--project NAME] [--watch] [--json]",
		Description: "Asks the migration for its plan query: each stage's state, planned and actual\n" +
			"dates, whether it is overdue, who approved it, and the checklist of the current\n" +
			"stage (--all: of every stage). With --project, shows that project's migration\n" +
			"VM by VM. --watch redraws the view with a progress bar until the migration (or\n" +
			"the project) finishes or you press Ctrl-C. Needs a migrate worker to answer.\n\n" +
			"Examples:\n\n" +
			"   conveyor migrate status --from codfw1dev --to codfw2dev\n" +
			"   conveyor migrate status --from codfw1dev --to codfw2dev --all --watch\n" +
			"   conveyor migrate status --from codfw1dev --to codfw2dev --project tools",
		Flags: pairCommandFlags(
			&cli.BoolFlag{Name: "all", Usage: "list the tasks of every stage, not only the current one"},
			&cli.StringFlag{Name: "project", Usage: "show the migration of project `NAME`, VM by VM"},
			&cli.BoolFlag{Name: "watch", Aliases: []string{"w"}, Usage: "redraw until it finishes"},
			&cli.DurationFlag{Name: "interval", Value: 2 * time.Second, Usage: "with --watch, redraw every `DURATION`"},
			&cli.BoolFlag{Name: "json", Usage: "print the query's answer as JSON"},
		),
		Action: pairAction(func(c *cli.Context, from, to string) error {
			if c.Bool("watch") && c.Duration("interval") <= 0 {
				return fmt.Errorf("--interval %s: give a positive duration, e.g. 2s", c.Duration("interval"))
			}
			_, cl, err := dialFromCLI(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			view := func(ctx context.Context, w io.Writer) (bool, error) {
				return migrationView(ctx, cl, w, from, to, c.Bool("all"), c.Bool("json"))
			}
			if p := c.String("project"); p != "" {
				view = func(ctx context.Context, w io.Writer) (bool, error) {
					return projectView(ctx, cl, w, from, to, p, c.Bool("json"))
				}
			}
			if !c.Bool("watch") {
				_, err := view(c.Context, c.App.Writer)
				return err
			}
			return watch(c.Context, c.App.Writer, c.Duration("interval"), view)
		}),
	}
}

// migrationView prints the migration's status; done says the migration has
// closed.
func migrationView(ctx context.Context, cl client.Client, w io.Writer, from, to string, all, asJSON bool) (bool, error) {
	st, err := queryPlan(ctx, cl, from, to)
	if err != nil {
		return false, err
	}
	closed, state := workflowClosed(ctx, cl, migrations.MigrationID(from, to))
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return closed, enc.Encode(st)
	}
	renderMigrationStatus(w, st, time.Now(), all)
	if closed {
		fmt.Fprintf(w, "\nthe migration's workflow is %s\n", state)
	}
	return closed, nil
}

// workflowClosed says whether a workflow has closed, and its status.
func workflowClosed(ctx context.Context, cl client.Client, id string) (bool, string) {
	d, err := cl.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return false, ""
	}
	s := d.GetWorkflowExecutionInfo().GetStatus()
	name := strings.ToLower(strings.TrimPrefix(s.String(), "WORKFLOW_EXECUTION_STATUS_"))
	return s != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, strings.ReplaceAll(name, "_", " ")
}

// renderMigrationStatus prints the plan query's answer: a header with the
// overall progress, a line per stage, and the checklist of the current stage
// (of every stage with all).
func renderMigrationStatus(w io.Writer, st migrations.MigrationStatus, now time.Time, all bool) {
	id := migrations.MigrationID(st.From, st.To)
	where := "finished " + day(st.Finished)
	if st.Current < len(st.Stages) {
		where = fmt.Sprintf("stage %d of %d, %s", st.Current+1, len(st.Stages), st.Stages[st.Current].Name)
	}
	fmt.Fprintf(w, "migration %s → %s (%s, run %d): %s\n", st.From, st.To, id, st.Runs, where)
	fmt.Fprintf(w, "baseline %s to %s", day(st.Start), day(st.PlannedEnd))
	if over := st.Overdue(); len(over) > 0 {
		fmt.Fprintf(w, "; OVERDUE: %s", strings.Join(over, ", "))
	}
	fmt.Fprintln(w)
	done, total, stagesDone := 0, 0, 0
	for _, s := range st.Stages {
		total += len(s.Tasks)
		done += s.TasksDone
		if s.State == migrations.StageDone {
			stagesDone++
		}
	}
	fmt.Fprintf(w, "progress %s %d/%d tasks, %d/%d stages\n\n", bar(done, total, 30), done, total, stagesDone, len(st.Stages))

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tSTAGE\tSTATE\tPLANNED\tSTARTED\tDUE\tFINISHED\tTASKS\tAPPROVED BY")
	for i, s := range st.Stages {
		state := string(s.State)
		if s.Overdue {
			state += " OVERDUE"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s..%s\t%s\t%s\t%s\t%d/%d\t%s\n", i+1, s.Name, state, day(s.PlannedStart), day(s.PlannedEnd),
			day(s.Started), day(s.Due), day(s.Finished), s.TasksDone, len(s.Tasks), orDash(s.ApprovedBy))
	}
	_ = tw.Flush()
	for i, s := range st.Stages {
		if !all && i != st.Current {
			continue
		}
		fmt.Fprintf(w, "\n%d %s: %s", i+1, s.Name, s.State)
		if !s.Due.IsZero() && s.Finished.IsZero() {
			fmt.Fprintf(w, ", due %s (%s)", day(s.Due), relativeDays(s.Due, now))
		}
		if s.Reminders > 0 {
			fmt.Fprintf(w, ", %d reminders sent", s.Reminders)
		}
		fmt.Fprintln(w)
		renderTasks(w, s.Tasks)
		if s.State == migrations.StageAwaitingApproval {
			fmt.Fprintf(w, "   waiting for the gate: conveyor migrate approve --from %s --to %s --stage %s --approver WHO\n",
				st.From, st.To, shellQuote(s.Name))
		}
	}
	renderProjects(w, st)
}

// renderTasks prints a checklist: [x] done, [~] running, [!] failed, [ ] open.
func renderTasks(w io.Writer, tasks []migrations.TaskStatus) {
	for _, t := range tasks {
		mark := map[migrations.TaskState]string{migrations.TaskDone: "x", migrations.TaskRunning: "~", migrations.TaskFailed: "!"}[t.State]
		if mark == "" {
			mark = " "
		}
		kind := "human"
		if t.Automated {
			kind = "automated"
		}
		line := fmt.Sprintf("   [%s] %-28s %-9s %s", mark, t.Name, kind, t.State)
		if t.State == migrations.TaskDone {
			line += fmt.Sprintf(" by %s on %s", t.By, day(t.Done))
		}
		if t.Note != "" {
			line += " — " + firstLine(t.Note)
		}
		if t.Detail != "" {
			line += " — " + firstLine(t.Detail)
		}
		if t.Workflow != "" {
			line += " (workflow " + t.Workflow + ")"
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
}

// relativeDays says how far t is from now in days.
func relativeDays(t, now time.Time) string {
	d := int(t.Sub(now).Hours() / 24)
	switch {
	case d > 0:
		return fmt.Sprintf("in %d days", d)
	case d < 0:
		return fmt.Sprintf("%d days ago", -d)
	}
	return "today"
}

// bar draws a progress bar of width cells.
func bar(done, total, width int) string {
	if total <= 0 {
		return "[" + strings.Repeat("-", width) + "]"
	}
	if done > total {
		done = total
	}
	n := done * width / total
	return fmt.Sprintf("[%s%s] %3d%%", strings.Repeat("#", n), strings.Repeat("-", width-n), done*100/total)
}

// watch redraws a view every interval until it says it is done or ctx ends.
// On a terminal the screen is cleared before each redraw; elsewhere (a pipe, a
// log) a view is printed only when it changed, so the output stays readable.
func watch(ctx context.Context, w io.Writer, interval time.Duration, view func(context.Context, io.Writer) (bool, error)) error {
	tty := isTerminal(w)
	var last string
	started := time.Now()
	for {
		var buf bytes.Buffer
		done, err := view(ctx, &buf)
		if err != nil {
			return err
		}
		if s := buf.String(); s != last || tty {
			if tty {
				fmt.Fprint(w, "\033[H\033[2J")
			}
			fmt.Fprint(w, s)
			if tty && !done {
				fmt.Fprintf(w, "\nwatching for %s (every %s; Ctrl-C stops watching, not the migration)\n",
					time.Since(started).Round(time.Second), interval)
			}
			last = s
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// isTerminal says whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
