package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/internal/temporalclient"
	"github.com/wikimedia/conveyor/workflows"
)

func migrateApproveCommand() *cli.Command {
	return &cli.Command{
		Name:      "approve",
		Usage:     "pass a stage's exit gate once every task of it is done",
		UsageText: "conveyor migrate approve --from NAME --to NAME --approver WHO [--stage NAME] [--reason TEXT] [--dry-run]",
		Description: "Sends the approve-stage update to the stage's workflow. The stage refuses it, and\n" +
			"nothing changes, while tasks are open, while its entry checks fail, or once it is\n" +
			"approved; the refusal says why. Who approved, when and why stay in the stage's\n" +
			"history and in `conveyor migrate status`. --dry-run prints the update and\n" +
			"whether the stage would accept it now, and sends nothing.\n\n" +
			"Examples:\n\n" +
			"   conveyor migrate approve --from codfw1dev --to codfw2dev --approver bob --reason 'racks in place'\n" +
			"   conveyor migrate approve --from codfw1dev --to codfw2dev --stage procure --approver bob --dry-run",
		Flags: append(append(pairFlags(),
			&cli.StringFlag{Name: "stage", Usage: "the stage `NAME` to approve", DefaultText: "the current stage"},
			&cli.StringFlag{Name: "approver", Usage: "who approves (`NAME`), recorded in the history"},
			&cli.StringFlag{Name: "reason", Usage: "why, in a few words (`TEXT`)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "say what would be sent, send nothing"},
		), temporalclient.Flags()...),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			from, to, err := pairOf(c)
			if err != nil {
				return err
			}
			who := strings.TrimSpace(c.String("approver"))
			if who == "" {
				return errors.New("--approver is required: say who approves the stage, e.g. --approver bob")
			}
			_, cl, err := dialFromCLI(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			return approveStage(c.Context, cl, c.App.Writer, from, to, c.String("stage"),
				workflows.StageApproval{By: who, Reason: c.String("reason")}, c.Bool("dry-run"))
		},
	}
}

// approveStage sends UpdateApproveStage to the named (or current) stage.
func approveStage(ctx context.Context, cl client.Client, w io.Writer, from, to, stage string, a workflows.StageApproval, dryRun bool) error {
	st, err := queryPlan(ctx, cl, from, to)
	if err != nil {
		return err
	}
	i, err := stageIndex(st, stage)
	if err != nil {
		return err
	}
	s := st.Stages[i]
	a.Stage = s.Name
	id := workflows.MigrationStageID(from, to, i, s.Name)
	if dryRun {
		fmt.Fprintf(w, "dry run: would send %s {stage: %q, by: %q, reason: %q} to %s\n", workflows.UpdateApproveStage, a.Stage, a.By, a.Reason, id)
		switch {
		case s.State == workflows.StageAwaitingApproval:
			fmt.Fprintf(w, "stage %s awaits approval: it would pass its gate and the next stage would start\n", s.Name)
		case s.State == workflows.StageDone:
			fmt.Fprintf(w, "stage %s was already approved by %s: it would be refused\n", s.Name, s.ApprovedBy)
		default:
			fmt.Fprintf(w, "stage %s is %s with %d/%d tasks done: it would be refused\n", s.Name, s.State, s.TasksDone, len(s.Tasks))
		}
		return nil
	}
	if s.State == workflows.StageDone {
		return fmt.Errorf("stage %s was already approved by %s on %s", s.Name, s.ApprovedBy, day(s.Finished))
	}
	h, err := cl.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: id, UpdateName: workflows.UpdateApproveStage, Args: []any{a},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return refused(err, id, "stage "+s.Name)
	}
	var res workflows.StageStatus
	if err := h.Get(ctx, &res); err != nil {
		return refused(err, id, "stage "+s.Name)
	}
	fmt.Fprintf(w, "stage %s approved by %s on %s\n", res.Name, res.ApprovedBy, day(res.Finished))
	return nil
}

