package migrations

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"
)

// The human side of a stage: the updates that complete tasks and pass the exit
// gate, with the validators that refuse what makes no sense.

// TaskCompletion is UpdateTaskDone's argument.
type TaskCompletion struct {
	Task string `json:"task"`
	By   string `json:"by"`
	Note string `json:"note,omitempty"`
}

// StageApproval is UpdateApproveStage's argument. Stage must name the stage, so
// that an approval sent to the wrong workflow is refused.
type StageApproval struct {
	Stage  string `json:"stage"`
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"`
}

// handlers registers the query and the updates.
func (r *stageRun) handlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryStage, func() (StageStatus, error) { return r.st, nil },
		workflow.QueryHandlerOptions{Description: "The stage's state, dates, entry checks, tasks and reminders"}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateTaskDone, func(ctx workflow.Context, d TaskCompletion) (TaskStatus, error) {
		t := r.st.task(d.Task)
		t.State, t.By, t.Note, t.Done = TaskDone, d.By, d.Note, workflow.Now(ctx)
		r.events++
		r.changed, r.dirty = true, true
		return *t, nil
	}, workflow.UpdateHandlerOptions{Validator: r.validateTaskDone, Description: "Mark a human task (or a failed automated one) done: {task, by, note}"}); err != nil {
		return err
	}
	return workflow.SetUpdateHandlerWithOptions(ctx, UpdateApproveStage, func(ctx workflow.Context, a StageApproval) (StageStatus, error) {
		r.st.State, r.st.Finished = StageDone, workflow.Now(ctx)
		r.st.ApprovedBy, r.st.Reason = a.By, a.Reason
		r.events++
		r.changed, r.dirty = true, true
		return r.st, nil
	}, workflow.UpdateHandlerOptions{Validator: r.validateApproval, Description: "Pass the stage's exit gate once every task is done: {stage, by, reason}"})
}

func (r *stageRun) validateTaskDone(d TaskCompletion) error {
	t := r.st.task(d.Task)
	switch {
	case strings.TrimSpace(d.By) == "":
		return errors.New("by is empty: say who did the task")
	case r.st.State == StageDone:
		return fmt.Errorf("stage %s is done: its tasks cannot change", r.st.Name)
	case t == nil:
		var names []string
		for _, t := range r.st.Tasks {
			names = append(names, fmt.Sprintf("%q", t.Name))
		}
		return fmt.Errorf("stage %s has no task %q: its tasks are %s", r.st.Name, d.Task, strings.Join(names, ", "))
	case t.State == TaskDone:
		return fmt.Errorf("task %q is already done (by %s on %s)", t.Name, t.By, t.Done.Format(time.DateOnly))
	case t.Automated && t.State != TaskFailed:
		return fmt.Errorf("task %q is automated and %s: conveyor runs it; mark it done only once it has failed", t.Name, t.State)
	}
	return nil
}

func (r *stageRun) validateApproval(a StageApproval) error {
	switch {
	case strings.TrimSpace(a.By) == "":
		return errors.New("by is empty: say who approves the stage")
	case a.Stage != r.st.Name:
		return fmt.Errorf("this workflow runs stage %q, not %q: send the approval to %s", r.st.Name, a.Stage,
			MigrationStageID(r.in.From, r.in.To, r.in.Index, a.Stage))
	case r.st.State == StageDone:
		return fmt.Errorf("stage %s was already approved by %s", r.st.Name, r.st.ApprovedBy)
	case r.st.State == StageBlocked:
		return fmt.Errorf("stage %s is blocked on its entry checks", r.st.Name)
	case r.st.State != StageAwaitingApproval:
		return fmt.Errorf("stage %s still has open tasks: %s", r.st.Name, strings.Join(r.st.open(), ", "))
	}
	return nil
}
