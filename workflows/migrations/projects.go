package migrations

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wikimedia/conveyor/workflows"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/activities/contract"
)

// The stage-4 driver: every project of the legacy deployment moves to the new one
// in one of three modes (docs/migration.md, "## Modes").

// Query and modes of ProjectsMigration.
const (
	// QueryProjects returns ProjectsMigration's ProjectsStatus.
	QueryProjects = "projects"
	// ModeOrganic stops new workloads on the legacy deployment (its compute quota
	// goes to zero, FreezeLegacyQuota) so they go to the new one; the project's
	// existing servers stay until their owners move them.
	ModeOrganic = "organic"
	// ModeManual notifies the project's owners with a deadline, reminds them, and
	// waits for them to mark the project done (UpdateTaskDone with the project's
	// name as the task).
	ModeManual = "manual"
	// ModeAutomatic migrates every server of the project with a ProjectMigration
	// child workflow.
	ModeAutomatic = "automatic"
)

// ProjectModes lists the modes.
var ProjectModes = []string{ModeOrganic, ModeManual, ModeAutomatic}

// Defaults of ProjectsMigrationInput.
const (
	// DefaultProjectsAtOnce bounds the projects being worked on at once: quota
	// changes, first notifications and ProjectMigration children.
	DefaultProjectsAtOnce = 5
	// DefaultManualDeadline is a manual project's deadline, from when its owners
	// are first told.
	DefaultManualDeadline = 90 * 24 * time.Hour
	// DefaultProjectProgressEvery is the least time between two progress signals
	// to the stage, which bounds the stage's history.
	DefaultProjectProgressEvery = time.Minute
)

// ProjectState is where one project of the driver is.
type ProjectState string

// The states of a project.
const (
	ProjectPending ProjectState = "pending"
	// ProjectRunning: its quota is being set, its owners told, or its
	// ProjectMigration child runs.
	ProjectRunning ProjectState = "running"
	// ProjectWaiting: a manual project whose owners were told; it waits for
	// UpdateTaskDone.
	ProjectWaiting ProjectState = "waiting"
	ProjectDone    ProjectState = "done"
	// ProjectFailed: its quota change or migration failed for good; a person
	// fixes it and marks it done with UpdateTaskDone.
	ProjectFailed ProjectState = "failed"
	// ProjectPlanned: a dry run said what it would do.
	ProjectPlanned ProjectState = "planned"
)

// ProjectSpec is one project to migrate.
type ProjectSpec struct {
	// Name is the Keystone project's name.
	Name string `json:"name"`
	// Mode is ModeOrganic, ModeManual or ModeAutomatic; empty means the input's
	// DefaultMode.
	Mode string `json:"mode,omitempty"`
	// Owners are told about a manual project (e-mail addresses or user names).
	Owners []string `json:"owners,omitempty"`
	// Deadline of a manual project; zero means DefaultManualDeadline (or the
	// input's ManualDeadline) after its owners are told.
	Deadline time.Time `json:"deadline,omitzero"`
}

// ProjectsMigrationInput is the stage-4 driver's input.
type ProjectsMigrationInput struct {
	// From is the legacy deployment, To the new one.
	From string `json:"from"`
	To   string `json:"to"`
	// Projects to migrate; empty means every project with servers in From
	// (ListMigrationProjects), each in DefaultMode.
	Projects []ProjectSpec `json:"projects,omitempty"`
	// DefaultMode is the mode of projects that name none; empty means ModeManual,
	// which changes nothing without the owners.
	DefaultMode string `json:"defaultMode,omitempty"`
	// AtOnce bounds the projects worked on at once; zero means
	// DefaultProjectsAtOnce.
	AtOnce int `json:"atOnce,omitempty"`
	// ManualDeadline, ReminderEvery and ProgressEvery: zero means
	// DefaultManualDeadline, DefaultMigrationReminderEvery and
	// DefaultProjectProgressEvery.
	ManualDeadline time.Duration `json:"manualDeadline,omitempty"`
	ReminderEvery  time.Duration `json:"reminderEvery,omitempty"`
	ProgressEvery  time.Duration `json:"progressEvery,omitempty"`
	// MaxParallelVMs, GracePeriod and DNSZone are passed to the ProjectMigration
	// children of automatic projects (zero means their defaults).
	MaxParallelVMs int           `json:"maxParallelVMs,omitempty"`
	GracePeriod    time.Duration `json:"gracePeriod,omitempty"`
	DNSZone        string        `json:"dnsZone,omitempty"`
	// DryRun changes nothing and tells no one: each project says what it would do.
	DryRun bool `json:"dryRun,omitempty"`
	// MaxEventsPerRun is the continue-as-new threshold; zero means
	// DefaultMigrationEventsPerRun.
	MaxEventsPerRun int `json:"maxEventsPerRun,omitempty"`
	// State is carried across continue-as-new; nil when the driver starts.
	State *ProjectsStatus `json:"state,omitempty"`
}

