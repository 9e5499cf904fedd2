package contract

import "time"

// Activities of the OpenStack parallel-cloud migration (migrations.CloudMigration and
// migrations.MigrationStage). They run on the migrate pool.
var (
	// MigrationCheck runs a stage's entry checks against both deployments.
	MigrationCheck = Activity[MigrationCheckInput, MigrationCheckOutput]{Name: "MigrationCheck"}
	// MigrationTask runs one automated task of a stage's checklist. It must be
	// idempotent: a retried or repeated task finds its earlier work done.
	MigrationTask = Activity[MigrationTaskInput, MigrationTaskOutput]{Name: "MigrationTask"}
	// MigrationNotify tells the people running the migration about a stage: a
	// reminder of its open tasks, an overdue alert, a blocked entry check, a failed
	// task or a gate awaiting approval.
	MigrationNotify = Activity[MigrationNotifyInput, Nothing]{Name: "MigrationNotify"}
)

// Kinds of MigrationNotifyInput.
const (
	// NotifyReminder lists the open tasks of a stage, sent every reminder interval.
	NotifyReminder = "reminder"
	// NotifyOverdue says a stage has run past its planned duration; sent once.
	NotifyOverdue = "overdue"
	// NotifyBlocked says a stage's entry checks failed; repeated every reminder
	// interval until they pass.
	NotifyBlocked = "blocked"
	// NotifyTaskFailed says an automated task failed and needs a person.
	NotifyTaskFailed = "task-failed"
	// NotifyGate says every task of a stage is done and its exit gate awaits approval.
	NotifyGate = "gate"
)

// MigrationCheckInput names the stage whose entry checks to run.
type MigrationCheckInput struct {
	// From and To are the deployments, e.g. "codfw1dev" and "codfw2dev".
	From  string `json:"from"`
	To    string `json:"to"`
	Stage string `json:"stage"`
	// Checks are the checks' names, as the stage's plan lists them.
	Checks []string `json:"checks"`
}

// MigrationCheckResult is one entry check's outcome.
type MigrationCheckResult struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Detail says what was found, and for a failed check what is missing.
	Detail string `json:"detail,omitempty"`
}

// MigrationCheckOutput has one result per check, in the input's order. Failed
// checks are results, not errors: errors mean the checks could not run.
type MigrationCheckOutput struct {
	Results []MigrationCheckResult `json:"results"`
}

// MigrationTaskInput names the automated task to run.
type MigrationTaskInput struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Stage string `json:"stage"`
	Task  string `json:"task"`
}

// MigrationTaskOutput says what the task did.
type MigrationTaskOutput struct {
	Detail string `json:"detail,omitempty"`
}

// MigrationNotifyInput is one notification about a stage.
type MigrationNotifyInput struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Stage string `json:"stage"`
	// Kind is NotifyReminder, NotifyOverdue, NotifyBlocked, NotifyTaskFailed or
	// NotifyGate.
	Kind string `json:"kind"`
	// Open lists what is still to be done: open tasks, failed checks, or the gate.
	Open []string `json:"open,omitempty"`
	// Due is when the stage was planned to end.
	Due time.Time `json:"due"`
	// Message is one human-readable line.
	Message string `json:"message"`
	// Project and Recipients are set by the projects driver: the project the
	// notification is about and its owners.
	Project    string   `json:"project,omitempty"`
	Recipients []string `json:"recipients,omitempty"`
}
