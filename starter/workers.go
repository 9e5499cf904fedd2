package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/wikimedia/conveyor/internal/client/temporalclient"
)

func workersCommand() *cli.Command {
	deployment := &cli.StringFlag{Name: "deployment", EnvVars: []string{"CONVEYOR_WORKER_DEPLOYMENT"}, Required: true,
		Usage: "the worker deployment `NAME` the workers run with (conveyor-worker --deployment)"}
	return &cli.Command{
		Name:  "workers",
		Usage: "roll out worker builds (Temporal worker deployment versioning)",
		Description: "Workers started with --deployment NAME --build-id ID are one version of a worker\n" +
			"deployment. New workflows go to the deployment's current version (or, while one\n" +
			"ramps, a share of them to the ramping one); a Pinned workflow (pipelines,\n" +
			"verifications, promotions, ping) finishes on the build it started on, an\n" +
			"AutoUpgrade one (the migration, the merge batcher, the base image check) moves\n" +
			"to the current version at its next workflow task. See docs/operating.md,\n" +
			"\"Rolling out a worker build\".\n\n" +
			"Examples:\n\n" +
			"   conveyor workers status --deployment conveyor\n" +
			"   conveyor workers rollout --deployment conveyor --build-id 2026.12.03-1 --ramp 10\n" +
			"   conveyor workers rollout --deployment conveyor --build-id 2026.12.03-1",
		Subcommands: []*cli.Command{
			{
				Name:      "rollout",
				Usage:     "make a build the deployment's current version, or ramp a share of new workflows to it",
				UsageText: "conveyor workers rollout --deployment NAME --build-id ID [--ramp PERCENT]",
				Description: "Without --ramp, ID becomes the current version: every new workflow starts on it.\n" +
					"With --ramp P (0 < P < 100), P % of new workflows start on ID and the rest on\n" +
					"the current version; roll out again without --ramp to finish. Temporal refuses a\n" +
					"build none of whose workers has polled yet: start them first (they poll, and wait).\n\n" +
					"Example:\n\n" +
					"   conveyor-worker --deployment conveyor --build-id 2026.12.03-1 &\n" +
					"   conveyor workers rollout --deployment conveyor --build-id 2026.12.03-1 --ramp 10\n" +
					"   conveyor workers rollout --deployment conveyor --build-id 2026.12.03-1",
				Flags: append([]cli.Flag{deployment,
					&cli.StringFlag{Name: "build-id", Required: true, Usage: "the build `ID` (conveyor-worker --build-id)"},
					&cli.Float64Flag{Name: "ramp", Usage: "ramp `PERCENT` of new workflows to the build instead of making it current"},
				}, temporalclient.Flags()...),
				Action: workersRollout,
			},
			{
				Name:      "status",
				Usage:     "the deployment's current and ramping versions, and each version's state",
				UsageText: "conveyor workers status --deployment NAME",
				Description: "Prints the current version, the ramping one and its share, and each version the\n" +
					"deployment has had with its drainage: a version still draining runs Pinned\n" +
					"workflows, and its workers must keep running until it is drained.\n\n" +
					"Example:\n\n" +
					"   conveyor workers status --deployment conveyor",
				Flags:  append([]cli.Flag{deployment}, temporalclient.Flags()...),
				Action: workersStatus,
			},
		},
	}
}

func workersRollout(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: rollout takes only flags", c.Args().Slice())
	}
	name, build := c.String("deployment"), strings.TrimSpace(c.String("build-id"))
	if build == "" {
		return errors.New("--build-id is empty: give the build id the new workers run with")
	}
	ramp := c.Float64("ramp")
	if c.IsSet("ramp") && (ramp <= 0 || ramp >= 100) {
		return fmt.Errorf("--ramp %v: want a share above 0 and below 100 (percent); roll out without --ramp to make the build current", ramp)
	}
	_, cl, err := dialFromCLI(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	h := cl.WorkerDeploymentClient().GetHandle(name)
	if c.IsSet("ramp") {
		res, err := h.SetRampingVersion(c.Context, client.WorkerDeploymentSetRampingVersionOptions{BuildID: build, Percentage: float32(ramp)})
		if err != nil {
			return rolloutError(name, build, err)
		}
		fmt.Fprintf(c.App.Writer, "deployment %s: %v %% of new workflows start on build %s (ramping before: %s at %v %%)\n",
			name, ramp, build, orNone(res.PreviousVersion), res.PreviousPercentage)
		return nil
	}
	res, err := h.SetCurrentVersion(c.Context, client.WorkerDeploymentSetCurrentVersionOptions{BuildID: build})
	if err != nil {
		return rolloutError(name, build, err)
	}
	fmt.Fprintf(c.App.Writer, "deployment %s: build %s is current (was %s); running Pinned workflows stay on their build\n", name, build, orNone(res.PreviousVersion))
	return nil
}

func rolloutError(name, build string, err error) error {
	return fmt.Errorf("rolling out build %s of deployment %s: %w (has a worker with --deployment %s --build-id %s polled yet? `conveyor workers status --deployment %s` lists the versions Temporal knows)",
		build, name, err, name, build, name)
}

func orNone(v *worker.WorkerDeploymentVersion) string {
	if v == nil || v.BuildID == "" {
		return "none (unversioned workers)"
	}
	return v.BuildID
}

func workersStatus(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: status takes only flags", c.Args().Slice())
	}
	_, cl, err := dialFromCLI(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	name := c.String("deployment")
	d, err := cl.WorkerDeploymentClient().GetHandle(name).Describe(c.Context, client.WorkerDeploymentDescribeOptions{})
	if err != nil {
		return fmt.Errorf("describing deployment %s: %w (do its workers run with --deployment %s?)", name, err, name)
	}
	rc := d.Info.RoutingConfig
	fmt.Fprintf(c.App.Writer, "deployment %s\ncurrent  %s\n", name, orNone(rc.CurrentVersion))
	if rc.RampingVersion != nil {
		fmt.Fprintf(c.App.Writer, "ramping  %s at %v %%\n", rc.RampingVersion.BuildID, rc.RampingVersionPercentage)
	}
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "BUILD\tCREATED\tDRAINAGE")
	for _, v := range d.Info.VersionSummaries {
		fmt.Fprintf(w, "%s\t%s\t%s\n", v.Version.BuildID, v.CreateTime.UTC().Format(time.RFC3339), drainage(v.DrainageStatus))
	}
	return w.Flush()
}

// drainage says whether a version's workers may stop: drained once no open
// workflow is pinned to it.
func drainage(s client.WorkerDeploymentVersionDrainageStatus) string {
	switch s {
	case client.WorkerDeploymentVersionDrainageStatusDraining:
		return "draining: Pinned workflows still run on it; keep its workers"
	case client.WorkerDeploymentVersionDrainageStatusDrained:
		return "drained: its workers may stop"
	}
	return "-"
}