func migrateTaskDoneCommand() *cli.Command {
	return &cli.Command{
		Name:      "task-done",
		Usage:     "mark a human task (or a failed automated one) of a stage done",
		UsageText: "conveyor migrate task-done --from NAME --to NAME --task NAME --by WHO [--stage NAME] [--note TEXT] [--dry-run]",
		Description: "Sends the task-done update to the stage's workflow, recording who did the task,\n" +
			"when, and a note. Automated tasks are run by conveyor: mark one done only after it\n" +
			"failed and you did its work by hand. The stage refuses an unknown, finished or\n" +
			"running task and says which tasks it has. --dry-run sends nothing.\n\n" +
			"Examples:\n\n" +
			"   conveyor migrate task-done --from codfw1dev --to codfw2dev --task 'hardware ordered' --by alice\n" +
			"   conveyor migrate task-done --from codfw1dev --to codfw2dev --stage bootstrap --task 'openstack-helm deployed' --by alice --note 'chart 1.2'",
		Flags: append(append(pairFlags(),
			&cli.StringFlag{Name: "stage", Usage: "the stage `NAME` the task belongs to", DefaultText: "the current stage"},
			&cli.StringFlag{Name: "task", Usage: "the task's `NAME`, as status lists it"},
			&cli.StringFlag{Name: "by", Usage: "who did the task (`NAME`)"},
			&cli.StringFlag{Name: "note", Usage: "a note (`TEXT`), e.g. a ticket"},
			&cli.BoolFlag{Name: "dry-run", Usage: "say what would be sent, send nothing"},
		), temporalclient.Flags()...),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			from, to, err := pairOf(c)
			if err != nil {
				return err
			}
			d := workflows.TaskCompletion{Task: strings.TrimSpace(c.String("task")), By: strings.TrimSpace(c.String("by")), Note: c.String("note")}
			switch {
			case d.Task == "":
				return errors.New("--task is required: name the task as `conveyor migrate status` lists it, e.g. --task 'hardware ordered'")
			case d.By == "":
				return errors.New("--by is required: say who did the task, e.g. --by alice")
			}
			_, cl, err := dialFromCLI(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			return taskDone(c.Context, cl, c.App.Writer, from, to, c.String("stage"), d, c.Bool("dry-run"))
		},
	}
}

// taskDone sends UpdateTaskDone to the named (or current) stage.
func taskDone(ctx context.Context, cl client.Client, w io.Writer, from, to, stage string, d workflows.TaskCompletion, dryRun bool) error {
	st, err := queryPlan(ctx, cl, from, to)
	if err != nil {
		return err
	}
	i, err := stageIndex(st, stage)
	if err != nil {
		return err
	}
	s := st.Stages[i]
	id := workflows.MigrationStageID(from, to, i, s.Name)
	if dryRun {
		fmt.Fprintf(w, "dry run: would send %s {task: %q, by: %q, note: %q} to %s\n", workflows.UpdateTaskDone, d.Task, d.By, d.Note, id)
		for _, t := range s.Tasks {
			if t.Name == d.Task {
				fmt.Fprintf(w, "task %q of stage %s is %s\n", t.Name, s.Name, t.State)
				return nil
			}
		}
		fmt.Fprintf(w, "stage %s has no task %q: it would be refused\n", s.Name, d.Task)
		return nil
	}
	if s.State == workflows.StageDone {
		return fmt.Errorf("stage %s is done (approved by %s): its tasks cannot change", s.Name, s.ApprovedBy)
	}
	if s.State == workflows.StagePending && s.Started.IsZero() {
		return fmt.Errorf("stage %s has not started yet (the current stage is %s): its tasks can be marked once it runs", s.Name, st.Stages[min(st.Current, len(st.Stages)-1)].Name)
	}
	h, err := cl.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: id, UpdateName: workflows.UpdateTaskDone, Args: []any{d},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return refused(err, id, "stage "+s.Name)
	}
	var t workflows.TaskStatus
	if err := h.Get(ctx, &t); err != nil {
		return refused(err, id, "stage "+s.Name)
	}
	fmt.Fprintf(w, "task %q of stage %s done by %s on %s\n", t.Name, s.Name, t.By, day(t.Done))
	return nil
}

// refused explains an update's failure: a validator's refusal is the workflow's
// own message.
func refused(err error, id, what string) error {
	var appErr interface{ Message() string }
	if errors.As(err, &appErr) {
		return fmt.Errorf("%s refused: %s", what, appErr.Message())
	}
	return explainNotFound(err, id, what+" is not running")
}
