package launch

import (
	"context"

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
	return start{id: id, queue: workflows.TaskQueueMigrate, policy: PolicyOnce,
		workflow: migrations.CloudMigration, input: p, what: id}.execute(ctx, s, opts)
}

// ProjectMigration starts the automatic migration of a project's servers, with
// the id migrations.ProjectMigrationID and PolicyRefuseRunning: a start while it
// runs is an error for which temporal.IsWorkflowExecutionAlreadyStartedError
// holds. It runs on the migrate pool's queue unless an option says another.
func ProjectMigration(ctx context.Context, s Starter, in migrations.ProjectMigrationInput, opts ...Option) (client.WorkflowRun, error) {
	id := migrations.ProjectMigrationID(in.From, in.To, in.Project)
	return start{id: id, queue: workflows.TaskQueueMigrate, policy: PolicyRefuseRunning,
		workflow: migrations.ProjectMigration, input: in, what: id}.execute(ctx, s, opts)
}
