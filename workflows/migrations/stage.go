package migrations

import (
	"fmt"
	"strings"
	"time"

	"github.com/wikimedia/conveyor/workflows"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/activities/contract"
)

// StageState is where a migration stage is.
type StageState string

// The states of a stage.
const (
	// StagePending has not started, or is running its entry checks.
	StagePending StageState = "pending"
	// StageBlocked failed its entry checks; they run again every reminder interval.
	StageBlocked StageState = "blocked"
	// StageOpen passed its entry checks: its tasks are being done.
	StageOpen StageState = "open"
	// StageAwaitingApproval has every task done and waits for UpdateApproveStage.
	StageAwaitingApproval StageState = "awaiting-approval"
	// StageDone passed its exit gate.
	StageDone StageState = "done"
)

// TaskState is where a task of a stage's checklist is.
type TaskState string

// The states of a task.
const (
	TaskOpen    TaskState = "open"
	TaskRunning TaskState = "running"
	TaskDone    TaskState = "done"
	// TaskFailed is an automated task that failed for good; a person fixes what
	// is wrong and marks it done with UpdateTaskDone.
	TaskFailed TaskState = "failed"
)

// automatedBy is TaskStatus.By of a task conveyor ran.
const automatedBy = "conveyor"

// TaskStatus is one task of a stage's checklist.
type TaskStatus struct {
	Name      string    `json:"name"`
	Automated bool      `json:"automated,omitempty"`
	State     TaskState `json:"state"`
	// By is who did the task (automatedBy for conveyor), Done when.
	By   string    `json:"by,omitempty"`
	Done time.Time `json:"done,omitzero"`
	// Note is the person's note; Detail what the activity reported, or its error.
	Note   string `json:"note,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Workflow is the child workflow running the task (TaskPlan.Workflow), the
	// target of its own updates and queries.
	Workflow string `json:"workflow,omitempty"`
	// Projects is the projects driver's progress, project by project.
	Projects []ProjectProgress `json:"projects,omitempty"`
}

// StageInput is one stage of a migration, as CloudMigration starts it.
type StageInput struct {
	From  string    `json:"from"`
	To    string    `json:"to"`
	Index int       `json:"index"`
	Stage StagePlan `json:"stage"`
	// ReminderEvery and MaxEventsPerRun are as in MigrationPlan; zero means the
	// default.
	ReminderEvery   time.Duration `json:"reminderEvery,omitempty"`
	MaxEventsPerRun int           `json:"maxEventsPerRun,omitempty"`
	// State is carried across continue-as-new; nil when the stage starts.
	State *StageStatus `json:"state,omitempty"`
}

// StageStatus is QueryStage's answer, the state carried across continue-as-new,
// the progress sent to the migration and the stage's result.
type StageStatus struct {
	Name  string     `json:"name"`
	Index int        `json:"index"`
	State StageState `json:"state"`
	// Started is when the stage started; Due is Started plus the planned months.
	Started  time.Time `json:"started,omitzero"`
	Due      time.Time `json:"due,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// Overdue is set, and the alert sent, once the stage runs past Due.
	Overdue bool `json:"overdue,omitempty"`
	// Checks are the last entry checks' results.
	Checks []contract.MigrationCheckResult `json:"checks,omitempty"`
	Tasks  []TaskStatus                    `json:"tasks"`
	// Reminders counts the reminders sent; NextReminder is when the next is due.
	Reminders    int       `json:"reminders"`
	NextReminder time.Time `json:"nextReminder,omitzero"`
	ApprovedBy   string    `json:"approvedBy,omitempty"`
	Reason       string    `json:"reason,omitempty"`
	// Runs counts the stage's runs (continue-as-new) so far, this one included.
	Runs int `json:"runs"`
}

// task returns the named task, or nil.
func (s *StageStatus) task(name string) *TaskStatus {
	for i := range s.Tasks {
		if s.Tasks[i].Name == name {
			return &s.Tasks[i]
		}
	}
	return nil
}

// open lists what is left: the tasks not done, or the gate.
func (s *StageStatus) open() []string {
	if s.State == StageAwaitingApproval {
		return []string{UpdateApproveStage + " " + s.Name}
	}
	var names []string
	for _, t := range s.Tasks {
		if t.State != TaskDone {
			names = append(names, t.Name)
		}
	}
	return names
}