// ProjectProgress is one project as QueryProjects (and QueryPlan) show it.
type ProjectProgress struct {
	Name     string       `json:"name"`
	Mode     string       `json:"mode"`
	State    ProjectState `json:"state"`
	Owners   []string     `json:"owners,omitempty"`
	Deadline time.Time    `json:"deadline,omitzero"`
	Started  time.Time    `json:"started,omitzero"`
	Finished time.Time    `json:"finished,omitzero"`
	// By is who marked it done (automatedBy when conveyor did), Note their note.
	By   string `json:"by,omitempty"`
	Note string `json:"note,omitempty"`
	// Detail says what was done, would be done (dry run), or failed.
	Detail    string `json:"detail,omitempty"`
	Reminders int    `json:"reminders,omitempty"`
	Overdue   bool   `json:"overdue,omitempty"`
	// Workflow is the ProjectMigration child's id (automatic mode).
	Workflow string `json:"workflow,omitempty"`
}

// ProjectsStatus is QueryProjects' answer, the state carried across
// continue-as-new and the driver's result.
type ProjectsStatus struct {
	From     string    `json:"from"`
	To       string    `json:"to"`
	DryRun   bool      `json:"dryRun,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	// Listed says the projects are known (from the input or ListMigrationProjects).
	Listed       bool              `json:"listed"`
	NextReminder time.Time         `json:"nextReminder,omitzero"`
	Projects     []ProjectProgress `json:"projects"`
	// Summary counts the projects by state, in one line.
	Summary string `json:"summary"`
	Runs    int    `json:"runs"`
}

func (in ProjectsMigrationInput) validate() error {
	switch {
	case in.From == "" || in.To == "":
		return errors.New("from and to must name the deployments, e.g. from eqiad1 to eqiad2")
	case in.From == in.To:
		return fmt.Errorf("from and to are both %q: migrate between two deployments", in.From)
	case in.DefaultMode != "" && !slices.Contains(ProjectModes, in.DefaultMode):
		return fmt.Errorf("defaultMode %q is not a mode: use %s", in.DefaultMode, strings.Join(ProjectModes, ", "))
	case in.AtOnce < 0 || in.ManualDeadline < 0 || in.ReminderEvery < 0 || in.ProgressEvery < 0 || in.MaxEventsPerRun < 0 ||
		in.MaxParallelVMs < 0 || in.GracePeriod < 0:
		return errors.New("atOnce, manualDeadline, reminderEvery, progressEvery, maxEventsPerRun, maxParallelVMs and gracePeriod must not be negative")
	}
	var names []string
	for i, p := range in.Projects {
		switch {
		case p.Name == "":
			return fmt.Errorf("projects[%d].name is empty: name the Keystone project", i)
		case slices.Contains(names, p.Name):
			return fmt.Errorf("projects[%d].name: %q is listed twice", i, p.Name)
		case p.Mode != "" && !slices.Contains(ProjectModes, p.Mode):
			return fmt.Errorf("projects[%d].mode %q is not a mode: use %s", i, p.Mode, strings.Join(ProjectModes, ", "))
		}
		names = append(names, p.Name)
	}
	return nil
}

func (in ProjectsMigrationInput) withDefaults() ProjectsMigrationInput {
	if in.DefaultMode == "" {
		in.DefaultMode = ModeManual
	}
	if in.AtOnce == 0 {
		in.AtOnce = DefaultProjectsAtOnce
	}
	if in.ManualDeadline == 0 {
		in.ManualDeadline = DefaultManualDeadline
	}
	if in.ReminderEvery == 0 {
		in.ReminderEvery = DefaultMigrationReminderEvery
	}
	if in.ProgressEvery == 0 {
		in.ProgressEvery = DefaultProjectProgressEvery
	}
	if in.MaxEventsPerRun == 0 {
		in.MaxEventsPerRun = DefaultMigrationEventsPerRun
	}
	return in
}

// ProjectsMigration is stage 4's driver: it takes each project (listed in the
// input, or every project with servers in From) through its mode, at most AtOnce
// at a time: organic sets its legacy compute quota to zero; manual tells its
// owners, reminds them every ReminderEvery, alerts once when the deadline passes,
// and waits for UpdateTaskDone naming the project; automatic runs a
// ProjectMigration child. A failed project waits for UpdateTaskDone too. It ends
// when every project is done, answers QueryProjects, sends its progress to its
// parent stage (SignalTaskProgress, at most every ProgressEvery) and continues as
// new between children after MaxEventsPerRun events. A dry run changes nothing,
// tells no one and ends once each project has said what it would do.
func ProjectsMigration(ctx workflow.Context, in ProjectsMigrationInput) (ProjectsStatus, error) {
	if err := in.validate(); err != nil {
		return ProjectsStatus{}, temporal.NewNonRetryableApplicationError(err.Error(), contract.ErrInvalidConfig, nil)
	}
	r := &projectsRun{in: in.withDefaults()}
	if in.State != nil {
		r.st = *in.State
	} else {
		r.st = ProjectsStatus{From: in.From, To: in.To, DryRun: in.DryRun, Started: workflow.Now(ctx)}
	}
	r.st.Runs++
	if err := r.handlers(ctx); err != nil {
		return r.st, err
	}
	if !r.st.Listed {
		if err := r.list(ctx); err != nil {
			return r.st, err
		}
	}
	for {
		r.summarize()
		now := workflow.Now(ctx)
		if r.finished() {
			break
		}
		if r.dirty && !now.Before(r.lastReport.Add(r.in.ProgressEvery)) {
			r.report(ctx)
			continue
		}
		draining := workflows.HistoryFull(ctx, r.events, r.in.MaxEventsPerRun)
		if draining && r.inflight == 0 {
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return r.st, err
			}
			next := in
			next.State = &r.st
			return r.st, workflow.NewContinueAsNewError(ctx, ProjectsMigration, next)
		}
		if !draining {
			r.startPending(ctx)
		}
		if !r.in.DryRun && !now.Before(r.st.NextReminder) {
			for !now.Before(r.st.NextReminder) {
				r.st.NextReminder = r.st.NextReminder.Add(r.in.ReminderEvery)
			}
			r.remind(ctx)
			continue
		}
		if !r.in.DryRun && r.alertOverdue(ctx, now) {
			continue
		}
		wake := r.st.NextReminder
		for _, p := range r.st.Projects {
			if p.State == ProjectWaiting && !p.Overdue && p.Deadline.Before(wake) {
				wake = p.Deadline
			}
		}
		if r.dirty && r.lastReport.Add(r.in.ProgressEvery).Before(wake) {
			wake = r.lastReport.Add(r.in.ProgressEvery)
		}
		r.changed = false
		workflow.SetCurrentDetails(ctx, projectsDetails(r.st))
		if _, err := workflow.AwaitWithTimeout(ctx, max(wake.Sub(now), time.Second), func() bool { return r.changed }); err != nil {
			return r.st, err
		}
	}
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return r.st, err
	}
	r.st.Finished = workflow.Now(ctx)
	r.summarize()
	r.report(ctx)
	return r.st, nil
}
