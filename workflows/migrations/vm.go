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

// Steps of a VM migration, in order, as VMStatus.Step says them.
const (
	VMStepPreflight   = "preflight"
	VMStepStop        = "stop-source"
	VMStepSnapshot    = "snapshot"
	VMStepCopy        = "copy-image"
	VMStepCreate      = "create-server"
	VMStepWaitActive  = "wait-active"
	VMStepVerify      = "verify"
	VMStepDNS         = "switch-dns"
	VMStepMark        = "mark"
	VMStepGrace       = "grace-period"
	VMStepVerifyAgain = "verify-again"
	VMStepDelete      = "delete-source"
	VMStepDone        = "done"
)

// SignalVMProgress is the signal a VMMigration sends its parent ProjectMigration
// once, when its destination is verified and marked and the grace period starts
// (a VMProgress with Step VMStepGrace): the parent then frees the VM's slot, since
// only the steps before it load the clouds. Runs started before the query below
// existed sent it at every step.
const SignalVMProgress = "vm-progress"

// QueryVMProgress returns a running VMMigration's VMProgress: its step now.
const QueryVMProgress = "vm-progress"

// versionVMProgressQuery marks VMMigration runs that answer QueryVMProgress
// instead of signalling every step to their parent (a signal wakes both
// workflows: two workflow tasks per step), and skip switch-dns without a zone.
const versionVMProgressQuery = "vm-progress-query"

// DefaultGracePeriod is how long a migrated VM's stopped source is kept before it
// is verified again and deleted.
const DefaultGracePeriod = 24 * time.Hour

// VMMigrationInput is one server's migration.
type VMMigrationInput struct {
	VM contract.VMRef `json:"vm"`
	// GracePeriod is the wait between the verified destination and the source's
	// deletion; 0 means DefaultGracePeriod.
	GracePeriod time.Duration `json:"gracePeriod,omitempty"`
	// DNSZone is the DNS zone whose record to switch; empty switches nothing.
	DNSZone string `json:"dnsZone,omitempty"`
}

// VMProgress is one step of one VM, sent to the parent.
type VMProgress struct {
	ServerID      string `json:"serverId"`
	Step          string `json:"step"`
	DestinationID string `json:"destinationId,omitempty"`
	Detail        string `json:"detail,omitempty"`
}

// VMMigrationResult is what a finished VM migration did.
type VMMigrationResult struct {
	ServerID      string               `json:"serverId"`
	DestinationID string               `json:"destinationId"`
	Snapshot      contract.ImageOutput `json:"snapshot"`
	Image         contract.ImageOutput `json:"image"`
	// Reused lists the steps that found an earlier attempt's work.
	Reused []string `json:"reused,omitempty"`
	// SourceDeleted says the source server is gone.
	SourceDeleted bool `json:"sourceDeleted"`
}

// Activity options of the VM migration. Every step heartbeats while it waits, so
// a worker that dies is noticed after vmHeartbeat and the step retried elsewhere;
// steps that retrying cannot fix fail with the contract's error types.
const vmHeartbeat = 30 * time.Second

var (
	vmRetry = &temporal.RetryPolicy{
		InitialInterval:        2 * time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        5 * time.Minute,
		MaximumAttempts:        10,
		NonRetryableErrorTypes: []string{contract.ErrServerError, contract.ErrVerifyFailed, contract.ErrMigrationInput},
	}
	vmStepOptions = workflow.ActivityOptions{TaskQueue: workflows.TaskQueueMigrate, StartToCloseTimeout: 30 * time.Minute, HeartbeatTimeout: vmHeartbeat, RetryPolicy: vmRetry}
	vmCopyOptions = workflow.ActivityOptions{TaskQueue: workflows.TaskQueueMigrate, StartToCloseTimeout: 12 * time.Hour, HeartbeatTimeout: vmHeartbeat, RetryPolicy: vmRetry}
)

