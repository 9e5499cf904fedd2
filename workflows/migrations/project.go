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

// Handlers of ProjectMigration, for the command line (`conveyor migrate project`).
const (
	// UpdatePause stops starting new VM migrations; those running finish their
	// step sequence. It takes a PauseRequest and returns the ProjectStatus.
	UpdatePause = "pause"
	// UpdateResume starts VM migrations again after UpdatePause. It takes a
	// PauseRequest and returns the ProjectStatus.
	UpdateResume = "resume"
	// UpdateRetry migrates failed VMs again (after their cause was fixed): each
	// rerun finds its earlier work by markers and goes on from there. It takes a
	// RetryRequest and returns the ids of the VMs it queued.
	UpdateRetry = "retry"
	// QueryProgress returns the ProjectStatus: every VM's state and step.
	QueryProgress = "progress"
)

// States of a VM in ProjectStatus.
const (
	VMPending = "pending"
	VMRunning = "running"
	VMDone    = "done"
	VMFailed  = "failed"
)

// DefaultMaxParallelVMs is how many VMs of one project migrate at once when the
// input says nothing.
const DefaultMaxParallelVMs = 2

// ProjectMigrationInput is the automatic migration of one project's servers.
type ProjectMigrationInput struct {
	// Project is the Keystone project's name; From and To are deployments of the
	// configuration's openstack.deployments.
	Project string `json:"project"`
	From    string `json:"from"`
	To      string `json:"to"`
	// Servers limits the migration to these server names or ids; empty means all.
	Servers []string `json:"servers,omitempty"`
	// MaxParallel bounds the VMs migrating at once (DefaultMaxParallelVMs when 0):
	// those between stopping the source and the grace period, the steps that
	// load the clouds. A VM in its grace period waits without a slot.
	MaxParallel int `json:"maxParallel,omitempty"`
	// GracePeriod is how long each source is kept after its destination is
	// verified (DefaultGracePeriod when 0).
	GracePeriod time.Duration `json:"gracePeriod,omitempty"`
	// DNSZone is the DNS zone whose records to switch; empty switches nothing.
	DNSZone string `json:"dnsZone,omitempty"`
	// DryRun only plans: the result's Plan says what would be created, stopped,
	// copied and deleted; nothing changes.
	DryRun bool `json:"dryRun,omitempty"`
	// MaxEventsPerRun is the history length after which the run starts no more
	// VMs, waits for those running, and continues as new (each VM adds about a
	// dozen events); zero means DefaultProjectEventsPerRun.
	MaxEventsPerRun int `json:"maxEventsPerRun,omitempty"`
	// State is the project's progress handed on by the run that continued as
	// new; callers leave it empty.
	State *ProjectStatus `json:"state,omitempty"`
}

// DefaultProjectEventsPerRun is ProjectMigration's continue-as-new threshold:
// about 300 VMs a run.
const DefaultProjectEventsPerRun = 4000

// ProjectMigrationID is the workflow id of the migration of project from one
// deployment to another; its VM migrations are <id>/<server id>.
func ProjectMigrationID(from, to, project string) string {
	return "migrate-project/" + from + "-" + to + "/" + project
}

// PauseRequest says who pauses or resumes, and why.
type PauseRequest struct {
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"`
}

// RetryRequest names the failed VMs (server names or ids) to migrate again; empty
// means every failed VM.
type RetryRequest struct {
	Servers []string `json:"servers,omitempty"`
	By      string   `json:"by"`
}

// VMStatus is one VM in ProjectStatus.
type VMStatus struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// State is VMPending, VMRunning, VMDone or VMFailed; Step is the VM
	// migration's step as far as the project knows it (VMStep...): the grace
	// period, the end, or the step that failed. A running VMMigration answers
	// QueryVMProgress with its step now (`conveyor migrate status` asks it).
	State         string `json:"state"`
	Step          string `json:"step,omitempty"`
	DestinationID string `json:"destinationId,omitempty"`
	Detail        string `json:"detail,omitempty"`
	// Error is why the last run failed.
	Error      string             `json:"error,omitempty"`
	Runs       int                `json:"runs"`
	Result     *VMMigrationResult `json:"result,omitempty"`
	WorkflowID string             `json:"workflowId,omitempty"`
}

// ProjectStatus is QueryProgress's answer and ProjectMigration's result.
type ProjectStatus struct {
	Project string `json:"project"`
	From    string `json:"from"`
	To      string `json:"to"`
	DryRun  bool   `json:"dryRun,omitempty"`
	Paused  bool   `json:"paused,omitempty"`
	// PausedBy says who paused, and why.
	PausedBy string `json:"pausedBy,omitempty"`
	// Plan is the preflight's answer: servers and destination resources.
	Plan contract.ProjectPlan `json:"plan"`
	VMs  []VMStatus           `json:"vms"`
	// Runs counts the workflow's runs (it continues as new as its history grows).
	Runs int `json:"runs,omitempty"`
}

// Count returns how many VMs are in state.
func (s ProjectStatus) Count(state string) int {
	n := 0
	for _, v := range s.VMs {
		if v.State == state {
			n++
		}
	}
	return n
}

