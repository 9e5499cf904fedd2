package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/workflows"
	"github.com/wikimedia/conveyor/workflows/promotions"
)

func psCommand() *cli.Command {
	return &cli.Command{
		Name:  "ps",
		Usage: "what runs now: pipelines, verifications, batches, promotions, migrations, with their step, age and what they wait for",
		Description: "Lists the namespace's running workflows, oldest first: type, id, age, project, the\n" +
			"step or stage (the ConveyorStep and ConveyorStage search attributes) and what each\n" +
			"waits for: an activity (with its attempt and last failure when retried), a child\n" +
			"workflow, an approver at a promotion's gate, or a signal, update or timer.\n" +
			"The Temporal UI's Current Details of each workflow says the rest in words.\n\n" +
			"Examples:\n\n" +
			"   conveyor ps\n" +
			"   conveyor ps --type Promotion --watch",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "type", Usage: "only workflows of `TYPE` (Pipeline, ChangeVerification, MergeBatcher, Promotion, CloudMigration, …)"},
			&cli.IntFlag{Name: "limit", Value: 50, Usage: "show at most `N`"},
			&cli.BoolFlag{Name: "watch", Usage: "print the list again every --interval until interrupted"},
			&cli.DurationFlag{Name: "interval", Value: 5 * time.Second, Usage: "with --watch, how often (`DURATION`)"},
		}, temporalclient.Flags()...),
		Action: ps,
	}
}

func ps(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: ps takes only flags (see `conveyor ps --help`)", c.Args().Slice())
	}
	if t := c.String("type"); strings.ContainsAny(t, `'"`) {
		return fmt.Errorf("--type: %q is not a workflow type", t)
	}
	if c.Int("limit") <= 0 {
		return fmt.Errorf("--limit: want a positive number, got %d", c.Int("limit"))
	}
	if c.Duration("interval") < time.Second {
		return fmt.Errorf("--interval: want at least 1s, got %s", c.Duration("interval"))
	}
	_, cl, err := dialFromCLI(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		rows, err := running(c.Context, cl, c.String("type"), c.Int("limit"))
		if err != nil {
			return err
		}
		if c.Bool("watch") {
			fmt.Fprintf(c.App.Writer, "\n%s\n", time.Now().UTC().Format(time.RFC3339))
		}
		printRunning(c.App.Writer, rows, time.Now())
		if !c.Bool("watch") {
			return nil
		}
		select {
		case <-c.Context.Done():
			return nil
		case <-time.After(c.Duration("interval")):
		}
	}
}

// runningRow is one running workflow as ps shows it.
type runningRow struct {
	Type, ID, Project, Where, Waiting string
	Started                           time.Time
}

// running lists the running workflows, oldest first, each described.
func running(ctx context.Context, cl client.Client, typ string, limit int) ([]runningRow, error) {
	q := "ExecutionStatus = 'Running'"
	if typ != "" {
		q += fmt.Sprintf(" AND WorkflowType = '%s'", typ)
	}
	var execs []*workflowpb.WorkflowExecutionInfo
	var token []byte
	for len(execs) < limit {
		resp, err := cl.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("listing the running workflows: %w", err)
		}
		execs = append(execs, resp.GetExecutions()...)
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	if len(execs) > limit {
		execs = execs[:limit]
	}
	rows := make([]runningRow, 0, len(execs))
	for i := len(execs) - 1; i >= 0; i-- { // the server lists the newest first
		e := execs[i]
		fields := e.GetSearchAttributes().GetIndexedFields()
		var project, step, stage string
		decodeAttr(fields[workflows.SearchAttributeProject], &project)
		decodeAttr(fields[workflows.SearchAttributeStep], &step)
		decodeAttr(fields[workflows.SearchAttributeStage], &stage)
		row := runningRow{Type: e.GetType().GetName(), ID: e.GetExecution().GetWorkflowId(), Project: project,
			Where: strings.Trim(step+" "+stage, " "), Started: e.GetStartTime().AsTime()}
		d, err := cl.DescribeWorkflowExecution(ctx, row.ID, e.GetExecution().GetRunId())
		if err != nil {
			row.Waiting = "(describe failed: " + err.Error() + ")"
		} else {
			row.Waiting = waitingFor(d, stage)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// waitingFor says what a running workflow waits for, from its description.
func waitingFor(d *workflowservice.DescribeWorkflowExecutionResponse, stage string) string {
	var parts []string
	for _, a := range d.GetPendingActivities() {
		s := "activity " + a.GetActivityType().GetName()
		if a.GetState() == enumspb.PENDING_ACTIVITY_STATE_SCHEDULED && a.GetAttempt() <= 1 {
			s += " (not started yet: is a worker serving its pool?)"
		}
		if a.GetAttempt() > 1 {
			s += fmt.Sprintf(" (attempt %d", a.GetAttempt())
			if f := a.GetLastFailure().GetMessage(); f != "" {
				s += ", last failure: " + firstLine(f)
			}
			s += ")"
		}
		parts = append(parts, s)
	}
	for _, ch := range d.GetPendingChildren() {
		parts = append(parts, "child "+ch.GetWorkflowTypeName()+" "+ch.GetWorkflowId())
	}
	if len(parts) > 0 {
		return strings.Join(parts, "; ")
	}
	if stage == promotions.PromotionStageGate {
		return "an approver: the signal or update approve (or reject)"
	}
	return "a signal, an update or a timer"
}

func printRunning(w io.Writer, rows []runningRow, now time.Time) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "nothing is running")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tWORKFLOW ID\tAGE\tPROJECT\tSTEP/STAGE\tWAITING FOR")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Type, r.ID, age(now.Sub(r.Started)), dash(r.Project), dash(r.Where), r.Waiting)
	}
	_ = tw.Flush()
}

// age is a duration as ps prints it: 45s, 12m, 3h4m, 5d2h.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
