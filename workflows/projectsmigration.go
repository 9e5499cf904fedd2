package workflows

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

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
		draining := r.events >= r.in.MaxEventsPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
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

// projectsRun is one run's state.
type projectsRun struct {
	in ProjectsMigrationInput
	st ProjectsStatus
	// inflight counts projects being worked on (activities and children).
	inflight int
	events   int
	// changed wakes the main loop; dirty says the stage has not seen the state.
	changed, dirty bool
	lastReport     time.Time
}

// project returns the named project, or nil.
func (r *projectsRun) project(name string) *ProjectProgress {
	for i := range r.st.Projects {
		if r.st.Projects[i].Name == name {
			return &r.st.Projects[i]
		}
	}
	return nil
}

// handlers registers the query and the task-done update.
func (r *projectsRun) handlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryProjects, func() (ProjectsStatus, error) { return r.st, nil },
		workflow.QueryHandlerOptions{Description: "Every project with its mode, state, owners, deadline and what was done"}); err != nil {
		return err
	}
	return workflow.SetUpdateHandlerWithOptions(ctx, UpdateTaskDone, func(ctx workflow.Context, d TaskCompletion) (ProjectProgress, error) {
		p := r.project(d.Task)
		p.State, p.By, p.Note, p.Finished = ProjectDone, d.By, d.Note, workflow.Now(ctx)
		r.events++
		r.changed, r.dirty = true, true
		return *p, nil
	}, workflow.UpdateHandlerOptions{Validator: r.validateDone,
		Description: "Mark a project migrated: {task: the project's name, by, note}; for a manual project, or one whose automated migration failed"})
}

func (r *projectsRun) validateDone(d TaskCompletion) error {
	p := r.project(d.Task)
	switch {
	case strings.TrimSpace(d.By) == "":
		return errors.New("by is empty: say who migrated the project")
	case r.in.DryRun:
		return errors.New("this is a dry run: nothing waits for projects to be marked done")
	case !r.st.Listed:
		return errors.New("the projects are still being listed: try again in a moment")
	case p == nil:
		var names []string
		for _, p := range r.st.Projects {
			names = append(names, fmt.Sprintf("%q", p.Name))
		}
		return fmt.Errorf("no project %q is being migrated: the projects are %s", d.Task, strings.Join(names, ", "))
	case p.State == ProjectDone:
		return fmt.Errorf("project %q is already done (by %s on %s)", p.Name, p.By, p.Finished.Format(time.DateOnly))
	case p.Mode != ModeManual && p.State != ProjectFailed:
		return fmt.Errorf("project %q is migrated in %s mode and %s: conveyor does it; mark it done only once it has failed", p.Name, p.Mode, p.State)
	}
	return nil
}

// list fills the projects from the input, or from the legacy deployment.
func (r *projectsRun) list(ctx workflow.Context) error {
	specs := r.in.Projects
	if len(specs) == 0 {
		var out contract.ProjectsOutput
		if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, migrationCheckOptions), contract.ListMigrationProjects,
			contract.ProjectsInput{Deployment: r.in.From}).Get(ctx, &out); err != nil {
			return fmt.Errorf("listing the projects of %s: %w", r.in.From, err)
		}
		for _, p := range out.Projects {
			specs = append(specs, ProjectSpec{Name: p.Name})
		}
	}
	for _, s := range specs {
		mode := s.Mode
		if mode == "" {
			mode = r.in.DefaultMode
		}
		r.st.Projects = append(r.st.Projects, ProjectProgress{Name: s.Name, Mode: mode, State: ProjectPending, Owners: s.Owners, Deadline: s.Deadline})
	}
	r.st.Listed = true
	r.st.NextReminder = workflow.Now(ctx).Add(r.in.ReminderEvery)
	r.dirty = true
	return nil
}

// finished says no project is left to work on or wait for.
func (r *projectsRun) finished() bool {
	for _, p := range r.st.Projects {
		switch p.State {
		case ProjectDone, ProjectPlanned:
		case ProjectFailed:
			if !r.in.DryRun {
				return false
			}
		default:
			return false
		}
	}
	return r.inflight == 0
}

