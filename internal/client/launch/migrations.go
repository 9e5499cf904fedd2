package launch

import (
	"context"
	"fmt"

	"github.com/wikimedia/conveyor/workflows/migrations"

	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/workflows"
)

// CloudMigration starts the migration of a pair of deployments with plan p, with
// the id migrations.MigrationID(p.From, p.To) and PolicyOnce: a start while it
// runs or after it finished is an error for which
// temporal.IsWorkflowExecutionAlreadyStartedError holds. It runs on the migrate
// pool's queue unless an option says another.
func CloudMigration(ctx context.Context, s Starter, p migrations.MigrationPlan, opts ...Option) (client.WorkflowRun, error) {
	id := migrations.MigrationID(p.From, p.To)
	o, err := startOptions(id, workflows.TaskQueueMigrate, PolicyOnce, nil, opts)
	if err != nil {
		return nil, err
	}
	run, err := s.ExecuteWorkflow(ctx, o, migrations.CloudMigration, p)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", id, err)
	}
	return run, nil
}

// ProjectMigration starts the automatic migration of a project's servers, with
// the id migrations.ProjectMigrationID and PolicyRefuseRunning: a start while it
// runs is an error for which temporal.IsWorkflowExecutionAlreadyStartedError
// holds. It runs on the migrate pool's queue unless an option says another.
func ProjectMigration(ctx context.Context, s Starter, in migrations.ProjectMigrationInput, opts ...Option) (client.WorkflowRun, error) {
	id := migrations.ProjectMigrationID(in.From, in.To, in.Project)
	o, err := startOptions(id, workflows.TaskQueueMigrate, PolicyRefuseRunning, nil, opts)
	if err != nil {
		return nil, err
	}
	run, err := s.ExecuteWorkflow(ctx, o, migrations.ProjectMigration, in)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", id, err)
	}
	return run, nil
}