// MigrationStage runs one stage: entry checks (MigrationCheck, again every
// reminder interval while they fail), the automated tasks (MigrationTask, in
// checklist order), human tasks completed by UpdateTaskDone, a reminder of the open
// tasks every reminder interval and one overdue alert once the planned months have
// passed (MigrationNotify), and an exit gate passed by UpdateApproveStage. It sends
// its progress to its parent and continues as new, carrying its state, after
// MaxEventsPerRun events or when the server suggests it.
func MigrationStage(ctx workflow.Context, in StageInput) (StageStatus, error) {
	r := &stageRun{in: in, every: in.ReminderEvery, max: in.MaxEventsPerRun}
	if r.every <= 0 {
		r.every = DefaultMigrationReminderEvery
	}
	if r.max <= 0 {
		r.max = DefaultMigrationEventsPerRun
	}
	if in.State != nil {
		r.st = *in.State
	} else {
		r.st = StageStatus{Name: in.Stage.Name, Index: in.Index, State: StagePending}
		for _, t := range in.Stage.Tasks {
			r.st.Tasks = append(r.st.Tasks, TaskStatus{Name: t.Name, Automated: t.Automated, State: TaskOpen})
		}
	}
	r.st.Runs++
	if err := r.handlers(ctx); err != nil {
		return r.st, err
	}
	r.listenTaskProgress(ctx)
	if in.Stage.Name == "" || in.Stage.Months <= 0 {
		return r.st, temporal.NewNonRetryableApplicationError("the stage has no name or no planned months", contract.ErrInvalidConfig, nil)
	}
	if r.st.Started.IsZero() {
		r.st.Started = workflow.Now(ctx)
		r.st.Due = r.st.Started.AddDate(0, in.Stage.Months, 0)
		r.st.NextReminder = r.st.Started.Add(r.every)
		r.dirty = true
	}
	if r.st.State == StagePending {
		r.check(ctx)
	}
	for r.st.State != StageDone {
		// changed is cleared before anything below can block (reporting to the
		// parent, starting a task): an update that a handler takes meanwhile,
		// such as the gate's approval, then wakes the wait at the end at once.
		r.changed = false
		if r.dirty {
			r.report(ctx)
		}
		if r.running == "" && workflows.HistoryFull(ctx, r.events, r.max) {
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return r.st, err
			}
			next := in
			next.State = &r.st
			return r.st, workflow.NewContinueAsNewError(ctx, MigrationStage, next)
		}
		now := workflow.Now(ctx)
		switch {
		case !r.st.Overdue && !now.Before(r.st.Due):
			r.st.Overdue, r.dirty = true, true
			r.notify(ctx, contract.NotifyOverdue, r.st.open(),
				fmt.Sprintf("stage %s is overdue: it was planned for %d months and due on %s", r.st.Name, in.Stage.Months, r.st.Due.Format(time.DateOnly)))
			r.events++
			continue
		case !now.Before(r.st.NextReminder):
			for !now.Before(r.st.NextReminder) {
				r.st.NextReminder = r.st.NextReminder.Add(r.every)
			}
			if r.st.State == StageBlocked {
				r.check(ctx)
			} else {
				r.st.Reminders++
				r.notify(ctx, contract.NotifyReminder, r.st.open(),
					fmt.Sprintf("stage %s is due on %s; still to do: %s", r.st.Name, r.st.Due.Format(time.DateOnly), strings.Join(r.st.open(), ", ")))
			}
			r.events++
			continue
		case r.st.State == StageOpen && len(r.st.open()) == 0:
			r.st.State, r.dirty = StageAwaitingApproval, true
			r.notify(ctx, contract.NotifyGate, r.st.open(), fmt.Sprintf("every task of stage %s is done: approve it to go on", r.st.Name))
			r.events++
			continue
		case r.st.State == StageOpen && r.running == "":
			r.startNextTask(ctx)
		}
		wake := r.st.NextReminder
		if !r.st.Overdue && r.st.Due.Before(wake) {
			wake = r.st.Due
		}
		r.describe(ctx)
		if _, err := workflow.AwaitWithTimeout(ctx, wake.Sub(now), func() bool { return r.changed }); err != nil {
			return r.st, err
		}
	}
	r.describe(ctx)
	return r.st, nil
}

// stageRun is one run's state.
type stageRun struct {
	in    StageInput
	st    StageStatus
	every time.Duration
	max   int
	// events counts what this run handled, for continue-as-new.
	events int
	// running names the automated task in flight, if any.
	running string
	// changed wakes the main loop; dirty says the parent has not seen the state.
	changed, dirty bool
}

