package migrations

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wikimedia/conveyor/workflows"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/activities/contract"
)

// The projects driver's run: its handlers, and how it works on, reminds about and
// reports each project.

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
		if err := workflows.Execute(workflow.WithActivityOptions(ctx, migrationCheckOptions), contract.ListMigrationProjects,
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
				p.State, p.Detail = ProjectFailed, workflows.ErrorDetail(err)
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
		err := workflows.Execute(workflow.WithActivityOptions(ctx, migrationCheckOptions), contract.FreezeLegacyQuota,
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
	TaskQueue:           workflows.TaskQueueMigrate,
	StartToCloseTimeout: time.Minute,
	RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 10 * time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute, MaximumAttempts: 10},
}

func (r *projectsRun) notifyAsync(ctx workflow.Context, kind string, p ProjectProgress, msg string) workflow.Future {
	return workflows.Execute(workflow.WithActivityOptions(ctx, projectNotifyOptions), contract.MigrationNotify,
		contract.MigrationNotifyInput{From: r.in.From, To: r.in.To, Stage: "projects", Kind: kind, Open: []string{p.Name},
			Due: p.Deadline, Message: msg, Project: p.Name, Recipients: p.Owners}).Untyped()
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
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: id, TaskQueue: workflows.TaskQueueMigrate})
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