// versionFreeSlotAtGrace marks ProjectMigration runs that free a VM's slot when
// its grace period starts (SignalVMProgress with VMStepGrace) rather than when
// its VMMigration ends.
const versionFreeSlotAtGrace = "free-slot-at-grace"

var preflightOptions = workflow.ActivityOptions{
	TaskQueue: workflows.TaskQueueMigrate, StartToCloseTimeout: 10 * time.Minute, HeartbeatTimeout: 2 * time.Minute,
	RetryPolicy: &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute,
		MaximumAttempts: 10, NonRetryableErrorTypes: []string{contract.ErrMigrationInput}},
}

// ProjectMigration migrates one project's servers automatically: a preflight
// (MigratePreflight: the destination gets the flavors, keypairs and security
// groups it lacks), then one VMMigration child per server, at most MaxParallel at
// once, in server-name order. A failed VM keeps its source and is reported in
// QueryProgress; UpdateRetry runs it again. The workflow ends when every VM is
// migrated (and its source deleted). With DryRun it runs only the preflight,
// which changes nothing, and returns the plan.
//
// Across projects the bound is the caller's: the stage-4 driver runs a bounded
// number of projects at once, so at most projects × MaxParallel VMs migrate; the
// migrate pool's worker activity slots bound the copies in flight per worker.
func ProjectMigration(ctx workflow.Context, in ProjectMigrationInput) (ProjectStatus, error) {
	st := ProjectStatus{Project: in.Project, From: in.From, To: in.To, DryRun: in.DryRun, VMs: []VMStatus{}}
	if in.MaxParallel < 0 || in.GracePeriod < 0 || in.MaxEventsPerRun < 0 {
		return st, temporal.NewNonRetryableApplicationError("maxParallel, gracePeriod and maxEventsPerRun must not be negative", contract.ErrMigrationInput, nil)
	}
	maxEvents := in.MaxEventsPerRun
	if maxEvents == 0 {
		maxEvents = DefaultProjectEventsPerRun
	}
	if in.DNSZone != "" {
		return st, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("dnsZone %q: switching DNS is not supported yet (no Designate client); leave dnsZone empty and switch the records by hand", in.DNSZone),
			contract.ErrMigrationInput, nil)
	}
	parallel := in.MaxParallel
	if parallel == 0 {
		parallel = DefaultMaxParallelVMs
	}
	freeAtGrace := workflow.GetVersion(ctx, versionFreeSlotAtGrace, workflow.DefaultVersion, 1) != workflow.DefaultVersion
	changed := false
	// slot holds the VMs that count against MaxParallel: running, before their
	// grace periods (or to their ends, in runs before versionFreeSlotAtGrace).
	slot := map[string]bool{}
	vm := func(idOrName string) int {
		return slices.IndexFunc(st.VMs, func(v VMStatus) bool { return v.ID == idOrName || v.Name == idOrName })
	}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (ProjectStatus, error) { return st, nil }); err != nil {
		return st, err
	}
	pauseHandler := func(pause bool) func(workflow.Context, PauseRequest) (ProjectStatus, error) {
		return func(_ workflow.Context, r PauseRequest) (ProjectStatus, error) {
			st.Paused, changed = pause, true
			st.PausedBy = ""
			if pause {
				st.PausedBy = strings.TrimSpace(r.By + ": " + r.Reason)
			}
			return st, nil
		}
	}
	byValidator := func(_ workflow.Context, r PauseRequest) error {
		if strings.TrimSpace(r.By) == "" {
			return errors.New("by is empty: say who you are")
		}
		return nil
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdatePause, pauseHandler(true), workflow.UpdateHandlerOptions{Validator: byValidator}); err != nil {
		return st, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateResume, pauseHandler(false), workflow.UpdateHandlerOptions{Validator: byValidator}); err != nil {
		return st, err
	}
	err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateRetry, func(_ workflow.Context, r RetryRequest) ([]string, error) {
		var queued []string
		for i := range st.VMs {
			v := &st.VMs[i]
			if v.State == VMFailed && (len(r.Servers) == 0 || slices.Contains(r.Servers, v.ID) || slices.Contains(r.Servers, v.Name)) {
				v.State, v.Error, v.Detail = VMPending, "", "retry queued by "+r.By
				queued = append(queued, v.ID)
			}
		}
		changed = true
		return queued, nil
	}, workflow.UpdateHandlerOptions{Validator: func(_ workflow.Context, r RetryRequest) error {
		if strings.TrimSpace(r.By) == "" {
			return errors.New("by is empty: say who you are")
		}
		var failed []string
		for _, v := range st.VMs {
			if v.State == VMFailed {
				failed = append(failed, v.Name)
			}
		}
		if len(failed) == 0 {
			return errors.New("no VM has failed: nothing to retry")
		}
		for _, s := range r.Servers {
			i := vm(s)
			if i < 0 {
				return fmt.Errorf("project %s has no server %q", in.Project, s)
			}
			if st.VMs[i].State != VMFailed {
				return fmt.Errorf("server %s is %s, not failed; failed: %s", s, st.VMs[i].State, strings.Join(failed, ", "))
			}
		}
		return nil
	}})
	if err != nil {
		return st, err
	}
	progress := workflow.GetSignalChannel(ctx, SignalVMProgress)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var p VMProgress
			progress.Receive(ctx, &p)
			if i := vm(p.ServerID); i >= 0 && st.VMs[i].State == VMRunning {
				st.VMs[i].Step, st.VMs[i].Detail = p.Step, p.Detail
				if p.DestinationID != "" {
					st.VMs[i].DestinationID = p.DestinationID
				}
				if freeAtGrace && p.Step == VMStepGrace && slot[st.VMs[i].ID] {
					delete(slot, st.VMs[i].ID)
					changed = true
				}
			}
		}
	})

	if in.State != nil {
		// A run handed on by continue-as-new: no VM is running.
		st = *in.State
	} else {
		err = workflows.Execute(workflow.WithActivityOptions(ctx, preflightOptions), contract.MigratePreflight,
			contract.PreflightInput{Project: in.Project, From: in.From, To: in.To, Servers: in.Servers, DryRun: in.DryRun}).Get(ctx, &st.Plan)
		if err != nil {
			return st, fmt.Errorf("preflight of project %s: %w", in.Project, err)
		}
		for _, s := range st.Plan.Servers {
			st.VMs = append(st.VMs, VMStatus{ID: s.ID, Name: s.Name, State: VMPending, Step: VMStepPreflight})
		}
	}
	if freeAtGrace {
		st.Runs++
	}
	if in.DryRun {
		return st, nil
	}
	// Children's ids come from the input, not this run's id: one server of a
	// project pair is only ever migrated by one VMMigration at a time, and its
	// key (the child's id) stays the same whoever started the project.
	self := ProjectMigrationID(in.From, in.To, in.Project)
	for st.Count(VMDone) < len(st.VMs) {
		// A long history (a big project, many retries) is handed on to a new run
		// once no VM migration runs: a child would not outlive the run.
		draining := freeAtGrace && workflows.HistoryFull(ctx, workflow.GetInfo(ctx).GetCurrentHistoryLength(), maxEvents)
		if draining && st.Count(VMRunning) == 0 {
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return st, err
			}
			next := in
			next.State = &st
			return st, workflow.NewContinueAsNewError(ctx, ProjectMigration, next)
		}
		for i := range st.VMs {
			if st.Paused || draining || len(slot) >= parallel {
				break
			}
			if st.VMs[i].State != VMPending {
				continue
			}
			v := &st.VMs[i]
			v.State, v.Runs, v.WorkflowID = VMRunning, v.Runs+1, self+"/"+v.ID
			if freeAtGrace {
				v.Step, v.Detail = "", ""
			}
			slot[v.ID] = true
			id, name := v.ID, v.Name
			cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: v.WorkflowID, TaskQueue: workflows.TaskQueueMigrate})
			f := workflow.ExecuteChildWorkflow(cctx, VMMigration, VMMigrationInput{
				VM:          contract.VMRef{Project: in.Project, From: in.From, To: in.To, ServerID: id, ServerName: name, Key: v.WorkflowID},
				GracePeriod: in.GracePeriod, DNSZone: in.DNSZone,
			})
			workflow.Go(ctx, func(ctx workflow.Context) {
				var res VMMigrationResult
				err := f.Get(ctx, &res)
				v := &st.VMs[vm(id)]
				if err != nil {
					v.State, v.Error = VMFailed, workflows.ErrorDetail(err)
					if p, ok := failedStep(err); ok {
						v.Step = p.Step
						if p.DestinationID != "" {
							v.DestinationID = p.DestinationID
						}
					}
					workflow.GetLogger(ctx).Error("VM migration failed; its source is kept", "server", name, "error", err)
				} else {
					v.State, v.Step, v.Result, v.DestinationID, v.Detail = VMDone, VMStepDone, &res, res.DestinationID, ""
				}
				delete(slot, id)
				changed = true
			})
		}
		recordVMStates(ctx, in.Project, &st)
		changed = false
		if err := workflow.Await(ctx, func() bool { return changed }); err != nil {
			return st, err
		}
	}
	recordVMStates(ctx, in.Project, &st)
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return st, err
	}
	return st, nil
}

// failedStep returns the step a VMMigration's failure names (contract.ErrVMStepFailed).
func failedStep(err error) (VMProgress, bool) {
	var app *temporal.ApplicationError
	var p VMProgress
	if !errors.As(err, &app) || app.Type() != contract.ErrVMStepFailed || !app.HasDetails() {
		return p, false
	}
	return p, app.Details(&p) == nil
}

// recordVMStates sets the gauge of the project's VMs in each state (never on
// replay) and the workflow's current details.
func recordVMStates(ctx workflow.Context, project string, st *ProjectStatus) {
	workflow.SetCurrentDetails(ctx, projectDetails(*st))
	m := workflow.GetMetricsHandler(ctx)
	for _, state := range []string{VMPending, VMRunning, VMDone, VMFailed} {
		m.WithTags(map[string]string{"project": project, "state": state}).Gauge(workflows.MetricMigrationVMs).Update(float64(st.Count(state)))
	}
}
