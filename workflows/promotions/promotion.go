package promotions

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/wikimedia/conveyor/workflows"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/activities/contract"
)

// The promotion's verbs. Each is both a signal and an update of the same name,
// with a PromotionDecision as its argument: the Web UI's "Send a Signal" dialog
// and `conveyor promote` (which sends the update, so it can report a refusal)
// reach the same handler.
const (
	// PromoteApprove passes the gate before production. Approvers only.
	PromoteApprove = "approve"
	// PromoteReject ends the promotion at its gate; production is untouched.
	// Approvers only.
	PromoteReject = "reject"
	// PromotePause holds production at its current step until PromoteResume.
	PromotePause = workflows.SignalPause
	// PromoteResume ends a pause or an indefinite step. Approvers only.
	PromoteResume = workflows.SignalResume
	// PromoteFull skips the remaining canary steps, in every cluster left.
	// Approvers only.
	PromoteFull = "promote-full"
	// PromoteRollback removes the canary of the cluster being promoted and fails
	// the promotion.
	PromoteRollback = "rollback"
)

// PromotionVerbs lists the verbs in the order the docs and the CLI show them.
var PromotionVerbs = []string{PromoteApprove, PromoteReject, PromotePause, PromoteResume, PromoteFull, PromoteRollback}

// The stages of a promotion (PromotionStatus.Stage and the ConveyorStage search
// attribute). In production the attribute is "production/<cluster>".
const (
	PromotionStageConfig     = "config"
	PromotionStageStaging    = "staging"
	PromotionStageGate       = "gate"
	PromotionStageProduction = "production"
	PromotionStagePromoted   = "promoted"
	PromotionStageRejected   = "rejected"
	PromotionStageTimedOut   = "timed-out"
	PromotionStageRolledBack = "rolled-back"
	PromotionStageFailed     = "failed"
	PromotionStageCancelled  = "cancelled"
)

// The states of one production cluster (ClusterProgress.State).
const (
	ClusterPending    = "pending"
	ClusterCanary     = "canary"
	ClusterFinalizing = "finalizing"
	ClusterPromoted   = "promoted"
	// ClusterInstalled: the service had no release there; the new image was
	// installed directly, as there was no stable version to compare it with.
	ClusterInstalled  = "installed"
	ClusterRolledBack = "rolled-back"
	ClusterFailed     = "failed"
)

// DefaultPromotionMaxHistory is the history length at which a promotion that is
// waiting (at its gate, paused, or at an indefinite step) continues as new.
const DefaultPromotionMaxHistory = 400

// PromotionDecision is the argument of every verb: who decides, and why. The
// Web UI records no identity with a signal: Approver is what the sender typed.
type PromotionDecision struct {
	Approver string `json:"approver"`
	Reason   string `json:"reason,omitempty"`
}

// PromotionSource says where the image comes from.
type PromotionSource struct {
	Project  string `json:"project,omitempty"`
	Change   int    `json:"change,omitempty"`
	Patchset int    `json:"patchset,omitempty"`
	Commit   string `json:"commit,omitempty"`
	// Pipeline is the workflow id of the pipeline that built and published it.
	Pipeline string `json:"pipeline,omitempty"`
}

// PromotionInput starts a promotion.
type PromotionInput struct {
	// Service names the service in the configuration registry, e.g. "hello".
	Service string `json:"service"`
	// Image is the image by digest: repository@sha256:….
	Image  string          `json:"image"`
	Source PromotionSource `json:"source,omitzero"`
	// ConfigRef is the configuration registry's branch, tag or commit; empty
	// means its default branch. The commit it resolves to is recorded.
	ConfigRef string `json:"configRef,omitempty"`
	// MaxHistory overrides DefaultPromotionMaxHistory (tests).
	MaxHistory int `json:"maxHistory,omitempty"`
	// State is carried across continue-as-new; nil when the promotion starts.
	State *PromotionState `json:"state,omitempty"`
}