// check runs the entry checks and opens the stage if they pass. A failure to run
// them counts as a failed check.
func (r *stageRun) check(ctx workflow.Context) {
	r.dirty = true
	if len(r.in.Stage.EntryChecks) == 0 {
		r.st.State = StageOpen
		return
	}
	var out contract.MigrationCheckOutput
	err := workflows.Execute(workflow.WithActivityOptions(ctx, migrationCheckOptions), contract.MigrationCheck,
		contract.MigrationCheckInput{From: r.in.From, To: r.in.To, Stage: r.st.Name, Checks: r.in.Stage.EntryChecks}).Get(ctx, &out)
	if err != nil {
		out.Results = []contract.MigrationCheckResult{{Name: "entry checks", Detail: workflows.ErrorDetail(err)}}
	}
	r.st.Checks = out.Results
	var failed []string
	for _, c := range out.Results {
		if !c.OK {
			failed = append(failed, c.Name)
		}
	}
	if len(failed) == 0 {
		r.st.State = StageOpen
		return
	}
	r.st.State = StageBlocked
	r.notify(ctx, contract.NotifyBlocked, failed, fmt.Sprintf("stage %s is blocked: entry checks failed: %s; checking again on %s",
		r.st.Name, strings.Join(failed, ", "), r.st.NextReminder.Format(time.DateOnly)))
}

// startNextTask starts the first open automated task in the background.
func (r *stageRun) startNextTask(ctx workflow.Context) {
	var t *TaskStatus
	for i := range r.st.Tasks {
		if r.st.Tasks[i].Automated && r.st.Tasks[i].State == TaskOpen {
			t = &r.st.Tasks[i]
			break
		}
	}
	if t == nil {
		return
	}
	name := t.Name
	r.running, t.State, r.dirty = name, TaskRunning, true
	if plan := r.in.Stage.taskPlan(name); plan != nil && plan.Workflow != "" {
		r.startTaskWorkflow(ctx, *plan)
		return
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		var out contract.MigrationTaskOutput
		err := workflows.Execute(workflow.WithActivityOptions(ctx, migrationTaskOptions), contract.MigrationTask,
			contract.MigrationTaskInput{From: r.in.From, To: r.in.To, Stage: r.st.Name, Task: name}).Get(ctx, &out)
		t := r.st.task(name)
		if err != nil {
			t.State, t.Detail = TaskFailed, workflows.ErrorDetail(err)
			r.notify(ctx, contract.NotifyTaskFailed, []string{name},
				fmt.Sprintf("task %q of stage %s failed: %s; fix it and mark it done with %s", name, r.st.Name, t.Detail, UpdateTaskDone))
		} else {
			t.State, t.By, t.Done, t.Detail = TaskDone, automatedBy, workflow.Now(ctx), out.Detail
		}
		r.running = ""
		r.events++
		r.changed, r.dirty = true, true
	})
}

// notify sends a notification; a failure is logged, never fatal to the stage.
func (r *stageRun) notify(ctx workflow.Context, kind string, open []string, msg string) {
	err := workflows.Execute(workflow.WithActivityOptions(ctx, migrationNotifyOptions), contract.MigrationNotify,
		contract.MigrationNotifyInput{From: r.in.From, To: r.in.To, Stage: r.st.Name, Kind: kind, Open: open, Due: r.st.Due, Message: msg}).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Error("Sending a migration notification failed", "stage", r.st.Name, "kind", kind, "error", err)
	}
}

// report sends the state to the parent migration, if any.
func (r *stageRun) report(ctx workflow.Context) {
	r.dirty = false
	parent := workflow.GetInfo(ctx).ParentWorkflowExecution
	if parent == nil {
		return
	}
	r.events++
	if err := workflow.SignalExternalWorkflow(ctx, parent.ID, "", SignalStageProgress, r.st).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("Reporting progress to the migration failed", "stage", r.st.Name, "error", err)
	}
}

// Activity options of the migrate pool. Checks and notifications are short;
// automated tasks may run for hours and heartbeat. A task failing with
// ErrMigrationTaskFailed is not retried: it waits for a person.
var (
	migrationRetry = &temporal.RetryPolicy{
		InitialInterval:        10 * time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        time.Hour,
		MaximumAttempts:        20,
		NonRetryableErrorTypes: []string{contract.ErrInvalidConfig, contract.ErrMigrationTaskFailed},
	}
	migrationCheckOptions = workflow.ActivityOptions{
		TaskQueue:           workflows.TaskQueueMigrate,
		StartToCloseTimeout: 10 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 10 * time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute, MaximumAttempts: 5},
	}
	migrationNotifyOptions = migrationCheckOptions
	migrationTaskOptions   = workflow.ActivityOptions{
		TaskQueue:           workflows.TaskQueueMigrate,
		StartToCloseTimeout: 24 * time.Hour,
		HeartbeatTimeout:    10 * time.Minute,
		RetryPolicy:         migrationRetry,
	}
)