// VMMigration moves one server between deployments: stop the source, snapshot it,
// copy the snapshot's data to the destination's Glance (streamed, checksummed),
// create the server there with the same name, flavor and metadata, wait for
// ACTIVE (ERROR fails), verify, switch DNS if a zone is given, mark both sides,
// and after the grace period (a durable timer) verify again and delete the
// source. The source is never deleted before the destination is verified. Every
// step finds its earlier work by the markers of the VM's key, so rerunning the
// workflow (the parent's retry) resumes where the last run stopped.
//
// QueryVMProgress answers with the step it is in. It signals its parent
// ProjectMigration (if any) once, when the grace period starts; a failure's
// error (contract.ErrVMStepFailed) says which step failed.
func VMMigration(ctx workflow.Context, in VMMigrationInput) (VMMigrationResult, error) {
	res := VMMigrationResult{ServerID: in.VM.ServerID}
	if in.VM.Key == "" {
		in.VM.Key = workflow.GetInfo(ctx).WorkflowExecution.ID
	}
	grace := in.GracePeriod
	if grace <= 0 {
		grace = DefaultGracePeriod
	}
	signalEveryStep := workflow.GetVersion(ctx, versionVMProgressQuery, workflow.DefaultVersion, 1) == workflow.DefaultVersion
	now := VMProgress{ServerID: in.VM.ServerID, Step: VMStepPreflight}
	workflow.SetCurrentDetails(ctx, vmDetails(in.VM, now))
	if err := workflow.SetQueryHandler(ctx, QueryVMProgress, func() (VMProgress, error) { return now, nil }); err != nil {
		return res, err
	}
	// at records the step the VM is in; parent says the parent needs to know.
	at := func(p VMProgress, parent bool) {
		now = p
		workflow.SetCurrentDetails(ctx, vmDetails(in.VM, p))
		if parent || signalEveryStep {
			report(ctx, p)
		}
	}
	// failed is the workflow's error when step name fails: its details say
	// which step, for the parent's progress.
	failed := func(name string, err error) error {
		if signalEveryStep {
			return fmt.Errorf("%s: %w", name, err)
		}
		return temporal.NewApplicationErrorWithOptions(name, contract.ErrVMStepFailed, temporal.ApplicationErrorOptions{
			NonRetryable: true, Cause: err,
			Details: []any{VMProgress{ServerID: in.VM.ServerID, Step: name, DestinationID: res.DestinationID}},
		})
	}
	steps := &vmSteps{ctx: ctx, serverID: in.VM.ServerID, res: &res, at: at, failed: failed}
	if _, err := vmStep(steps, VMStepStop, vmStepOptions, contract.MigrateStopSource, in.VM); err != nil {
		return res, err
	}
	snapshot, err := vmStep(steps, VMStepSnapshot, vmCopyOptions, contract.MigrateSnapshot, in.VM)
	if err != nil {
		return res, err
	}
	res.Snapshot = snapshot
	image, err := vmStep(steps, VMStepCopy, vmCopyOptions, contract.MigrateCopyImage, contract.CopyImageInput{VM: in.VM, Source: res.Snapshot})
	if err != nil {
		return res, err
	}
	res.Image = image
	srv, err := vmStep(steps, VMStepCreate, vmStepOptions, contract.MigrateCreateServer, contract.CreateServerInput{VM: in.VM, ImageID: res.Image.ImageID})
	if err != nil {
		return res, err
	}
	res.DestinationID = srv.ServerID
	for _, r := range []struct {
		step   string
		reused bool
	}{{VMStepSnapshot, res.Snapshot.Reused}, {VMStepCopy, res.Image.Reused}, {VMStepCreate, srv.Reused}} {
		if r.reused {
			res.Reused = append(res.Reused, r.step)
		}
	}
	dest := contract.DestinationInput{VM: in.VM, ServerID: srv.ServerID, ImageID: res.Image.ImageID, SourceImage: res.Snapshot, DNSZone: in.DNSZone}
	if _, err := vmStep(steps, VMStepWaitActive, vmStepOptions, contract.MigrateWaitActive, dest); err != nil {
		return res, err
	}
	verify := func(name string) error {
		v, err := vmStep(steps, name, vmStepOptions, contract.MigrateVerify, dest)
		if err != nil {
			return err
		}
		if len(v.Problems) == 0 {
			return nil
		}
		msg := fmt.Sprintf("the destination %s does not match the source %s (kept): %s", srv.ServerID, in.VM.ServerID, strings.Join(v.Problems, "; "))
		if signalEveryStep {
			return temporal.NewNonRetryableApplicationError(name+": "+msg, contract.ErrVerifyFailed, nil)
		}
		return failed(name, temporal.NewNonRetryableApplicationError(msg, contract.ErrVerifyFailed, nil))
	}
	if err := verify(VMStepVerify); err != nil {
		return res, err
	}
	if in.DNSZone != "" || signalEveryStep {
		if _, err := vmStep(steps, VMStepDNS, vmStepOptions, contract.MigrateSwitchDNS, dest); err != nil {
			return res, err
		}
	}
	if _, err := vmStep(steps, VMStepMark, vmStepOptions, contract.MigrateMark, dest); err != nil {
		return res, err
	}
	at(VMProgress{ServerID: in.VM.ServerID, Step: VMStepGrace, DestinationID: res.DestinationID,
		Detail: "source kept until " + workflow.Now(ctx).Add(grace).UTC().Format(time.RFC3339)}, true)
	if err := workflow.Sleep(ctx, grace); err != nil {
		return res, err
	}
	if err := verify(VMStepVerifyAgain); err != nil {
		return res, err
	}
	if _, err := vmStep(steps, VMStepDelete, vmStepOptions, contract.MigrateDeleteSource, dest); err != nil {
		return res, err
	}
	res.SourceDeleted = true
	at(VMProgress{ServerID: in.VM.ServerID, Step: VMStepDone, DestinationID: res.DestinationID}, false)
	return res, nil
}

// report tells the parent ProjectMigration, if any, which step the VM is in.
func report(ctx workflow.Context, p VMProgress) {
	parent := workflow.GetInfo(ctx).ParentWorkflowExecution
	if parent == nil {
		return
	}
	if err := workflow.SignalExternalWorkflow(ctx, parent.ID, "", SignalVMProgress, p).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("Reporting VM progress to the project migration failed", "server", p.ServerID, "error", err)
	}
}

// vmSteps is what each step of one VM's migration reports to.
type vmSteps struct {
	ctx      workflow.Context
	serverID string
	res      *VMMigrationResult
	// at records the step the VM is in; failed wraps a step's error.
	at     func(p VMProgress, parent bool)
	failed func(name string, err error) error
}

// vmStep runs activity a as step name of s's migration.
func vmStep[In, Out any](s *vmSteps, name string, opts workflow.ActivityOptions, a contract.Activity[In, Out], in In) (Out, error) {
	s.at(VMProgress{ServerID: s.serverID, Step: name, DestinationID: s.res.DestinationID}, false)
	var out Out
	if err := workflows.Execute(workflow.WithActivityOptions(s.ctx, opts), a, in).Get(s.ctx, &out); err != nil {
		return out, s.failed(name, err)
	}
	return out, nil
}