// PromotionState is what one run of a promotion hands to the next.
type PromotionState struct {
	Status    PromotionStatus        `json:"status"`
	Plan      contract.PromotionPlan `json:"plan"`
	Simulated []string               `json:"simulated,omitempty"`
	// Cluster is the index of the production cluster being promoted, Step the
	// index of its next canary step.
	Cluster int `json:"cluster"`
	Step    int `json:"step"`
	// Prepared says the cluster's stable release has been looked up.
	Prepared bool `json:"prepared,omitempty"`
	// Hold says an indefinite step waits for resume or promote-full.
	Hold         bool      `json:"hold,omitempty"`
	NextReminder time.Time `json:"nextReminder,omitzero"`
	// Approved lists who approved the gate, a resume or promote-full (the
	// ConveyorApprover search attribute).
	Approved []string `json:"approved,omitempty"`
}

// PromotionStatus is the `status` query's answer and the workflow's result.
type PromotionStatus struct {
	Service      string          `json:"service"`
	Image        string          `json:"image"`
	Source       PromotionSource `json:"source,omitzero"`
	ConfigRef    string          `json:"configRef,omitempty"`
	ConfigCommit string          `json:"configCommit,omitempty"`
	// Stage is one of the PromotionStage* constants.
	Stage string `json:"stage"`
	// Environment is "staging" or "production" while one is being deployed.
	Environment string `json:"environment,omitempty"`
	Cluster     string `json:"cluster,omitempty"`
	// Step is the canary step (1-based) of Steps in Cluster.
	Step    int           `json:"step,omitempty"`
	Steps   int           `json:"steps,omitempty"`
	Weights CanaryWeights `json:"weights,omitzero"`
	// Waiting says what the promotion waits for, if anything, since when and
	// until when (the gate's pause timeout).
	Waiting      string    `json:"waiting,omitempty"`
	WaitingSince time.Time `json:"waitingSince,omitzero"`
	Deadline     time.Time `json:"deadline,omitzero"`
	Paused       bool      `json:"paused,omitempty"`
	PromoteFull  bool      `json:"promoteFull,omitempty"`
	// Approvers are the plan's; ApprovedBy passed the gate.
	Approvers  []string `json:"approvers,omitempty"`
	ApprovedBy string   `json:"approvedBy,omitempty"`
	// Decisions lists every verb received, accepted or not, with who and when.
	Decisions    []DecisionRecord               `json:"decisions,omitempty"`
	LastAnalysis *AnalysisRecord                `json:"lastAnalysis,omitempty"`
	Clusters     []ClusterProgress              `json:"clusters,omitempty"`
	Reminders    int                            `json:"reminders,omitempty"`
	Events       []PromotionEvent               `json:"events,omitempty"`
	Started      time.Time                      `json:"started,omitzero"`
	Finished     time.Time                      `json:"finished,omitzero"`
	Error        string                         `json:"error,omitempty"`
	Staging      *contract.PromotionSmokeOutput `json:"staging,omitempty"`
	// Runs counts the workflow's runs (continue-as-new), this one included.
	Runs int `json:"runs"`
}

// CanaryWeights are a canary step's pods: desired, and ready after CanarySet.
type CanaryWeights struct {
	// Desired is the step's weight in percent.
	Desired        int `json:"desired"`
	CanaryReplicas int `json:"canaryReplicas"`
	StableReplicas int `json:"stableReplicas"`
	CanaryReady    int `json:"canaryReady"`
	StableReady    int `json:"stableReady"`
	// Actual is the canary's share of the ready pods, in percent: the traffic
	// it gets, as the Service spreads requests over ready pods.
	Actual float64 `json:"actual"`
}

// DecisionRecord is one verb as received.
type DecisionRecord struct {
	Verb     string    `json:"verb"`
	Approver string    `json:"approver"`
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at"`
	// Via is "signal" or "update".
	Via      string `json:"via"`
	Accepted bool   `json:"accepted"`
	// Note says why a signal was ignored (refused updates are not recorded:
	// the sender got the reason).
	Note string `json:"note,omitempty"`
}

