package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wikimedia/conveyor/workflows/promotions"

	"github.com/urfave/cli/v2"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/wikimedia/conveyor/internal/client/launch"
	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/workflows"
)

func promoteListCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list recent promotions with their stage and approvers",
		Description: "Lists promotions, newest first, with their status, stage (the ConveyorStage search\n" +
			"attribute: gate means waiting for an approver) and who approved (ConveyorApprover).\n\n" +
			"Examples:\n\n   conveyor promote list\n   conveyor promote list --stage gate",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "stage", Usage: "only promotions at `STAGE` (config, staging, gate, production/<cluster>, promoted, …)"},
			&cli.IntFlag{Name: "limit", Value: 20, Usage: "show at most `N`"},
		}, temporalclient.Flags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("unexpected arguments %q: list takes only flags", c.Args().Slice())
			}
			_, cl, err := dialFromCLI(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			q := "WorkflowType = 'Promotion'"
			if s := c.String("stage"); s != "" {
				q += fmt.Sprintf(" AND %s = '%s'", workflows.SearchAttributeStage, strings.ReplaceAll(s, "'", ""))
			}
			resp, err := cl.ListWorkflow(c.Context, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: int32(c.Int("limit"))})
			if err != nil {
				return fmt.Errorf("listing promotions: %w", err)
			}
			w := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "PROMOTION ID\tSTATUS\tSTARTED\tSTAGE\tAPPROVED BY")
			for i, e := range resp.Executions {
				if i >= c.Int("limit") {
					break
				}
				fields := e.GetSearchAttributes().GetIndexedFields()
				var stage string
				var approvers []string
				decodeAttr(fields[workflows.SearchAttributeStage], &stage)
				decodeAttr(fields[workflows.SearchAttributeApprover], &approvers)
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", e.GetExecution().GetWorkflowId(), strings.TrimPrefix(e.GetStatus().String(), "WORKFLOW_EXECUTION_STATUS_"),
					e.GetStartTime().AsTime().UTC().Format(time.DateTime), stage, strings.Join(approvers, ","))
			}
			return w.Flush()
		},
	}
}

// decodeAttr decodes a search attribute's payload; a missing one leaves v alone.
func decodeAttr(p *commonpb.Payload, v any) {
	if p != nil {
		_ = converter.GetDefaultDataConverter().FromPayload(p, v)
	}
}

