package triggers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wikimedia/conveyor/workflows/changes"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/internal/client/launch"
	"github.com/wikimedia/conveyor/workflows"
)

// NightlyPrefix starts the ids of the nightly schedules conveyor owns: Sync
// deletes the ones the triggers file no longer asks for.
const NightlyPrefix = "nightly/"

// NightlyScheduleID is the id of the nightly schedule of a project's branch.
func NightlyScheduleID(project, branch string) string {
	return NightlyPrefix + project + "/" + branch
}

// Trigger kinds (TriggerInfo.Kind).
const (
	KindSchedule  = "schedule"
	KindBatcher   = "batcher"
	KindBaseCheck = "basecheck"
)

// SyncReport says what Sync changed.
type SyncReport struct {
	Created, Updated, Deleted []string
	// BaseCheck is the base image check's workflow id, once signalled.
	BaseCheck string
}

// Sync makes the namespace's triggers match cfg, idempotently: a nightly schedule
// per project branch listed under nightly (created, or updated in place keeping
// its paused state), the deletion of nightly schedules no longer listed, and the
// base image check started or given its new targets (signal-with-start). taskQueue
// is where the scheduled workflows run ("" for the build pool's).
func Sync(ctx context.Context, c client.Client, cfg *Config, taskQueue string) (SyncReport, error) {
	if taskQueue == "" {
		taskQueue = workflows.TaskQueueBuild
	}
	var rep SyncReport
	sc := c.ScheduleClient()
	var want []string
	for _, p := range cfg.Projects {
		for _, branch := range p.Nightly {
			id := NightlyScheduleID(p.Name, branch)
			want = append(want, id)
			spec := client.ScheduleSpec{CronExpressions: []string{cfg.NightlyCron}, TimeZoneName: "UTC"}
			action, err := launch.ScheduledPipeline(id,
				changes.PipelineInput{Project: p.Name, Repo: p.Repo, Ref: "refs/heads/" + branch, Publish: p.Publishes(branch), Image: p.Image},
				launch.OnTaskQueue(taskQueue))
			if err != nil {
				return rep, err
			}
			_, err = sc.Create(ctx, client.ScheduleOptions{
				ID: id, Spec: spec, Action: action,
				// A build missed by more than a few hours waits for the next night.
				CatchupWindow: 6 * time.Hour,
				Note:          "conveyor nightly build, from the triggers file",
			})
			switch {
			case err == nil:
				rep.Created = append(rep.Created, id)
			case errors.Is(err, temporal.ErrScheduleAlreadyRunning):
				err = sc.GetHandle(ctx, id).Update(ctx, client.ScheduleUpdateOptions{
					DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
						s := in.Description.Schedule
						s.Spec, s.Action = &spec, action
						return &client.ScheduleUpdate{Schedule: &s}, nil
					},
				})
				if err != nil {
					return rep, fmt.Errorf("updating the schedule %s: %w", id, err)
				}
				rep.Updated = append(rep.Updated, id)
			default:
				return rep, fmt.Errorf("creating the schedule %s: %w", id, err)
			}
		}
	}
	it, err := sc.List(ctx, client.ScheduleListOptions{PageSize: 200})
	if err != nil {
		return rep, fmt.Errorf("listing schedules: %w", err)
	}
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return rep, fmt.Errorf("listing schedules: %w", err)
		}
		if strings.HasPrefix(e.ID, NightlyPrefix) && !slices.Contains(want, e.ID) {
			if err := sc.GetHandle(ctx, e.ID).Delete(ctx); err != nil {
				return rep, fmt.Errorf("deleting the schedule %s, which the triggers file no longer lists: %w", e.ID, err)
			}
			rep.Deleted = append(rep.Deleted, e.ID)
		}
	}

	bc := changes.BaseCheckConfig{Every: cfg.BaseImagesEvery}
	for _, p := range cfg.Projects {
		for _, b := range p.RebuildBranches() {
			bc.Targets = append(bc.Targets, changes.RebuildTarget{Project: p.Name, Repo: p.Repo, Branch: b, Publish: p.Publishes(b), Image: p.Image})
		}
	}
	id, err := launch.BaseCheck(ctx, c, bc, launch.OnTaskQueue(taskQueue))
	if err != nil {
		return rep, err
	}
	rep.BaseCheck = id
	return rep, nil
}

// TriggerInfo is one trigger as List shows it.
type TriggerInfo struct {
	ID     string
	Kind   string
	Paused bool
	// Summary says what it does or has done.
	Summary string
	// Next is the next scheduled run, for schedules.
	Next time.Time
}

// ListOption changes what List does.
type ListOption func(*listOptions)

type listOptions struct{ dc converter.DataConverter }

// WithMemoConverter decodes the workflows' memos with dc: the data converter of
// c's options, which encrypts them when temporal.payloadKeyFile is set
// (temporalclient.Options). Default: the SDK's default converter.
func WithMemoConverter(dc converter.DataConverter) ListOption {
	return func(o *listOptions) {
		if dc != nil {
			o.dc = dc
		}
	}
}

