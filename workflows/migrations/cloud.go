package migrations

import (
	"encoding/json"
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

// Updates, queries and signals of the cloud migration workflows.
const (
	// UpdateTaskDone marks a human task of a stage done; sent to the stage's
	// workflow (MigrationStageID) with a TaskCompletion.
	UpdateTaskDone = "task-done"
	// UpdateApproveStage passes a stage's exit gate; sent to the stage's workflow
	// with a StageApproval once every task is done.
	UpdateApproveStage = "approve-stage"
	// QueryPlan returns CloudMigration's MigrationStatus: the whole plan.
	QueryPlan = "plan"
	// QueryStage returns MigrationStage's StageStatus.
	QueryStage = "stage"
	// SignalStageProgress carries a StageStatus from a stage to its migration,
	// so that QueryPlan shows every task without asking the stage.
	SignalStageProgress = "stage-progress"
)

// Defaults of MigrationPlan.
const (
	// DefaultMigrationReminderEvery is how often a stage's open tasks are sent as a reminder.
	DefaultMigrationReminderEvery = 7 * 24 * time.Hour
	// DefaultMigrationEventsPerRun bounds the events (updates, reminders, checks,
	// tasks) one run of a stage, or stages one run of a migration, handles before
	// continuing as new.
	DefaultMigrationEventsPerRun = 500
)

// Months: a stage's planned duration is counted in calendar months from the day it
// starts, with time.AddDate, so a stage started on 15 March with 3 months is due on
// 15 June. Like AddDate, a day that does not exist in the target month rolls over
// (31 January plus one month is 3 March in a non-leap year); start plans before the
// 29th to avoid it.

// MigrationPlan is one pair of deployments moved from one to the other, stage by
// stage.
type MigrationPlan struct {
	// From and To are the deployments, e.g. "eqiad1" and "eqiad2".
	From string `json:"from"`
	To   string `json:"to"`
	// Start is the baseline's start, from which the planned dates are counted;
	// zero means when the workflow starts.
	Start time.Time `json:"start,omitzero"`
	// Stages run in this order; DefaultMigrationStages gives the usual five.
	Stages []StagePlan `json:"stages"`
	// ReminderEvery is how often each stage reminds of its open tasks; zero means
	// DefaultMigrationReminderEvery.
	ReminderEvery time.Duration `json:"reminderEvery,omitempty"`
	// MaxEventsPerRun is the continue-as-new threshold of the stages and of the
	// migration itself; zero means DefaultMigrationEventsPerRun.
	MaxEventsPerRun int `json:"maxEventsPerRun,omitempty"`
	// State is carried across continue-as-new; nil when the migration starts.
	State *MigrationStatus `json:"state,omitempty"`
}

// StagePlan is one stage: what must hold before it starts, what must be done, and
// how long it should take.
type StagePlan struct {
	// Name is unique within the plan, e.g. "bootstrap".
	Name string `json:"name" yaml:"name"`
	// Months is the planned duration in calendar months; the overdue alert fires
	// once it has passed.
	Months int `json:"months" yaml:"months"`
	// EntryChecks are run by MigrationCheck before the automated tasks start.
	EntryChecks []string `json:"entryChecks,omitempty" yaml:"entryChecks,omitempty"`
	// Tasks is the checklist.
	Tasks []TaskPlan `json:"tasks" yaml:"tasks"`
}

// TaskPlan is one task of a stage's checklist.
type TaskPlan struct {
	// Name is unique within the stage, e.g. "racks delivered".
	Name string `json:"name" yaml:"name"`
	// Automated tasks run as MigrationTask, in checklist order, once the entry
	// checks pass; the others wait for UpdateTaskDone.
	Automated bool `json:"automated,omitempty" yaml:"automated,omitempty"`
	// Workflow, for an automated task, runs it as this child workflow instead of
	// MigrationTask: one of TaskWorkflows (TestBattery, ProjectsMigration,
	// Cleanup), with id MigrationTaskID.
	Workflow string `json:"workflow,omitempty" yaml:"workflow,omitempty"`
	// Input is the child workflow's input, a JSON object; the stage sets its
	// "from" and "to".
	Input json.RawMessage `json:"input,omitempty" yaml:"-"`
}

// taskPlanFile is a TaskPlan as a plan file (YAML) writes it: the input as a YAML
// object instead of raw JSON, every other field as it is.
type taskPlanFile struct {
	taskPlan `yaml:",inline"`
	Input    map[string]any `yaml:"input,omitempty"`
}

// taskPlan is TaskPlan without its methods.
type taskPlan TaskPlan

// UnmarshalYAML reads a task of a plan file (gopkg.in/yaml.v3 calls it; the
// function form needs no import of the YAML package here).
func (t *TaskPlan) UnmarshalYAML(unmarshal func(any) error) error {
	var f taskPlanFile
	if err := unmarshal(&f); err != nil {
		return err
	}
	*t = TaskPlan(f.taskPlan)
	if f.Input != nil {
		b, err := json.Marshal(f.Input)
		if err != nil {
			return fmt.Errorf("task %q: input: %w", t.Name, err)
		}
		t.Input = b
	}
	return nil
}

// MarshalYAML writes a task in the plan file's form.
func (t TaskPlan) MarshalYAML() (any, error) {
	f := taskPlanFile{taskPlan: taskPlan(t)}
	if len(t.Input) > 0 {
		if err := json.Unmarshal(t.Input, &f.Input); err != nil {
			return nil, fmt.Errorf("task %q: input: %w", t.Name, err)
		}
	}
	return f, nil
}

// DefaultMigrationStages is the plan of the issue: plan and procure hardware (6
// months), bootstrap the new deployment (3), testing (3), migration (12), cleanup
// (3): 27 months. The checklists are a starting point to edit: the entry checks
// and automated tasks are those activities/openstack knows (docs/migration.md);
// testing runs TestBattery, migration ProjectsMigration (every project of the
// legacy deployment, in manual mode) and cleanup Cleanup.
func DefaultMigrationStages() []StagePlan {
	human := func(name string) TaskPlan { return TaskPlan{Name: name} }
	auto := func(name string) TaskPlan { return TaskPlan{Name: name, Automated: true} }
	flow := func(name, wf string) TaskPlan { return TaskPlan{Name: name, Automated: true, Workflow: wf} }
	return []StagePlan{
		{Name: "procure", Months: 6, EntryChecks: []string{"legacy api up"},
			Tasks: []TaskPlan{human("hardware ordered"), human("racks delivered"), auto("hosts provisioned")}},
		{Name: "bootstrap", Months: 3, EntryChecks: []string{"hosts reachable"},
			Tasks: []TaskPlan{auto("kubernetes installed"), human("openstack-helm deployed"), auto("networks created")}},
		{Name: "testing", Months: 3, EntryChecks: []string{"api endpoints up"},
			Tasks: []TaskPlan{flow("test battery passed", WorkflowTestBattery), human("test projects signed off")}},
		{Name: "migration", Months: 12, EntryChecks: []string{"capacity available"},
			Tasks: []TaskPlan{human("users announced"), flow("projects migrated", WorkflowProjectsMigration), human("stragglers migrated")}},
		{Name: "cleanup", Months: 3, EntryChecks: []string{"old deployment empty"},
			Tasks: []TaskPlan{flow("leftovers deleted", WorkflowCleanup), auto("old hosts drained"), human("hardware decommissioned")}},
	}
}

// Validate reports the first problem of the plan.
func (p MigrationPlan) Validate() error {
	switch {
	case p.From == "" || p.To == "":
		return errors.New("from and to must name the deployments, e.g. from codfw1dev to codfw2dev")
	case p.From == p.To:
		return fmt.Errorf("from and to are both %q: migrate between two deployments", p.From)
	case len(p.Stages) == 0:
		return errors.New("stages is empty: list the stages, e.g. DefaultMigrationStages()")
	case p.ReminderEvery < 0 || p.MaxEventsPerRun < 0:
		return errors.New("reminderEvery and maxEventsPerRun must not be negative")
	}
	var names []string
	for i, s := range p.Stages {
		switch {
		case s.Name == "":
			return fmt.Errorf("stages[%d].name is empty", i)
		case slices.Contains(names, s.Name):
			return fmt.Errorf("stages[%d].name: %q is used by an earlier stage", i, s.Name)
		case s.Months <= 0:
			return fmt.Errorf("stages[%d].months is %d: plan at least one month", i, s.Months)
		}
		names = append(names, s.Name)
		var tasks []string
		for j, t := range s.Tasks {
			if t.Name == "" || slices.Contains(tasks, t.Name) {
				return fmt.Errorf("stages[%d].tasks[%d].name %q is empty or repeated", i, j, t.Name)
			}
			if err := t.validateWorkflow(); err != nil {
				return fmt.Errorf("stages[%d].tasks[%d] (%s): %w", i, j, t.Name, err)
			}
			tasks = append(tasks, t.Name)
		}
	}
	return nil
}

// reminderEvery and maxEvents apply the defaults.
func (p MigrationPlan) reminderEvery() time.Duration {
	if p.ReminderEvery > 0 {
		return p.ReminderEvery
	}
	return DefaultMigrationReminderEvery
}

func (p MigrationPlan) maxEvents() int {
	if p.MaxEventsPerRun > 0 {
		return p.MaxEventsPerRun
	}
	return DefaultMigrationEventsPerRun
}

// MigrationID is the workflow id of the migration of one pair.
func MigrationID(from, to string) string { return "migration/" + from + "-" + to }

// MigrationStageID is the workflow id of stage index (0-based) of the migration of
// one pair: the target of UpdateTaskDone and UpdateApproveStage.
func MigrationStageID(from, to string, index int, stage string) string {
	return fmt.Sprintf("%s/%d-%s", MigrationID(from, to), index+1, strings.ReplaceAll(stage, " ", "-"))
}

// MigrationStatus is QueryPlan's answer, the state carried across continue-as-new
// and the migration's result.
type MigrationStatus struct {
	From  string    `json:"from"`
	To    string    `json:"to"`
	Start time.Time `json:"start"`
	// PlannedEnd is the baseline's end; Finished is set once the last gate passed.
	PlannedEnd time.Time `json:"plannedEnd"`
	Finished   time.Time `json:"finished,omitzero"`
	// Current is the index of the stage running, or len(Stages) when done.
	Current int            `json:"current"`
	Stages  []StageSummary `json:"stages"`
	// Runs counts the migration's runs (continue-as-new) so far, this one included.
	Runs int `json:"runs"`
}

// StageSummary is one stage as the plan shows it.
type StageSummary struct {
	Name  string     `json:"name"`
	State StageState `json:"state"`
	// PlannedStart and PlannedEnd are the baseline, counted from the plan's start.
	PlannedStart time.Time `json:"plannedStart"`
	PlannedEnd   time.Time `json:"plannedEnd"`
	// Started, Due (Started plus the planned months) and Finished are the actuals.
	Started  time.Time `json:"started,omitzero"`
	Due      time.Time `json:"due,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// Overdue is set once the stage ran past Due.
	Overdue bool `json:"overdue,omitempty"`
	// Reminders counts the reminders sent about the stage.
	Reminders  int          `json:"reminders"`
	TasksDone  int          `json:"tasksDone"`
	Tasks      []TaskStatus `json:"tasks"`
	ApprovedBy string       `json:"approvedBy,omitempty"`
}

// Overdue lists the stages that ran, or are running, past their due date.
func (s MigrationStatus) Overdue() []string {
	var names []string
	for _, st := range s.Stages {
		if st.Overdue {
			names = append(names, st.Name)
		}
	}
	return names
}

// CloudMigration runs the stages of one pair in order, each as a MigrationStage
// child workflow with id MigrationStageID, and answers QueryPlan with the whole
// plan: planned and actual dates, tasks and overdue stages. Stages report their
// progress with SignalStageProgress. Between stages, after MaxEventsPerRun events
// (stages and progress signals) or when the server suggests it, the migration continues as new with its state.
func CloudMigration(ctx workflow.Context, in MigrationPlan) (MigrationStatus, error) {
	if err := in.Validate(); err != nil {
		return MigrationStatus{}, temporal.NewNonRetryableApplicationError(err.Error(), contract.ErrInvalidConfig, nil)
	}
	var st MigrationStatus
	if in.State != nil {
		st = *in.State
	} else {
		st = newMigrationStatus(in, workflow.Now(ctx))
	}
	st.Runs++
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryPlan, func() (MigrationStatus, error) { return st, nil },
		workflow.QueryHandlerOptions{Description: "Every stage with its state, planned and actual dates, tasks and whether it is overdue"}); err != nil {
		return st, err
	}
	progress := workflow.GetSignalChannel(ctx, SignalStageProgress)
	apply := func(s StageStatus) {
		// Late signals of a finished stage must not undo its result.
		if s.Index == st.Current && s.Index < len(st.Stages) && st.Stages[s.Index].State != StageDone {
			st.Stages[s.Index] = summarize(st.Stages[s.Index], s)
		}
	}
	// Events are stages run and progress received. The migration continues as new
	// only between stages: a running child would be closed with this run.
	events := 0
	for st.Current < len(in.Stages) {
		if workflows.HistoryFull(ctx, events, in.maxEvents()) {
			for {
				var s StageStatus
				if !progress.ReceiveAsync(&s) {
					break
				}
				apply(s)
			}
			next := in
			next.State = &st
			return st, workflow.NewContinueAsNewError(ctx, CloudMigration, next)
		}
		i := st.Current
		_ = workflow.UpsertTypedSearchAttributes(ctx, workflows.StepKey.ValueSet(in.Stages[i].Name))
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID: MigrationStageID(in.From, in.To, i, in.Stages[i].Name),
		})
		child := workflow.ExecuteChildWorkflow(cctx, MigrationStage, StageInput{
			From: in.From, To: in.To, Index: i, Stage: in.Stages[i],
			ReminderEvery: in.reminderEvery(), MaxEventsPerRun: in.maxEvents(),
		})
		var result StageStatus
		var childErr error
		for done := false; !done; {
			workflow.SetCurrentDetails(ctx, migrationDetails(st, MigrationStageID(in.From, in.To, i, in.Stages[i].Name)))
			sel := workflow.NewSelector(ctx)
			sel.AddReceive(progress, func(c workflow.ReceiveChannel, _ bool) {
				var s StageStatus
				c.Receive(ctx, &s)
				apply(s)
				events++
			})
			sel.AddFuture(child, func(f workflow.Future) {
				childErr = f.Get(ctx, &result)
				done = true
			})
			sel.Select(ctx)
		}
		if childErr != nil {
			return st, fmt.Errorf("running stage %s: %w", in.Stages[i].Name, childErr)
		}
		st.Stages[i] = summarize(st.Stages[i], result)
		st.Current++
		events++
	}
	st.Finished = workflow.Now(ctx)
	workflow.SetCurrentDetails(ctx, migrationDetails(st, ""))
	return st, nil
}

// newMigrationStatus lays out the baseline: each stage starts when the one before
// is planned to end.
func newMigrationStatus(in MigrationPlan, now time.Time) MigrationStatus {
	start := in.Start
	if start.IsZero() {
		start = now
	}
	st := MigrationStatus{From: in.From, To: in.To, Start: start}
	at := start
	for _, s := range in.Stages {
		end := at.AddDate(0, s.Months, 0)
		sum := StageSummary{Name: s.Name, State: StagePending, PlannedStart: at, PlannedEnd: end}
		for _, t := range s.Tasks {
			sum.Tasks = append(sum.Tasks, TaskStatus{Name: t.Name, Automated: t.Automated, State: TaskOpen})
		}
		st.Stages = append(st.Stages, sum)
		at = end
	}
	st.PlannedEnd = at
	return st
}

// summarize updates a stage's line of the plan from the stage's own status.
func summarize(sum StageSummary, s StageStatus) StageSummary {
	sum.State, sum.Started, sum.Due, sum.Finished = s.State, s.Started, s.Due, s.Finished
	sum.Overdue, sum.Reminders, sum.Tasks, sum.ApprovedBy = s.Overdue, s.Reminders, s.Tasks, s.ApprovedBy
	sum.TasksDone = 0
	for _, t := range s.Tasks {
		if t.State == TaskDone {
			sum.TasksDone++
		}
	}
	return sum
}
