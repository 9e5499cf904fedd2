package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/wikimedia/conveyor/workflows/migrations"

	"github.com/urfave/cli/v2"
	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/internal/client/launch"
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
			"whether the stage would accept it now, and sends nothing.\n" +
			"With --cleanup, approves instead the deletion of the leftovers stage 5's cleanup\n" +
			"listed (see `conveyor migrate report --final`), but those named with --keep.\n\n" +
			"Examples:\n\n" +
			"   conveyor migrate approve --from codfw1dev --to codfw2dev --approver bob --reason 'racks in place'\n" +
			"   conveyor migrate approve --from codfw1dev --to codfw2dev --stage procure --approver bob --dry-run\n" +
			"   conveyor migrate approve --from codfw1dev --to codfw2dev --cleanup --approver bob --keep 5f1c…   # stage 5's deletion",
		Flags: pairCommandFlags(
			&cli.StringFlag{Name: "stage", Usage: "the stage `NAME` to approve", DefaultText: "the current stage"},
			&cli.StringFlag{Name: "approver", Usage: "who approves (`NAME`), recorded in the history"},
			&cli.StringFlag{Name: "reason", Usage: "why, in a few words (`TEXT`)"},
			&cli.BoolFlag{Name: "cleanup", Usage: "instead of a stage's gate, let stage 5's cleanup delete the leftovers it listed"},
			&cli.StringSliceFlag{Name: "keep", Usage: "with --cleanup, do not delete this leftover (`ID`); repeatable"},
			&cli.BoolFlag{Name: "dry-run", Usage: "say what would be sent, send nothing"},
		),
		Action: pairAction(func(c *cli.Context, from, to string) error {
			if len(c.StringSlice("keep")) > 0 && !c.Bool("cleanup") {
				return errors.New("--keep goes with --cleanup: it names leftovers the cleanup must not delete")
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
			if c.Bool("cleanup") {
				return approveCleanup(c.Context, cl, c.App.Writer, from, to,
					migrations.CleanupApproval{By: who, Reason: c.String("reason"), Keep: c.StringSlice("keep")}, c.Bool("dry-run"))
			}
			return approveStage(c.Context, cl, c.App.Writer, from, to, c.String("stage"),
				migrations.StageApproval{By: who, Reason: c.String("reason")}, c.Bool("dry-run"))
		}),
	}
}

// approveStage sends UpdateApproveStage to the named (or current) stage.
func approveStage(ctx context.Context, cl client.Client, w io.Writer, from, to, stage string, a migrations.StageApproval, dryRun bool) error {
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
	id := migrations.MigrationStageID(from, to, i, s.Name)
	if dryRun {
		fmt.Fprintf(w, "dry run: would send %s {stage: %q, by: %q, reason: %q} to %s\n", migrations.UpdateApproveStage, a.Stage, a.By, a.Reason, id)
		switch {
		case s.State == migrations.StageAwaitingApproval:
			fmt.Fprintf(w, "stage %s awaits approval: it would pass its gate and the next stage would start\n", s.Name)
		case s.State == migrations.StageDone:
			fmt.Fprintf(w, "stage %s was already approved by %s: it would be refused\n", s.Name, s.ApprovedBy)
		default:
			fmt.Fprintf(w, "stage %s is %s with %d/%d tasks done: it would be refused\n", s.Name, s.State, s.TasksDone, len(s.Tasks))
		}
		return nil
	}
	if s.State == migrations.StageDone {
		return fmt.Errorf("stage %s was already approved by %s on %s", s.Name, s.ApprovedBy, day(s.Finished))
	}
	res, err := update[migrations.StageStatus](ctx, cl, id, migrations.UpdateApproveStage, "stage "+s.Name, a)
	if err != nil {
		return err
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
			"running task and says which tasks it has. With --project, the update goes to\n" +
			"stage 4's projects driver instead and marks that project migrated. --dry-run\n" +
			"sends nothing.\n\n" +
			"Examples:\n\n" +
			"   conveyor migrate task-done --from codfw1dev --to codfw2dev --task 'hardware ordered' --by alice\n" +
			"   conveyor migrate task-done --from codfw1dev --to codfw2dev --stage bootstrap --task 'openstack-helm deployed' --by alice --note 'chart 1.2'\n" +
			"   conveyor migrate task-done --from eqiad1 --to eqiad2 --project tools --by alice   # a manual project of stage 4",
		Flags: pairCommandFlags(
			&cli.StringFlag{Name: "stage", Usage: "the stage `NAME` the task belongs to", DefaultText: "the current stage"},
			&cli.StringFlag{Name: "task", Usage: "the task's `NAME`, as status lists it"},
			&cli.StringFlag{Name: "project", Usage: "instead of a task, mark stage 4's project `NAME` migrated (manual mode, or a failed project)"},
			&cli.StringFlag{Name: "by", Usage: "who did the task (`NAME`)"},
			&cli.StringFlag{Name: "note", Usage: "a note (`TEXT`), e.g. a ticket"},
			&cli.BoolFlag{Name: "dry-run", Usage: "say what would be sent, send nothing"},
		),
		Action: pairAction(func(c *cli.Context, from, to string) error {
			d := migrations.TaskCompletion{Task: strings.TrimSpace(c.String("task")), By: strings.TrimSpace(c.String("by")), Note: c.String("note")}
			project := strings.TrimSpace(c.String("project"))
			switch {
			case project != "" && d.Task != "":
				return errors.New("--task and --project: mark a task or a project done, not both")
			case project != "":
				d.Task = project
			case d.Task == "":
				return errors.New("--task is required: name the task as `conveyor migrate status` lists it, e.g. --task 'hardware ordered' (or --project NAME for a project of stage 4)")
			case d.By == "":
				return errors.New("--by is required: say who did the task, e.g. --by alice")
			}
			_, cl, err := dialFromCLI(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			if project != "" {
				return projectDone(c.Context, cl, c.App.Writer, from, to, d, c.Bool("dry-run"))
			}
			return taskDone(c.Context, cl, c.App.Writer, from, to, c.String("stage"), d, c.Bool("dry-run"))
		}),
	}
}

// taskDone sends UpdateTaskDone to the named (or current) stage.
func taskDone(ctx context.Context, cl client.Client, w io.Writer, from, to, stage string, d migrations.TaskCompletion, dryRun bool) error {
	st, err := queryPlan(ctx, cl, from, to)
	if err != nil {
		return err
	}
	i, err := stageIndex(st, stage)
	if err != nil {
		return err
	}
	s := st.Stages[i]
	id := migrations.MigrationStageID(from, to, i, s.Name)
	if dryRun {
		fmt.Fprintf(w, "dry run: would send %s {task: %q, by: %q, note: %q} to %s\n", migrations.UpdateTaskDone, d.Task, d.By, d.Note, id)
		for _, t := range s.Tasks {
			if t.Name == d.Task {
				fmt.Fprintf(w, "task %q of stage %s is %s\n", t.Name, s.Name, t.State)
				return nil
			}
		}
		fmt.Fprintf(w, "stage %s has no task %q: it would be refused\n", s.Name, d.Task)
		return nil
	}
	if s.State == migrations.StageDone {
		return fmt.Errorf("stage %s is done (approved by %s): its tasks cannot change", s.Name, s.ApprovedBy)
	}
	if s.State == migrations.StagePending && s.Started.IsZero() {
		return fmt.Errorf("stage %s has not started yet (the current stage is %s): its tasks can be marked once it runs", s.Name, st.Stages[min(st.Current, len(st.Stages)-1)].Name)
	}
	t, err := update[migrations.TaskStatus](ctx, cl, id, migrations.UpdateTaskDone, "stage "+s.Name, d)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "task %q of stage %s done by %s on %s\n", t.Name, s.Name, t.By, day(t.Done))
	return nil
}