// summarize counts the projects by state.
func (r *projectsRun) summarize() {
	var parts []string
	for _, s := range []ProjectState{ProjectDone, ProjectPlanned, ProjectWaiting, ProjectRunning, ProjectFailed, ProjectPending} {
		n := 0
		for _, p := range r.st.Projects {
			if p.State == s {
				n++
			}
		}
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	prefix := ""
	if r.in.DryRun {
		prefix = "dry run: "
	}
	if len(parts) == 0 {
		parts = append(parts, "nothing to do")
	}
	r.st.Summary = fmt.Sprintf("%s%d project(s) from %s to %s: %s", prefix, len(r.st.Projects), r.in.From, r.in.To, strings.Join(parts, ", "))
}

// report sends the progress to the parent stage, if any.
func (r *projectsRun) report(ctx workflow.Context) {
	r.dirty = false
	r.lastReport = workflow.Now(ctx)
	parent := workflow.GetInfo(ctx).ParentWorkflowExecution
	if parent == nil {
		return
	}
	r.events++
	if err := workflow.SignalExternalWorkflow(ctx, parent.ID, "", SignalTaskProgress,
		TaskProgress{Summary: r.st.Summary, Projects: r.st.Projects}).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("Reporting progress to the stage failed", "error", err)
	}
}

// startPending starts pending projects, in order, while fewer than AtOnce run.
func (r *projectsRun) startPending(ctx workflow.Context) {
	for i := range r.st.Projects {
		if r.inflight >= r.in.AtOnce {
			return
		}
		p := &r.st.Projects[i]
		if p.State != ProjectPending {
			continue
		}
		p.State, p.Started = ProjectRunning, workflow.Now(ctx)
		r.inflight++
		r.dirty = true
		name := p.Name
		workflow.Go(ctx, func(ctx workflow.Context) {
			detail, state, err := r.run(ctx, name)
			p := r.project(name)
			// A person may have marked a manual project done in the meantime.
			switch {
			case p.State != ProjectRunning:
			case err != nil:
				p.State, p.Detail = ProjectFailed, failureDetail(err)
				if !r.in.DryRun {
					r.notifyProject(ctx, contract.NotifyTaskFailed, *p,
						fmt.Sprintf("project %s (%s mode) failed: %s; fix it and mark it done with %s", name, p.Mode, p.Detail, UpdateTaskDone))
				}
			default:
				p.State, p.Detail = state, detail
				if state == ProjectDone {
					p.By, p.Finished = automatedBy, workflow.Now(ctx)
				}
			}
			r.inflight--
			r.events++
			r.changed, r.dirty = true, true
		})
	}
}

// run works on one project in its mode and says what it did and where the
// project is then.
func (r *projectsRun) run(ctx workflow.Context, name string) (string, ProjectState, error) {
	p := *r.project(name)
	switch p.Mode {
	case ModeOrganic:
		var out contract.QuotaOutput
		err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, migrationCheckOptions), contract.FreezeLegacyQuota,
			contract.QuotaInput{Deployment: r.in.From, Project: name, DryRun: r.in.DryRun}).Get(ctx, &out)
		if r.in.DryRun {
			return out.Detail, ProjectPlanned, err
		}
		return out.Detail, ProjectDone, err
	case ModeManual:
		deadline := p.Deadline
		if deadline.IsZero() {
			deadline = workflow.Now(ctx).Add(r.in.ManualDeadline)
		}
		owners := "its members"
		if len(p.Owners) > 0 {
			owners = strings.Join(p.Owners, ", ")
		}
		msg := fmt.Sprintf("please migrate project %s from %s to %s by %s and then mark it done (%s with task %q)",
			name, r.in.From, r.in.To, deadline.Format(time.DateOnly), UpdateTaskDone, name)
		if r.in.DryRun {
			return fmt.Sprintf("would tell %s: %s", owners, msg), ProjectPlanned, nil
		}
		r.project(name).Deadline = deadline
		p.Deadline = deadline
		r.notifyProject(ctx, contract.NotifyProjectAssigned, p, msg)
		return fmt.Sprintf("told %s on %s; due %s", owners, workflow.Now(ctx).Format(time.DateOnly), deadline.Format(time.DateOnly)), ProjectWaiting, nil
	default:
		return r.runAutomatic(ctx, name)
	}
}