// AnalysisRecord is a canary analysis with where and when it ran.
type AnalysisRecord struct {
	contract.Analysis
	Cluster string    `json:"cluster"`
	Step    int       `json:"step"`
	Weight  int       `json:"weight"`
	At      time.Time `json:"at"`
}

// ClusterProgress is one production cluster.
type ClusterProgress struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Simulated bool   `json:"simulated,omitempty"`
	State     string `json:"state"`
	// Revision is the stable release's Helm revision; Previous the image it
	// ran before the promotion.
	Revision int    `json:"revision,omitempty"`
	Previous string `json:"previous,omitempty"`
	Detail   string `json:"detail,omitempty"`
}

// PromotionEvent is one line of the promotion's log.
type PromotionEvent struct {
	At      time.Time `json:"at"`
	Message string    `json:"message"`
}

// maxEvents and maxDecisions bound the status (and so the history's
// continue-as-new payload): older entries are dropped.
const (
	maxEvents    = 100
	maxDecisions = 50
)

// PromotionID is a promotion's workflow id: one per service and image digest, so
// a retried start, or the merge batcher and a person starting the same image,
// find the same workflow.
func PromotionID(service, image string) string {
	d := image
	if _, after, ok := strings.Cut(image, "@"); ok {
		d = after
	}
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return "promote/" + service + "/" + d
}

// Validate reports the first problem of the input.
func (in PromotionInput) Validate() error {
	switch {
	case strings.TrimSpace(in.Service) == "":
		return errors.New("service is empty: name the service as the configuration registry does (e.g. --service hello)")
	case !strings.Contains(in.Image, "@sha256:"):
		return fmt.Errorf("image %q is not by digest: give repository@sha256:… (e.g. localhost:5000/hello@sha256:…), as the pipeline published it", in.Image)
	}
	return nil
}

// validatePlan checks what the workflow relies on; the registry's reader
// checks the rest.
func validatePlan(p contract.PromotionPlan, commit string) error {
	where := fmt.Sprintf("the promotion plan of %s at configuration commit %s", p.Service, workflows.ShortID(commit))
	switch {
	case len(p.Production) == 0:
		return fmt.Errorf("%s: production lists no cluster", where)
	case p.Replicas < 1:
		return fmt.Errorf("%s: replicas is %d: give the number of pods per production cluster (e.g. 4)", where, p.Replicas)
	case len(p.Steps) == 0:
		return fmt.Errorf("%s: steps is empty: give the canary's weights, e.g. 1, 10, 50, 100", where)
	case len(p.Approvers) == 0:
		return fmt.Errorf("%s: approvers is empty: nobody could pass the gate before production", where)
	}
	for i, s := range p.Steps {
		if s.Weight < 1 || s.Weight > 100 {
			return fmt.Errorf("%s: steps[%d].weight is %d: want a percentage from 1 to 100", where, i, s.Weight)
		}
	}
	return nil
}

// CanaryReplicas splits a cluster's replicas for a step's weight: the canary
// gets max(1, round(weight × replicas / 100)) pods (all of them at 100 %), the
// stable release the rest.
func CanaryReplicas(weight, replicas int) (canary, stable int) {
	if weight >= 100 {
		return replicas, 0
	}
	canary = int(math.Round(float64(weight*replicas) / 100))
	canary = max(canary, 1)
	canary = min(canary, replicas)
	return canary, replicas - canary
}