// update sends update name with arg to workflow id with launch.Update and
// returns its result. what names the workflow in errors: a refusal says
// "<what> refused: " and the workflow's own reason.
func update[Out any](ctx context.Context, u launch.Updater, id, name, what string, arg any) (Out, error) {
	out, err := launch.Update[Out](ctx, u, id, name, arg)
	var r *launch.RefusedError
	switch {
	case errors.As(err, &r):
		return out, fmt.Errorf("%s refused: %s", what, r.Reason)
	case err != nil:
		return out, explainNotFound(err, id, what+" is not running")
	}
	return out, nil
}

// projectDone marks a project of stage 4's driver done: UpdateTaskDone with the
// project's name, sent to the driver.
func projectDone(ctx context.Context, cl client.Client, w io.Writer, from, to string, d migrations.TaskCompletion, dryRun bool) error {
	st, err := queryPlan(ctx, cl, from, to)
	if err != nil {
		return err
	}
	id, err := taskWorkflow(ctx, cl, st, migrations.WorkflowProjectsMigration, "projects are marked done once stage 4's projects task runs")
	if err != nil {
		return err
	}
	if dryRun {
		fmt.Fprintf(w, "dry run: would send %s {task: %q, by: %q, note: %q} to %s\n", migrations.UpdateTaskDone, d.Task, d.By, d.Note, id)
		return nil
	}
	p, err := update[migrations.ProjectProgress](ctx, cl, id, migrations.UpdateTaskDone, "the projects driver", d)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "project %s marked %s by %s on %s\n", p.Name, p.State, p.By, day(p.Finished))
	return nil
}

// approveCleanup lets stage 5's cleanup delete what it listed.
func approveCleanup(ctx context.Context, cl client.Client, w io.Writer, from, to string, a migrations.CleanupApproval, dryRun bool) error {
	st, err := queryPlan(ctx, cl, from, to)
	if err != nil {
		return err
	}
	rep, err := queryCleanup(ctx, cl, st)
	if err != nil {
		return err
	}
	id, err := taskWorkflow(ctx, cl, st, migrations.WorkflowCleanup, "")
	if err != nil {
		return err
	}
	if dryRun {
		fmt.Fprintf(w, "dry run: would send %s {by: %q, reason: %q, keep: %q} to %s (now %s)\n", migrations.UpdateApproveCleanup, a.By, a.Reason, a.Keep, id, rep.State)
		for _, l := range rep.Listed {
			verb := "would delete"
			if slices.Contains(a.Keep, l.ID) {
				verb = "would keep"
			}
			fmt.Fprintf(w, "   %s %s\n", verb, l)
		}
		return nil
	}
	if _, err := update[migrations.CleanupReport](ctx, cl, id, migrations.UpdateApproveCleanup, "the cleanup", a); err != nil {
		return err
	}
	kept := 0
	for _, l := range rep.Listed {
		if slices.Contains(a.Keep, l.ID) {
			kept++
		}
	}
	fmt.Fprintf(w, "cleanup approved by %s: %d leftovers to delete, %d kept; see `conveyor migrate report --from %s --to %s --final`\n",
		a.By, len(rep.Listed)-kept, kept, from, to)
	return nil
}
