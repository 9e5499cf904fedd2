package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/wikimedia/conveyor/workflows/promotions"

	"github.com/urfave/cli/v2"

	"github.com/wikimedia/conveyor/internal/client/launch"
	"github.com/wikimedia/conveyor/internal/client/temporalclient"
)

func promoteCommand() *cli.Command {
	cmds := []*cli.Command{promoteStartCommand(), promoteStatusCommand(), promoteListCommand()}
	for _, verb := range promotions.PromotionVerbs {
		cmds = append(cmds, promoteVerbCommand(verb))
	}
	return &cli.Command{
		Name:  "promote",
		Usage: "promote a published image: staging, a human gate, then a canary in each production cluster",
		Description: "A promotion reads the service's plan from the configuration registry (and records\n" +
			"the commit), deploys staging and smoke-checks it, then waits for an approver. In each\n" +
			"production cluster it runs a canary beside the stable release, step by step, and\n" +
			"analyses each step; a failed analysis rolls the canary back. After a merged change's\n" +
			"pipeline publishes an image, the merge batcher starts its promotion by itself.\n\n" +
			"Examples:\n\n" +
			"   conveyor promote start --service hello --image localhost:5000/hello@sha256:…\n" +
			"   conveyor promote list\n" +
			"   conveyor promote status promote/hello/3f2a9c0d1e4b --watch\n" +
			"   conveyor promote approve promote/hello/3f2a9c0d1e4b --approver alice --reason 'staging ok'\n" +
			"   conveyor promote rollback promote/hello/3f2a9c0d1e4b --approver bob --reason 'latency'",
		Subcommands: cmds,
	}
}

func promoteStartCommand() *cli.Command {
	return &cli.Command{
		Name:      "start",
		Usage:     "start the promotion of an image (or show the one already running for it)",
		UsageText: "conveyor promote start --service NAME --image REPO@sha256:DIGEST [--config-ref REF] [--watch]",
		Description: "Starts the Promotion workflow for one image by digest. Its id is\n" +
			"promote/<service>/<first 12 digits of the digest>: starting the same image again\n" +
			"shows the promotion already running. A deploy-pool worker must be running.\n\n" +
			"Examples:\n\n" +
			"   conveyor promote start --service hello --image localhost:5000/hello@sha256:3f2a…\n" +
			"   conveyor promote start --service hello --image localhost:5000/hello@sha256:3f2a… --config-ref 1a2b3c4 --watch",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "service", Usage: "the service's `NAME` in the configuration registry"},
			&cli.StringFlag{Name: "image", Usage: "the image by digest, `REPO@sha256:DIGEST`, as the pipeline published it"},
			&cli.StringFlag{Name: "config-ref", Usage: "`REF` (branch, tag or commit) of the configuration registry", DefaultText: "its default branch"},
			&cli.StringFlag{Name: "project", Usage: "Gerrit project `NAME` the image was built from (shown in the status and the UI)"},
			&cli.BoolFlag{Name: "watch", Aliases: []string{"w"}, Usage: "show the promotion's progress until it ends"},
		}, temporalclient.Flags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("unexpected arguments %q: start takes only flags", c.Args().Slice())
			}
			in := promotions.PromotionInput{Service: c.String("service"), Image: c.String("image"), ConfigRef: c.String("config-ref"),
				Source: promotions.PromotionSource{Project: c.String("project")}}
			if err := in.Validate(); err != nil {
				return err
			}
			cfg, cl, err := dialFromCLI(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			run, err := launch.Promotion(c.Context, cl, in)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.ErrWriter, "promotion %s (run %s)\n", run.GetID(), run.GetRunID())
			if u := cfg.Temporal.WorkflowURL(run.GetID(), run.GetRunID()); u != "" {
				fmt.Fprintf(c.App.ErrWriter, "  watch and approve it in the Temporal UI: %s\n", u)
			}
			if !c.Bool("watch") {
				return nil
			}
			return watchPromotion(c, cl, run.GetID())
		},
	}
}

func promoteStatusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show a promotion's stage, canary weights, analysis, approvals and events",
		UsageText: "conveyor promote status PROMOTION-ID [--run RUN-ID] [--watch]",
		Description: "Asks the promotion for its status query: the stage and environment, the cluster\n" +
			"and canary step, desired and ready pods with the traffic share they give, the last\n" +
			"analysis, who approved, rejected, paused or rolled back and when, the configuration\n" +
			"commit it uses, and its event log. --watch then prints each new event until it ends.\n\n" +
			"Examples:\n\n" +
			"   conveyor promote status promote/hello/3f2a9c0d1e4b\n" +
			"   conveyor promote status promote/hello/3f2a9c0d1e4b --watch",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "run", Usage: "`RUN-ID` (default: the latest run)"},
			&cli.BoolFlag{Name: "watch", Aliases: []string{"w"}, Usage: "keep printing new events until the promotion ends"},
		}, temporalclient.Flags()...),
		Action: func(c *cli.Context) error {
			c, id, err := promotionArg(c)
			if err != nil {
				return err
			}
			_, cl, err := dialFromCLI(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			if c.Bool("watch") {
				return watchPromotion(c, cl, id)
			}
			st, err := launch.PromotionStatus(c.Context, cl, id, c.String("run"))
			if err != nil {
				return err
			}
			return renderPromotion(c.App.Writer, id, st, 10)
		},
	}
}

