// Package migrations holds the OpenStack parallel-cloud migration: CloudMigration
// runs the plan's stages (MigrationStage, with its tasks and approval gates); a
// stage's automated tasks are ProjectsMigration (every project, by mode),
// ProjectMigration (one project's servers), VMMigration (one server), TestBattery
// and Cleanup.
package migrations