// Promotion takes one image of one service from the configuration registry's
// plan to production: it records the configuration commit (PromotionConfig),
// deploys and smoke-checks staging without a human, then waits at its gate for
// an approver's approve (or reject) — reminding every plan.ReminderEvery and
// giving up after plan.PauseTimeout — and promotes production cluster by
// cluster: a canary beside the stable release, step by step, each step's
// analysis against the plan's thresholds; a failed analysis or a rollback
// removes the canary and fails the promotion, leaving the stable release as it
// was; success makes the new image the stable release (Helm keeps HistoryMax
// revisions) and removes the canary. While it waits it continues as new once its
// history reaches MaxHistory events.
func Promotion(ctx workflow.Context, in PromotionInput) (PromotionStatus, error) {
	r := newPromotionRun(ctx, in)
	if err := r.handlers(ctx); err != nil {
		return r.s.Status, err
	}
	err := r.run(ctx)
	var can *workflow.ContinueAsNewError
	if errors.As(err, &can) {
		return r.s.Status, err
	}
	r.s.Status.Finished = workflow.Now(ctx)
	r.s.Status.Waiting = ""
	if err != nil {
		r.s.Status.Error = errorText(err)
		switch {
		case temporal.IsCanceledError(err) || ctx.Err() != nil:
			r.s.Status.Stage = PromotionStageCancelled
		case isApplicationErrorType(err, contract.ErrPromotionRejected):
			r.s.Status.Stage = PromotionStageRejected
		case isApplicationErrorType(err, contract.ErrPromotionTimedOut):
			r.s.Status.Stage = PromotionStageTimedOut
		case isApplicationErrorType(err, contract.ErrPromotionRolledBack):
			r.s.Status.Stage = PromotionStageRolledBack
		default:
			r.s.Status.Stage = PromotionStageFailed
		}
		r.upsertStage(ctx)
		if r.planned() {
			dctx, cancel := workflow.NewDisconnectedContext(ctx)
			r.notify(dctx, r.s.Status.Stage, fmt.Sprintf("promotion of %s (%s) ended: %s", r.in.Service, r.in.Image, r.s.Status.Error))
			cancel()
		}
		return r.s.Status, err
	}
	r.s.Status.Stage = PromotionStagePromoted
	r.s.Status.Environment, r.s.Status.Cluster = "", ""
	r.upsertStage(ctx)
	r.event(ctx, "promoted to production in every cluster")
	r.notify(ctx, PromotionStagePromoted, fmt.Sprintf("%s is in production: %s", r.in.Service, r.in.Image))
	return r.s.Status, nil
}

func isApplicationErrorType(err error, typ string) bool {
	var app *temporal.ApplicationError
	return errors.As(err, &app) && app.Type() == typ
}

// Activity options of the promotion (deploy pool). Deploys and canary changes
// wait for readiness and heartbeat; a canary change is tried a few times only,
// since a canary that cannot become ready is a reason to roll back; analyses
// and smoke checks are short. Notifications are best effort.
var (
	promotionRetry = &temporal.RetryPolicy{
		InitialInterval:    2 * time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    time.Minute,
		MaximumAttempts:    5,
		NonRetryableErrorTypes: []string{contract.ErrPromotionConfig, contract.ErrSmokeFailed, contract.ErrReleaseNotReady,
			contract.ErrChart, contract.ErrInvalidConfig},
	}
	promotionConfigOptions = workflow.ActivityOptions{
		TaskQueue:           workflows.TaskQueueDeploy,
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy:         promotionRetry,
	}
	promotionDeployOptions = workflow.ActivityOptions{
		TaskQueue:           workflows.TaskQueueDeploy,
		StartToCloseTimeout: 15 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         promotionRetry,
		WaitForCancellation: true,
	}
	canaryOptions = workflow.ActivityOptions{
		TaskQueue:           workflows.TaskQueueDeploy,
		StartToCloseTimeout: 10 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
			MaximumAttempts: 3, NonRetryableErrorTypes: promotionRetry.NonRetryableErrorTypes},
		// A rollback cancels a canary change or analysis in flight and waits
		// for it to stop before removing the canary.
		WaitForCancellation: true,
	}
	promotionNotifyOptions = workflow.ActivityOptions{
		TaskQueue:           workflows.TaskQueueDeploy,
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 5 * time.Second, MaximumAttempts: 3},
	}
)