// promoteVerbUsage is each verb's one-line summary.
var promoteVerbUsage = map[string]string{
	promotions.PromoteApprove:  "pass a promotion's gate before production (approvers only)",
	promotions.PromoteReject:   "stop a promotion at its gate, production unchanged (approvers only)",
	promotions.PromotePause:    "hold production at the current canary step",
	promotions.PromoteResume:   "go on after a pause or an indefinite step (approvers only)",
	promotions.PromoteFull:     "skip the remaining canary steps (approvers only)",
	promotions.PromoteRollback: "remove the canary, keep the stable release, fail the promotion",
}

// promoteVerbDescriptions say what each verb does and who may send it.
var promoteVerbDescriptions = map[string]string{
	promotions.PromoteApprove: "Passes the gate before production. Only a name the plan's approvers list is accepted.",
	promotions.PromoteReject:  "Ends the promotion at its gate; production stays as it is. Approvers only.",
	promotions.PromotePause:   "Holds production at its current canary step (after the step in flight) until resume.",
	promotions.PromoteResume:  "Goes on after a pause or an indefinite canary step. Approvers only.",
	promotions.PromoteFull:    "Skips the remaining canary steps, in this cluster and every one left. Approvers only.",
	promotions.PromoteRollback: "Removes the canary of the cluster being promoted, leaves its stable release as it\n" +
		"was, and fails the promotion.",
}

func promoteVerbCommand(verb string) *cli.Command {
	return &cli.Command{
		Name:      verb,
		Usage:     promoteVerbUsage[verb],
		UsageText: fmt.Sprintf("conveyor promote %s PROMOTION-ID --approver NAME [--reason TEXT]", verb),
		Description: promoteVerbDescriptions[verb] + "\n\n" +
			"It is sent as an update: the promotion checks it first and a refusal (a name that\n" +
			"is not an approver, nothing to resume, too late to roll back) is printed and\n" +
			"nothing is recorded. The name is recorded as given: see docs/promotion.md for\n" +
			"enforcing who may send it.\n\n" +
			"Example:\n\n" +
			fmt.Sprintf("   conveyor promote %s promote/hello/3f2a9c0d1e4b --approver alice --reason 'checked the dashboards'", verb),
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "approver", Usage: "your `NAME`, as the plan's approvers list it; recorded with the decision"},
			&cli.StringFlag{Name: "reason", Usage: "why (`TEXT`), recorded with the decision"},
		}, temporalclient.Flags()...),
		Action: func(c *cli.Context) error {
			c, id, err := promotionArg(c)
			if err != nil {
				return err
			}
			d := promotions.PromotionDecision{Approver: strings.TrimSpace(c.String("approver")), Reason: c.String("reason")}
			if d.Approver == "" {
				return fmt.Errorf("--approver is required: give your name as the promotion plan's approvers list it (e.g. --approver alice); it is recorded with the %s and never taken from $USER", verb)
			}
			_, cl, err := dialFromCLI(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			st, err := launch.PromotionDecide(c.Context, cl, id, verb, d)
			if errors.Is(err, launch.ErrRefused) {
				return fmt.Errorf("%s %s: %w", verb, id, err)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "%s by %s accepted: stage %s\n", verb, d.Approver, describeStage(st))
			return nil
		},
	}
}

// promotionArg returns the one PROMOTION-ID argument and a context whose flags
// include those given after it: urfave/cli stops parsing flags at the first
// argument, and `approve ID --approver alice` is the natural order.
func promotionArg(c *cli.Context) (*cli.Context, string, error) {
	c, args, err := interspersed(c)
	if err != nil {
		return nil, "", err
	}
	if len(args) != 1 {
		return nil, "", fmt.Errorf("give one promotion id, e.g. promote/hello/3f2a9c0d1e4b (see conveyor promote list), got %d arguments", len(args))
	}
	id := args[0]
	if !strings.HasPrefix(id, "promote/") {
		return nil, "", fmt.Errorf("%q is not a promotion id: they look like promote/<service>/<digest prefix> (see conveyor promote list)", id)
	}
	return c, id, nil
}