// watchPromotion prints the status, then each new event, until the promotion ends.
func watchPromotion(c *cli.Context, cl client.Client, id string) error {
	ctx := c.Context
	w := c.App.Writer
	done := make(chan error, 1)
	go func() { done <- cl.GetWorkflow(ctx, id, "").Get(ctx, nil) }()
	seen := map[string]bool{}
	first := true
	show := func() {
		st, err := launch.PromotionStatus(ctx, cl, id, "")
		if err != nil {
			return
		}
		if first {
			_ = renderPromotion(w, id, st, 10)
			fmt.Fprintln(w, "\nwatching (Ctrl-C to stop):")
			for _, e := range st.Events {
				seen[e.At.String()+e.Message] = true
			}
			first = false
			return
		}
		for _, e := range st.Events {
			if k := e.At.String() + e.Message; !seen[k] {
				seen[k] = true
				fmt.Fprintf(w, "%s  %s\n", e.At.UTC().Format(time.TimeOnly), e.Message)
			}
		}
	}
	show()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			show()
			st, qerr := launch.PromotionStatus(ctx, cl, id, "")
			if qerr == nil {
				fmt.Fprintf(w, "\nthe promotion ended: %s\n", describeStage(st))
			}
			if err != nil {
				return fmt.Errorf("promotion %s failed: %s", id, firstLine(st.Error))
			}
			return nil
		case <-tick.C:
			show()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// describeStage is the stage with where production is.
func describeStage(st promotions.PromotionStatus) string {
	s := st.Stage
	switch {
	case st.Stage == promotions.PromotionStageProduction && st.Step > 0:
		s += fmt.Sprintf(" (%s, step %d of %d)", st.Cluster, st.Step, st.Steps)
	case st.Stage == promotions.PromotionStageProduction:
		s += " (" + st.Cluster + ")"
	}
	if st.Paused {
		s += ", paused"
	}
	if st.Error != "" {
		s += ": " + st.Error
	}
	return s
}

// renderPromotion prints a status for people: the summary, clusters, decisions
// and the last events lines of the log.
func renderPromotion(out io.Writer, id string, st promotions.PromotionStatus, events int) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "promotion\t%s\n", id)
	fmt.Fprintf(w, "service\t%s\nimage\t%s\n", st.Service, st.Image)
	if src := st.Source; src.Project != "" || src.Commit != "" || src.Pipeline != "" {
		fmt.Fprintf(w, "source\t%s\n", strings.Join(nonEmpty("project "+src.Project, "commit "+src.Commit, "pipeline "+src.Pipeline), ", "))
	}
	cfg := "commit " + orDash(st.ConfigCommit)
	if st.ConfigRef != "" {
		cfg += " (ref " + st.ConfigRef + ")"
	}
	fmt.Fprintf(w, "configuration\t%s\n", cfg)
	fmt.Fprintf(w, "stage\t%s\n", describeStage(st))
	if st.Waiting != "" {
		line := st.Waiting
		if !st.WaitingSince.IsZero() {
			line += " (since " + st.WaitingSince.UTC().Format(time.DateTime) + ")"
		}
		if !st.Deadline.IsZero() {
			line += ", gives up at " + st.Deadline.UTC().Format(time.DateTime)
		}
		fmt.Fprintf(w, "waiting for\t%s\n", line)
	}
	if wt := st.Weights; wt.CanaryReplicas+wt.StableReplicas > 0 {
		fmt.Fprintf(w, "weights\t%d %% wanted: canary %d pods (%d ready), stable %d (%d ready): canary gets %.1f %% of ready pods\n",
			wt.Desired, wt.CanaryReplicas, wt.CanaryReady, wt.StableReplicas, wt.StableReady, wt.Actual)
	}
	if a := st.LastAnalysis; a != nil {
		verdict := "failed"
		if a.Passed {
			verdict = "passed"
		}
		measured := ""
		if a.Requests > 0 {
			measured = fmt.Sprintf(" %d requests, %d errors (ratio %.3f, stable %.3f), p95 %s;", a.Requests, a.Errors, a.ErrorRatio, a.StableErrorRatio, a.LatencyP95)
		}
		fmt.Fprintf(w, "last analysis\t%s step %d (%d %%) %s:%s %s\n", a.Cluster, a.Step, a.Weight, verdict, measured, a.Reason)
	}
	fmt.Fprintf(w, "approvers\t%s\n", strings.Join(st.Approvers, ", "))
	if st.ApprovedBy != "" {
		fmt.Fprintf(w, "approved by\t%s\n", st.ApprovedBy)
	}
	if st.Reminders > 0 {
		fmt.Fprintf(w, "reminders\t%d sent\n", st.Reminders)
	}
	if len(st.Clusters) > 0 {
		fmt.Fprintln(w, "\nCLUSTER\tNAMESPACE\tSTATE\tREVISION\tDETAIL")
		for _, cl := range st.Clusters {
			name := cl.Name
			if cl.Simulated {
				name += " (simulated: readiness only)"
			}
			rev := ""
			if cl.Revision > 0 {
				rev = fmt.Sprint(cl.Revision)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", name, cl.Namespace, cl.State, rev, firstLine(cl.Detail))
		}
	}
	if len(st.Decisions) > 0 {
		fmt.Fprintln(w, "\nWHEN\tVERB\tBY\tVIA\tOUTCOME\tREASON")
		for _, d := range st.Decisions {
			outcome := "accepted"
			if !d.Accepted {
				outcome = "ignored: " + d.Note
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", d.At.UTC().Format(time.DateTime), d.Verb, d.Approver, d.Via, outcome, d.Reason)
		}
	}
	if len(st.Events) > 0 && events > 0 {
		fmt.Fprintln(w, "\nEVENTS (latest last)")
		evs := st.Events
		if len(evs) > events {
			evs = evs[len(evs)-events:]
		}
		for _, e := range evs {
			fmt.Fprintf(w, "%s\t%s\n", e.At.UTC().Format(time.DateTime), e.Message)
		}
	}
	return w.Flush()
}

func nonEmpty(parts ...string) []string {
	var out []string
	for _, p := range parts {
		if _, v, _ := strings.Cut(p, " "); v != "" {
			out = append(out, p)
		}
	}
	return out
}