// remind reminds the owners of every waiting project.
func (r *projectsRun) remind(ctx workflow.Context) {
	var futures []workflow.Future
	for i := range r.st.Projects {
		p := &r.st.Projects[i]
		if p.State != ProjectWaiting {
			continue
		}
		p.Reminders++
		futures = append(futures, r.notifyAsync(ctx, contract.NotifyProjectReminder, *p,
			fmt.Sprintf("reminder: project %s is to be migrated from %s to %s by %s; mark it done with %s when it is",
				p.Name, r.in.From, r.in.To, p.Deadline.Format(time.DateOnly), UpdateTaskDone)))
	}
	r.wait(ctx, futures)
	r.events += len(futures)
	r.dirty = r.dirty || len(futures) > 0
}

// alertOverdue sends one alert per waiting project past its deadline, and says
// whether it sent any.
func (r *projectsRun) alertOverdue(ctx workflow.Context, now time.Time) bool {
	var futures []workflow.Future
	for i := range r.st.Projects {
		p := &r.st.Projects[i]
		if p.State != ProjectWaiting || p.Overdue || now.Before(p.Deadline) {
			continue
		}
		p.Overdue = true
		futures = append(futures, r.notifyAsync(ctx, contract.NotifyProjectOverdue, *p,
			fmt.Sprintf("project %s is overdue: it was to be migrated from %s to %s by %s", p.Name, r.in.From, r.in.To, p.Deadline.Format(time.DateOnly))))
	}
	r.wait(ctx, futures)
	r.events += len(futures)
	if len(futures) > 0 {
		r.dirty = true
	}
	return len(futures) > 0
}

// projectNotifyOptions: a notification is one line written by the worker, so an
// attempt lost with its worker is retried after a minute, not ten.
var projectNotifyOptions = workflow.ActivityOptions{
	TaskQueue:           TaskQueueMigrate,
	StartToCloseTimeout: time.Minute,
	RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 10 * time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute, MaximumAttempts: 10},
}

func (r *projectsRun) notifyAsync(ctx workflow.Context, kind string, p ProjectProgress, msg string) workflow.Future {
	return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, projectNotifyOptions), contract.MigrationNotify,
		contract.MigrationNotifyInput{From: r.in.From, To: r.in.To, Stage: "projects", Kind: kind, Open: []string{p.Name},
			Due: p.Deadline, Message: msg, Project: p.Name, Recipients: p.Owners})
}

// notifyProject sends one notification; a failure is logged, never fatal.
func (r *projectsRun) notifyProject(ctx workflow.Context, kind string, p ProjectProgress, msg string) {
	r.wait(ctx, []workflow.Future{r.notifyAsync(ctx, kind, p, msg)})
}

func (r *projectsRun) wait(ctx workflow.Context, futures []workflow.Future) {
	for _, f := range futures {
		if err := f.Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Error("Sending a project notification failed", "error", err)
		}
	}
}

// runAutomatic migrates a project with a ProjectMigration child (id
// ProjectMigrationID, the target of its pause, resume and retry updates; a dry
// run's child has "/dry-run" appended).
func (r *projectsRun) runAutomatic(ctx workflow.Context, name string) (string, ProjectState, error) {
	id := ProjectMigrationID(r.in.From, r.in.To, name)
	if r.in.DryRun {
		id += "/dry-run"
	}
	r.project(name).Workflow = id
	r.dirty = true
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: id, TaskQueue: TaskQueueMigrate})
	var out ProjectStatus
	err := workflow.ExecuteChildWorkflow(cctx, ProjectMigration, ProjectMigrationInput{
		Project: name, From: r.in.From, To: r.in.To, MaxParallel: r.in.MaxParallelVMs,
		GracePeriod: r.in.GracePeriod, DNSZone: r.in.DNSZone, DryRun: r.in.DryRun,
	}).Get(ctx, &out)
	if err != nil {
		return "", ProjectFailed, err
	}
	if r.in.DryRun {
		var servers, creates []string
		for _, s := range out.Plan.Servers {
			servers = append(servers, s.Name)
		}
		for _, res := range out.Plan.Resources {
			if res.Action == contract.ResourceWillCreate {
				creates = append(creates, res.Kind+" "+res.Name)
			}
		}
		detail := fmt.Sprintf("would migrate %d server(s) automatically", len(servers))
		if len(servers) > 0 {
			detail += ": " + strings.Join(servers, ", ")
		}
		if len(creates) > 0 {
			detail += "; would create in " + r.in.To + ": " + strings.Join(creates, ", ")
		}
		return detail, ProjectPlanned, nil
	}
	return fmt.Sprintf("%d of %d server(s) migrated automatically (%s)", out.Count(VMDone), len(out.VMs), id), ProjectDone, nil
}
