// Package all lists every workflow of conveyor, for the workers' pool registry and
// the replay test. It sits above the domain packages (workflows/changes,
// workflows/promotions, workflows/migrations) and the core (workflows).
package all

import (
	"github.com/wikimedia/conveyor/workflows"
	"github.com/wikimedia/conveyor/workflows/changes"
	"github.com/wikimedia/conveyor/workflows/migrations"
	"github.com/wikimedia/conveyor/workflows/promotions"
)

// Workflows returns every workflow function; Temporal registers each under its
// function's name (Pipeline, Promotion, VMMigration...), whatever its package. Add
// each new workflow here.
func Workflows() []any {
	return []any{
		workflows.Ping,
		changes.Pipeline, changes.ChangeVerification, changes.MergeBatcher, changes.BaseImageCheck,
		promotions.Promotion,
		migrations.CloudMigration, migrations.MigrationStage, migrations.ProjectsMigration, migrations.ProjectMigration,
		migrations.VMMigration, migrations.TestBattery, migrations.Cleanup,
	}
}