// List returns the nightly schedules and the running batchers and base image
// check, schedules first, each group sorted by id. It reads the workflows' memo,
// so it needs no worker.
func List(ctx context.Context, c client.Client, opts ...ListOption) ([]TriggerInfo, error) {
	lo := listOptions{dc: converter.GetDefaultDataConverter()}
	for _, o := range opts {
		o(&lo)
	}
	var out []TriggerInfo
	it, err := c.ScheduleClient().List(ctx, client.ScheduleListOptions{PageSize: 200})
	if err != nil {
		return nil, fmt.Errorf("listing schedules: %w", err)
	}
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("listing schedules: %w", err)
		}
		if !strings.HasPrefix(e.ID, NightlyPrefix) {
			continue
		}
		ti := TriggerInfo{ID: e.ID, Kind: KindSchedule, Paused: e.Paused}
		if e.Spec != nil && len(e.Spec.CronExpressions) > 0 {
			ti.Summary = "cron " + strings.Join(e.Spec.CronExpressions, ", ") + " UTC"
		} else if e.Spec != nil && len(e.Spec.Calendars) > 0 {
			ti.Summary = calendarText(e.Spec.Calendars[0])
		}
		if n := len(e.RecentActions); n > 0 && e.RecentActions[n-1].StartWorkflowResult != nil {
			ti.Summary += ", last " + e.RecentActions[n-1].StartWorkflowResult.WorkflowID
		}
		if len(e.NextActionTimes) > 0 {
			ti.Next = e.NextActionTimes[0]
		}
		out = append(out, ti)
	}
	slices.SortFunc(out, func(a, b TriggerInfo) int { return strings.Compare(a.ID, b.ID) })

	var wfs []TriggerInfo
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query:         "(WorkflowType = 'MergeBatcher' OR WorkflowType = 'BaseImageCheck') AND ExecutionStatus = 'Running'",
			NextPageToken: token,
		})
		if err != nil {
			return nil, fmt.Errorf("listing the trigger workflows: %w", err)
		}
		for _, e := range resp.Executions {
			ti := TriggerInfo{ID: e.GetExecution().GetWorkflowId(), Kind: KindBatcher}
			if e.GetType().GetName() == "BaseImageCheck" {
				ti.Kind = KindBaseCheck
			}
			fields := e.GetMemo().GetFields()
			if p := fields[changes.MemoPaused]; p != nil {
				_ = lo.dc.FromPayload(p, &ti.Paused)
			}
			if p := fields[changes.MemoSummary]; p != nil {
				_ = lo.dc.FromPayload(p, &ti.Summary)
			}
			wfs = append(wfs, ti)
		}
		if token = resp.NextPageToken; len(token) == 0 {
			break
		}
	}
	slices.SortFunc(wfs, func(a, b TriggerInfo) int { return strings.Compare(a.ID, b.ID) })
	return append(out, wfs...), nil
}

func calendarText(c client.ScheduleCalendarSpec) string {
	if len(c.Hour) == 0 || len(c.Minute) == 0 {
		return "calendar"
	}
	return fmt.Sprintf("daily at %02d:%02d UTC", c.Hour[0].Start, c.Minute[0].Start)
}

// CheckID says whether id names a trigger: a nightly schedule, a merge batcher or
// the base image check.
func CheckID(id string) error {
	_, err := kindOf(id)
	return err
}

// kindOf says what an id names: a nightly schedule, a batcher or the base image
// check.
func kindOf(id string) (string, error) {
	switch {
	case strings.HasPrefix(id, NightlyPrefix):
		return KindSchedule, nil
	case strings.HasPrefix(id, "batch/"):
		return KindBatcher, nil
	case id == changes.BaseCheckID:
		return KindBaseCheck, nil
	}
	return "", fmt.Errorf("%q names no trigger: want nightly/<project>/<branch>, batch/<project>/<branch> or %s (see conveyor trigger list)", id, changes.BaseCheckID)
}

// Pause stops a trigger from starting builds: a schedule is paused, a batcher or
// the base image check keeps collecting but starts nothing until Resume.
func Pause(ctx context.Context, c client.Client, id, note string) error {
	return setPaused(ctx, c, id, note, true)
}

// Resume undoes Pause.
func Resume(ctx context.Context, c client.Client, id, note string) error {
	return setPaused(ctx, c, id, note, false)
}

func setPaused(ctx context.Context, c client.Client, id, note string, paused bool) error {
	kind, err := kindOf(id)
	if err != nil {
		return err
	}
	if kind == KindSchedule {
		h := c.ScheduleClient().GetHandle(ctx, id)
		if paused {
			err = h.Pause(ctx, client.SchedulePauseOptions{Note: note})
		} else {
			err = h.Unpause(ctx, client.ScheduleUnpauseOptions{Note: note})
		}
		if err != nil {
			return fmt.Errorf("pausing or resuming the schedule %s: %w", id, err)
		}
		return nil
	}
	signal := workflows.SignalResume
	if paused {
		signal = workflows.SignalPause
	}
	return launch.Signal(ctx, c, id, signal, nil)
}

// Run makes a trigger act now: a schedule starts its build, the base image check
// checks. A batcher cannot be run: it builds when its batch is due.
func Run(ctx context.Context, c client.Client, id string) error {
	kind, err := kindOf(id)
	if err != nil {
		return err
	}
	switch kind {
	case KindSchedule:
		if err := c.ScheduleClient().GetHandle(ctx, id).Trigger(ctx, client.ScheduleTriggerOptions{}); err != nil {
			return fmt.Errorf("triggering the schedule %s: %w", id, err)
		}
	case KindBaseCheck:
		return launch.Signal(ctx, c, id, changes.SignalCheckNow, nil)
	default:
		return fmt.Errorf("%s is a merge batcher: it builds when its batch is due, and cannot be run by hand (use conveyor pipeline run --publish)", id)
	}
	return nil
}
