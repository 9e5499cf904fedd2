package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/wikimedia/conveyor/workflows/migrations"

	"github.com/urfave/cli/v2"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/internal/client/launch"
	"github.com/wikimedia/conveyor/internal/client/temporalclient"
)

func migrateCommand() *cli.Command {
	return &cli.Command{
		Name:  "migrate",
		Usage: "run the OpenStack parallel-cloud migration: plan, stages, gates, projects",
		Description: "A migration moves one pair of deployments (e.g. codfw1dev to codfw2dev) through\n" +
			"its stages, each a workflow with entry checks, a checklist of automated and\n" +
			"human tasks, a planned duration with reminders, and an exit gate a person\n" +
			"approves. The migration's workflow id is migration/<from>-<to>. Every verb that\n" +
			"changes something takes --dry-run, which prints what would happen to what.\n\n" +
			"Examples:\n\n" +
			"   conveyor migrate plan --print-defaults > plan.yaml     # a plan to edit\n" +
			"   conveyor migrate plan --plan plan.yaml                 # check it, show the dates\n" +
			"   conveyor migrate start --plan plan.yaml --dry-run\n" +
			"   conveyor migrate start --plan plan.yaml\n" +
			"   conveyor migrate status --from codfw1dev --to codfw2dev --watch\n" +
			"   conveyor migrate task-done --from codfw1dev --to codfw2dev --task 'hardware ordered' --by alice\n" +
			"   conveyor migrate approve --from codfw1dev --to codfw2dev --stage procure --approver bob\n" +
			"   conveyor migrate pause --from eqiad1 --to eqiad2 --project tools --by alice\n" +
			"   conveyor migrate report --from codfw1dev --to codfw2dev",
		Subcommands: []*cli.Command{
			migratePlanCommand(), migrateStartCommand(), migrateStatusCommand(),
			migrateApproveCommand(), migrateTaskDoneCommand(),
			migrateProjectCommand("pause"), migrateProjectCommand("resume"), migrateProjectCommand("retry"),
			migrateReportCommand(),
		},
	}
}

// pairFlags are --from and --to, which name a migration.
func pairFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "from", Usage: "the deployment (`NAME`) migrated from, e.g. codfw1dev"},
		&cli.StringFlag{Name: "to", Usage: "the deployment (`NAME`) migrated to, e.g. codfw2dev"},
	}
}

// pairCommandFlags are the flags of a verb that asks a migration's workflows:
// --from and --to, flags, and the Temporal client's.
func pairCommandFlags(flags ...cli.Flag) []cli.Flag {
	return append(append(pairFlags(), flags...), temporalclient.Flags()...)
}

// pairAction is the action of a verb that takes only flags and names a
// migration with --from and --to: it refuses arguments and checks the pair, then
// runs act with it.
func pairAction(act func(c *cli.Context, from, to string) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		if err := noArgs(c); err != nil {
			return err
		}
		from, to, err := pairOf(c)
		if err != nil {
			return err
		}
		return act(c, from, to)
	}
}

// pairOf returns --from and --to, both required.
func pairOf(c *cli.Context) (from, to string, err error) {
	from, to = strings.TrimSpace(c.String("from")), strings.TrimSpace(c.String("to"))
	if from == "" || to == "" {
		return "", "", errors.New("--from and --to name the migration: e.g. --from codfw1dev --to codfw2dev")
	}
	if from == to {
		return "", "", fmt.Errorf("--from and --to are both %q: a migration goes between two deployments", from)
	}
	return from, to, nil
}

// noArgs refuses positional arguments of a command that takes only flags.
func noArgs(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: conveyor migrate %s takes only flags (see --help)", c.Args().Slice(), c.Command.Name)
	}
	return nil
}

// queryPlan asks the migration of a pair for its MigrationStatus.
func queryPlan(ctx context.Context, cl client.Client, from, to string) (migrations.MigrationStatus, error) {
	id := migrations.MigrationID(from, to)
	st, err := launch.Query[migrations.MigrationStatus](ctx, cl, id, "", migrations.QueryPlan)
	if err != nil {
		return st, explainNotFound(err, id, "the migration of "+from+" to "+to+" has not been started: `conveyor migrate start --from "+from+" --to "+to+"`")
	}
	return st, nil
}

// explainNotFound turns Temporal's not-found error, and a query or update nobody
// answered, into what to do; any other error (which names the workflow) is
// returned as it is.
func explainNotFound(err error, id, hint string) error {
	var nf *serviceerror.NotFound
	var timeout *serviceerror.DeadlineExceeded
	switch {
	case errors.As(err, &nf):
		return fmt.Errorf("no workflow %s: %s", id, hint)
	case errors.As(err, &timeout) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("asking %s: no answer in time: a migrate worker answers queries and updates (conveyor-worker --pools migrate); is one running, in this namespace, and keeping up? (%w)", id, err)
	}
	return err
}

// stageIndex finds a stage of the plan by name; an empty name means the
// current stage.
func stageIndex(st migrations.MigrationStatus, name string) (int, error) {
	if name == "" {
		if st.Current >= len(st.Stages) {
			return 0, fmt.Errorf("the migration of %s to %s has finished every stage", st.From, st.To)
		}
		return st.Current, nil
	}
	var names []string
	for i, s := range st.Stages {
		if s.Name == name {
			return i, nil
		}
		names = append(names, fmt.Sprintf("%q", s.Name))
	}
	return 0, fmt.Errorf("--stage %q is not a stage of this migration: its stages are %s", name, strings.Join(names, ", "))
}
