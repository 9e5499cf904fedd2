package migrations

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/wikimedia/conveyor/workflows"

	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/activities/contract"
)

// Automated tasks that are workflows of their own: a stage runs a task whose plan
// names a Workflow as a child (id MigrationTaskID) instead of a MigrationTask
// activity, and shows the child's progress (SignalTaskProgress) on the task.

// The workflows a stage's task can run as (TaskPlan.Workflow).
const (
	// WorkflowTestBattery is TestBattery, the stage-3 test battery.
	WorkflowTestBattery = "TestBattery"
	// WorkflowProjectsMigration is ProjectsMigration, the stage-4 driver.
	WorkflowProjectsMigration = "ProjectsMigration"
	// WorkflowCleanup is Cleanup, the stage-5 cleanup of leftovers.
	WorkflowCleanup = "Cleanup"
)

// TaskWorkflows lists the workflows a task can run as.
var TaskWorkflows = []string{WorkflowTestBattery, WorkflowProjectsMigration, WorkflowCleanup}

// SignalTaskProgress carries a TaskProgress from a task's workflow to its stage,
// which shows it on the running task (and so in QueryPlan).
const SignalTaskProgress = "task-progress"

// TaskProgress is a task workflow's progress; its result decodes into it too.
type TaskProgress struct {
	// Summary is one line, shown as the task's detail.
	Summary string `json:"summary"`
	// Projects is the projects driver's per-project progress.
	Projects []ProjectProgress `json:"projects,omitempty"`
}

// MigrationTaskID is the workflow id of the task workflow running task of the
// stage whose workflow id (MigrationStageID) is stageID.
func MigrationTaskID(stageID, task string) string {
	return stageID + "/" + strings.ReplaceAll(task, " ", "-")
}

// taskPlan returns the named task's plan, or nil.
func (s StagePlan) taskPlan(name string) *TaskPlan {
	for i := range s.Tasks {
		if s.Tasks[i].Name == name {
			return &s.Tasks[i]
		}
	}
	return nil
}

// validateWorkflow checks Workflow and Input.
func (t TaskPlan) validateWorkflow() error {
	if t.Workflow == "" {
		if len(t.Input) > 0 {
			return errors.New("input is set but workflow is empty: input is for a task run as a workflow")
		}
		return nil
	}
	if !t.Automated {
		return fmt.Errorf("workflow %q is set but automated is not: a task run as a workflow is automated", t.Workflow)
	}
	if !slices.Contains(TaskWorkflows, t.Workflow) {
		return fmt.Errorf("workflow %q is not one a stage can run: use one of %s", t.Workflow, strings.Join(TaskWorkflows, ", "))
	}
	if len(t.Input) > 0 {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(t.Input, &m); err != nil {
			return fmt.Errorf("input is not a JSON object: %w", err)
		}
	}
	return nil
}

// taskWorkflowInput is the child's input: the plan's object with from and to set.
func taskWorkflowInput(raw json.RawMessage, from, to string) (map[string]json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("the task's input is not a JSON object: %w", err)
		}
	}
	f, _ := json.Marshal(from)
	t, _ := json.Marshal(to)
	m["from"], m["to"] = f, t
	return m, nil
}

// startTaskWorkflow runs the automated task plan as its child workflow in the
// background; its end is handled like MigrationTask's.
func (r *stageRun) startTaskWorkflow(ctx workflow.Context, plan TaskPlan) {
	name := plan.Name
	// The id derives from the input, not from GetInfo, so that a history replays
	// under any workflow id.
	id := MigrationTaskID(MigrationStageID(r.in.From, r.in.To, r.in.Index, r.in.Stage.Name), name)
	r.st.task(name).Workflow = id
	workflow.Go(ctx, func(ctx workflow.Context) {
		var out TaskProgress
		input, err := taskWorkflowInput(plan.Input, r.in.From, r.in.To)
		if err == nil {
			cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: id, TaskQueue: workflows.TaskQueueMigrate})
			err = workflow.ExecuteChildWorkflow(cctx, plan.Workflow, input).Get(ctx, &out)
		}
		t := r.st.task(name)
		if out.Projects != nil {
			t.Projects = out.Projects
		}
		if err != nil {
			t.State, t.Detail = TaskFailed, workflows.ErrorDetail(err)
			r.notify(ctx, contract.NotifyTaskFailed, []string{name},
				fmt.Sprintf("task %q of stage %s (workflow %s) failed: %s; fix it and mark it done with %s", name, r.st.Name, id, t.Detail, UpdateTaskDone))
		} else {
			t.State, t.By, t.Done, t.Detail = TaskDone, automatedBy, workflow.Now(ctx), out.Summary
		}
		r.running = ""
		r.events++
		r.changed, r.dirty = true, true
	})
}

// listenTaskProgress shows the progress task workflows send on the running task.
func (r *stageRun) listenTaskProgress(ctx workflow.Context) {
	ch := workflow.GetSignalChannel(ctx, SignalTaskProgress)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var p TaskProgress
			ch.Receive(ctx, &p)
			t := r.st.task(r.running)
			if t == nil || t.Workflow == "" {
				continue
			}
			t.Detail, t.Projects = p.Summary, p.Projects
			r.events++
			r.changed, r.dirty = true, true
		}
	})
}
