package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/activities/contract"
)

// promotionRun is one run's state. Everything a later run needs is in s.
type promotionRun struct {
	in PromotionInput
	s  PromotionState
	// rollback is the accepted rollback request, if any; rejected the
	// accepted reject.
	rollback, rejected *DecisionRecord
	// cancelStep cancels the activity or timer of the step in flight, so a
	// rollback need not wait for it.
	cancelStep workflow.CancelFunc
	// finalizing is set while a cluster's stable release takes the new image:
	// too late for a rollback of the canary.
	finalizing bool
	// changed wakes the waits when a verb is accepted.
	changed bool
	// channels are the verbs' signal channels, in PromotionVerbs' order.
	channels []workflow.ReceiveChannel
}

func newPromotionRun(ctx workflow.Context, in PromotionInput) *promotionRun {
	r := &promotionRun{in: in}
	if in.State != nil {
		r.s = *in.State
		r.in.State = nil
	} else {
		r.s.Status = PromotionStatus{Service: in.Service, Image: in.Image, Source: in.Source, ConfigRef: in.ConfigRef,
			Stage: PromotionStageConfig, Started: workflow.Now(ctx)}
	}
	r.s.Status.Runs++
	return r
}

// planned says the configuration has been read.
func (r *promotionRun) planned() bool { return r.s.Status.ConfigCommit != "" }

func (r *promotionRun) run(ctx workflow.Context) error {
	if r.s.Status.Runs == 1 {
		if err := r.in.Validate(); err != nil {
			return temporal.NewNonRetryableApplicationError(err.Error(), ErrInvalidPromotion, nil)
		}
		attrs := []temporal.SearchAttributeUpdate{StageKey.ValueSet(PromotionStageConfig)}
		if r.in.Source.Project != "" {
			attrs = append(attrs, ProjectKey.ValueSet(r.in.Source.Project))
		}
		if err := workflow.UpsertTypedSearchAttributes(ctx, attrs...); err != nil {
			return err
		}
		if err := r.readConfig(ctx); err != nil {
			return err
		}
		r.listen(ctx)
		if err := r.staging(ctx); err != nil {
			return err
		}
		r.openGate(ctx)
	} else {
		r.listen(ctx)
	}
	if r.s.Status.Stage == PromotionStageGate {
		if err := r.gate(ctx); err != nil {
			return err
		}
	}
	for r.s.Cluster < len(r.s.Plan.Production) {
		if err := r.promoteCluster(ctx); err != nil {
			return err
		}
	}
	return nil
}

// readConfig reads the plan at the configuration ref and records the commit.
func (r *promotionRun) readConfig(ctx workflow.Context) error {
	var out contract.PromotionConfigOutput
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, promotionConfigOptions), contract.PromotionConfig,
		contract.PromotionConfigInput{Service: r.in.Service, Ref: r.in.ConfigRef}).Get(ctx, &out)
	if err != nil {
		return wrapf(err, "reading the promotion plan of %s", r.in.Service)
	}
	if err := validatePlan(out.Plan, out.Commit); err != nil {
		return temporal.NewNonRetryableApplicationError(err.Error(), contract.ErrPromotionConfig, nil)
	}
	r.s.Plan, r.s.Simulated = out.Plan, out.Simulated
	st := &r.s.Status
	st.ConfigCommit, st.Approvers, st.Steps = out.Commit, out.Plan.Approvers, len(out.Plan.Steps)
	for _, t := range out.Plan.Production {
		st.Clusters = append(st.Clusters, ClusterProgress{Name: t.Cluster, Namespace: t.Namespace,
			Simulated: slices.Contains(out.Simulated, t.Cluster), State: ClusterPending})
	}
	r.event(ctx, fmt.Sprintf("read the plan of %s at configuration commit %s: %d steps, %d replicas, clusters %v, approvers %v",
		r.in.Service, out.Commit, len(out.Plan.Steps), out.Plan.Replicas, clusterNames(out.Plan.Production), out.Plan.Approvers))
	return nil
}

// staging deploys the image to staging and smoke-checks it, without a human.
func (r *promotionRun) staging(ctx workflow.Context) error {
	st := &r.s.Status
	st.Stage, st.Environment, st.Cluster = PromotionStageStaging, "staging", r.s.Plan.Staging.Cluster
	r.upsertStage(ctx)
	rel := r.release(r.s.Plan.Staging)
	var dep contract.PromotionDeployOutput
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, promotionDeployOptions), contract.PromotionDeploy,
		contract.PromotionDeployInput{ServiceRelease: rel, Image: r.in.Image, Replicas: 1, HistoryMax: r.s.Plan.HistoryMax}).Get(ctx, &dep)
	if err != nil {
		return wrapf(err, "deploying to staging (%s/%s); production is unchanged", rel.Cluster, rel.Namespace)
	}
	var smoke contract.PromotionSmokeOutput
	err = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, promotionDeployOptions), contract.PromotionSmoke,
		contract.PromotionSmokeInput{ServiceRelease: rel, Path: r.s.Plan.SmokePath}).Get(ctx, &smoke)
	if err != nil {
		return wrapf(err, "smoke-checking staging (%s/%s); production is unchanged", rel.Cluster, rel.Namespace)
	}
	st.Staging = &smoke
	r.event(ctx, fmt.Sprintf("staging %s/%s runs the image (revision %d); smoke check: %s", rel.Cluster, rel.Namespace, dep.Revision, smoke.Detail))
	return nil
}

// openGate starts the wait for a human decision.
func (r *promotionRun) openGate(ctx workflow.Context) {
	st := &r.s.Status
	now := workflow.Now(ctx)
	st.Stage, st.Environment, st.Cluster = PromotionStageGate, "", ""
	st.Waiting, st.WaitingSince = "approve or reject by one of "+fmt.Sprint(r.s.Plan.Approvers), now
	if r.s.Plan.PauseTimeout > 0 {
		st.Deadline = now.Add(r.s.Plan.PauseTimeout)
	}
	r.scheduleReminder(now)
	r.upsertStage(ctx)
	r.event(ctx, "waiting at the gate before production")
	r.notify(ctx, contract.NotifyGate, fmt.Sprintf("%s %s passed staging and waits for approval before production (workflow %s)",
		r.in.Service, r.in.Image, workflow.GetInfo(ctx).WorkflowExecution.ID))
}

// gate waits for approve or reject, reminding the approvers, until the pause
// timeout.
func (r *promotionRun) gate(ctx workflow.Context) error {
	st := &r.s.Status
	timedOut, err := r.wait(ctx, st.Deadline, func() bool { return st.ApprovedBy != "" || r.rejected != nil })
	if err != nil {
		return err
	}
	st.Waiting, st.WaitingSince, st.Deadline = "", time.Time{}, time.Time{}
	switch {
	case r.rejected != nil:
		msg := fmt.Sprintf("rejected by %s at the gate: %s; production is unchanged", r.rejected.Approver, orNoReason(r.rejected.Reason))
		r.event(ctx, msg)
		return temporal.NewNonRetryableApplicationError(msg, ErrPromotionRejected, nil)
	case timedOut && st.ApprovedBy == "":
		msg := fmt.Sprintf("nobody approved within the pause timeout of %s; production is unchanged", r.s.Plan.PauseTimeout)
		r.event(ctx, msg)
		return temporal.NewNonRetryableApplicationError(msg, ErrPromotionTimedOut, nil)
	}
	r.notify(ctx, "approved", fmt.Sprintf("%s %s was approved by %s: production starts", r.in.Service, r.in.Image, st.ApprovedBy))
	return nil
}

// promoteCluster takes the current cluster through the canary steps (from
// r.s.Step on) and makes the new image its stable release.
func (r *promotionRun) promoteCluster(ctx workflow.Context) error {
	plan := r.s.Plan
	t := plan.Production[r.s.Cluster]
	rel := r.release(t)
	cp := &r.s.Status.Clusters[r.s.Cluster]
	st := &r.s.Status
	st.Stage, st.Environment, st.Cluster = PromotionStageProduction, "production", t.Cluster
	r.upsertStage(ctx)

	if !r.s.Prepared {
		st.Step, st.Weights = 0, CanaryWeights{}
		var out contract.PromotionDeployOutput
		err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, promotionDeployOptions), contract.PromotionDeploy,
			contract.PromotionDeployInput{ServiceRelease: rel, Image: r.in.Image, Replicas: plan.Replicas, HistoryMax: plan.HistoryMax,
				OnlyIfAbsent: true}).Get(ctx, &out)
		if err != nil {
			cp.State, cp.Detail = ClusterFailed, promotionDetail(err)
			return wrapf(err, "looking up the stable release in %s/%s", t.Cluster, t.Namespace)
		}
		r.s.Prepared, cp.Revision, cp.Previous = true, out.Revision, out.Previous
		switch out.Previous {
		case "":
			cp.State, cp.Detail = ClusterInstalled, "no release existed: installed the new image directly, without a canary"
			r.event(ctx, fmt.Sprintf("%s/%s: %s (revision %d)", t.Cluster, t.Namespace, cp.Detail, out.Revision))
			r.nextCluster()
			return nil
		case r.in.Image:
			r.event(ctx, fmt.Sprintf("%s/%s: the stable release already runs the image", t.Cluster, t.Namespace))
			r.s.Step = len(plan.Steps)
		default:
			r.event(ctx, fmt.Sprintf("%s/%s: stable release at revision %d runs %s", t.Cluster, t.Namespace, out.Revision, out.Previous))
		}
	}

	for r.s.Step < len(plan.Steps) && !st.PromoteFull {
		if r.rollback != nil {
			return r.rollbackCluster(ctx, rel, fmt.Sprintf("%s asked for a rollback: %s", r.rollback.Approver, orNoReason(r.rollback.Reason)))
		}
		if st.Paused || r.s.Hold {
			if err := r.hold(ctx); err != nil {
				return r.failCluster(ctx, rel, err)
			}
			continue
		}
		if err := r.runStep(ctx, rel); err != nil {
			return r.failCluster(ctx, rel, err)
		}
	}
	if r.rollback != nil {
		return r.rollbackCluster(ctx, rel, fmt.Sprintf("%s asked for a rollback: %s", r.rollback.Approver, orNoReason(r.rollback.Reason)))
	}

	// The new image becomes the stable release; then the canary goes.
	r.finalizing, cp.State = true, ClusterFinalizing
	defer func() { r.finalizing = false }()
	var out contract.PromotionDeployOutput
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, promotionDeployOptions), contract.PromotionDeploy,
		contract.PromotionDeployInput{ServiceRelease: rel, Image: r.in.Image, Replicas: plan.Replicas, HistoryMax: plan.HistoryMax}).Get(ctx, &out)
	if err != nil {
		cp.State, cp.Detail = ClusterFailed, "upgrading the stable release failed; the canary was left serving: "+promotionDetail(err)
		return wrapf(err, "upgrading the stable release in %s/%s to the new image", t.Cluster, t.Namespace)
	}
	cp.Revision = out.Revision
	if err := r.removeCanary(ctx, rel); err != nil {
		cp.State, cp.Detail = ClusterFailed, "the stable release runs the new image, but removing the canary failed: "+promotionDetail(err)
		return wrapf(err, "removing the canary in %s/%s after the promotion", t.Cluster, t.Namespace)
	}
	cp.State, cp.Detail = ClusterPromoted, fmt.Sprintf("stable release at revision %d runs the new image; canary removed", out.Revision)
	st.Weights = CanaryWeights{}
	r.event(ctx, fmt.Sprintf("%s/%s promoted: %s", t.Cluster, t.Namespace, cp.Detail))
	r.nextCluster()
	return nil
}

func (r *promotionRun) nextCluster() {
	r.s.Cluster++
	r.s.Step, r.s.Prepared, r.s.Hold = 0, false, false
}

// runStep sets the canary to the step's weight, lets it run for the step's
// pause, and analyses it. A rollback request cancels whatever is in flight.
func (r *promotionRun) runStep(ctx workflow.Context, rel contract.ServiceRelease) error {
	plan := r.s.Plan
	step := plan.Steps[r.s.Step]
	st := &r.s.Status
	cp := &st.Clusters[r.s.Cluster]
	sctx, cancel := workflow.WithCancel(ctx)
	r.cancelStep = cancel
	defer func() { cancel(); r.cancelStep = nil }()

	st.Step = r.s.Step + 1
	canary, stable := CanaryReplicas(step.Weight, plan.Replicas)
	st.Weights = CanaryWeights{Desired: step.Weight, CanaryReplicas: canary, StableReplicas: stable}
	cp.State = ClusterCanary
	var set contract.CanarySetOutput
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(sctx, canaryOptions), contract.CanarySet,
		contract.CanarySetInput{ServiceRelease: rel, Image: r.in.Image, CanaryReplicas: canary, StableReplicas: stable}).Get(sctx, &set)
	if err != nil {
		return wrapf(err, "step %d (%d %%): setting the canary to %d pods and the stable release to %d", st.Step, step.Weight, canary, stable)
	}
	st.Weights.CanaryReady, st.Weights.StableReady = set.CanaryReady, set.StableReady
	if n := set.CanaryReady + set.StableReady; n > 0 {
		st.Weights.Actual = math100(set.CanaryReady, n)
	}
	r.event(ctx, fmt.Sprintf("%s step %d/%d: canary %d pods, stable %d (%d %% wanted, %.1f %% of ready pods)",
		rel.Cluster, st.Step, len(plan.Steps), set.CanaryReady, set.StableReady, step.Weight, st.Weights.Actual))

	if step.Pause > 0 {
		st.Waiting, st.WaitingSince = fmt.Sprintf("step %d runs for %s before its analysis", st.Step, step.Pause), workflow.Now(ctx)
		_, err := workflow.AwaitWithTimeout(sctx, step.Pause, func() bool { return r.rollback != nil || st.PromoteFull })
		st.Waiting, st.WaitingSince = "", time.Time{}
		if err != nil {
			return err
		}
		if r.rollback != nil || st.PromoteFull {
			return nil
		}
	}

	var an contract.Analysis
	err = workflow.ExecuteActivity(workflow.WithActivityOptions(sctx, canaryOptions), contract.CanaryAnalyze,
		contract.CanaryAnalyzeInput{ServiceRelease: rel, Analysis: plan.Analysis}).Get(sctx, &an)
	if err != nil {
		return wrapf(err, "step %d (%d %%): analysing the canary", st.Step, step.Weight)
	}
	st.LastAnalysis = &AnalysisRecord{Analysis: an, Cluster: rel.Cluster, Step: st.Step, Weight: step.Weight, At: workflow.Now(ctx)}
	if !an.Passed {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("step %d (%d %%) failed its analysis: %s", st.Step, step.Weight, an.Reason), ErrPromotionRolledBack, nil)
	}
	r.event(ctx, fmt.Sprintf("%s step %d/%d analysis passed: %s", rel.Cluster, st.Step, len(plan.Steps), an.Reason))
	r.s.Step++
	if step.Indefinite && r.s.Step < len(plan.Steps) {
		r.s.Hold = true
	}
	return nil
}

// hold waits, during a pause or after an indefinite step, for resume,
// promote-full or rollback.
func (r *promotionRun) hold(ctx workflow.Context) error {
	st := &r.s.Status
	why := fmt.Sprintf("step %d of %d in %s is an indefinite pause: resume or promote-full", st.Step, len(r.s.Plan.Steps), st.Cluster)
	if st.Paused {
		why = "paused: resume, promote-full or rollback"
	}
	if st.Waiting != why {
		st.Waiting, st.WaitingSince = why, workflow.Now(ctx)
		r.scheduleReminder(workflow.Now(ctx))
		r.notify(ctx, "paused", fmt.Sprintf("%s %s in %s: %s", r.in.Service, r.in.Image, st.Cluster, why))
	}
	_, err := r.wait(ctx, time.Time{}, func() bool {
		return (!st.Paused && !r.s.Hold) || st.PromoteFull || r.rollback != nil
	})
	if err == nil {
		st.Waiting, st.WaitingSince = "", time.Time{}
	}
	return err
}

// failCluster turns a step's failure into a rollback of the cluster's canary;
// a cancelled workflow removes its canary too.
func (r *promotionRun) failCluster(ctx workflow.Context, rel contract.ServiceRelease, err error) error {
	var can *workflow.ContinueAsNewError
	switch {
	case errors.As(err, &can):
		return err
	case r.rollback != nil:
		return r.rollbackCluster(ctx, rel, fmt.Sprintf("%s asked for a rollback: %s", r.rollback.Approver, orNoReason(r.rollback.Reason)))
	case ctx.Err() != nil:
		_ = r.rollbackCluster(ctx, rel, "the promotion was cancelled")
		return err
	}
	return r.rollbackCluster(ctx, rel, errorText(err))
}

// rollbackCluster removes the canary, leaving the stable release as it was,
// and fails the promotion with the reason.
func (r *promotionRun) rollbackCluster(ctx workflow.Context, rel contract.ServiceRelease, reason string) error {
	cp := &r.s.Status.Clusters[r.s.Cluster]
	st := &r.s.Status
	st.Waiting, st.WaitingSince = "", time.Time{}
	msg := fmt.Sprintf("rolled back in %s/%s: %s; the canary was removed and the stable release left as it was", rel.Cluster, rel.Namespace, reason)
	if err := r.removeCanary(ctx, rel); err != nil {
		cp.State, cp.Detail = ClusterFailed, "removing the canary failed: "+promotionDetail(err)
		msg = fmt.Sprintf("rolling back in %s/%s (%s) failed: removing the canary: %s; remove it by hand and check the stable release",
			rel.Cluster, rel.Namespace, reason, promotionDetail(err))
	} else {
		cp.State, cp.Detail = ClusterRolledBack, reason
		st.Weights = CanaryWeights{StableReplicas: r.s.Plan.Replicas}
	}
	for _, c := range st.Clusters[:r.s.Cluster] {
		if c.State == ClusterPromoted || c.State == ClusterInstalled {
			msg += fmt.Sprintf("; %s already runs the new image (helm rollback to revision %d's predecessor reverts it)", c.Name, c.Revision)
		}
	}
	r.event(ctx, msg)
	return temporal.NewNonRetryableApplicationError(msg, ErrPromotionRolledBack, nil)
}

// removeCanary runs CanaryRemove even when the workflow is being cancelled.
func (r *promotionRun) removeCanary(ctx workflow.Context, rel contract.ServiceRelease) error {
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	return workflow.ExecuteActivity(workflow.WithActivityOptions(dctx, canaryOptions), contract.CanaryRemove,
		contract.CanaryRemoveInput{ServiceRelease: rel, StableReplicas: r.s.Plan.Replicas}).Get(dctx, nil)
}

// wait blocks until cond holds or deadline (zero: none) passes, sending a
// reminder every plan.ReminderEvery, and continues as new when the history
// has grown long. It reports whether the deadline passed.
func (r *promotionRun) wait(ctx workflow.Context, deadline time.Time, cond func() bool) (bool, error) {
	for {
		if cond() {
			return false, nil
		}
		now := workflow.Now(ctx)
		if !deadline.IsZero() && !now.Before(deadline) {
			return true, nil
		}
		if !r.s.NextReminder.IsZero() && !now.Before(r.s.NextReminder) {
			r.s.Status.Reminders++
			r.scheduleReminder(now)
			r.notify(ctx, contract.NotifyReminder, fmt.Sprintf("%s %s still waits: %s (since %s)", r.in.Service, r.in.Image,
				r.s.Status.Waiting, r.s.Status.WaitingSince.UTC().Format(time.RFC3339)))
			continue
		}
		if err := r.maybeContinueAsNew(ctx); err != nil {
			return false, err
		}
		wake := r.s.NextReminder
		if !deadline.IsZero() && (wake.IsZero() || deadline.Before(wake)) {
			wake = deadline
		}
		r.changed = false
		var err error
		if wake.IsZero() {
			err = workflow.Await(ctx, func() bool { return r.changed })
		} else {
			_, err = workflow.AwaitWithTimeout(ctx, wake.Sub(now), func() bool { return r.changed })
		}
		if err != nil {
			return false, err
		}
	}
}

func (r *promotionRun) scheduleReminder(now time.Time) {
	r.s.NextReminder = time.Time{}
	if r.s.Plan.ReminderEvery > 0 {
		r.s.NextReminder = now.Add(r.s.Plan.ReminderEvery)
	}
}

// maybeContinueAsNew continues as new, carrying the state, once the history
// is long. Only waits call it: the state then says where to go on.
func (r *promotionRun) maybeContinueAsNew(ctx workflow.Context) error {
	limit := r.in.MaxHistory
	if limit <= 0 {
		limit = DefaultPromotionMaxHistory
	}
	info := workflow.GetInfo(ctx)
	if info.GetCurrentHistoryLength() < limit && !info.GetContinueAsNewSuggested() {
		return nil
	}
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	r.drainSignals(ctx)
	if r.rejected != nil || r.rollback != nil {
		// A decision arrived while draining: act on it in this run.
		return nil
	}
	r.event(ctx, fmt.Sprintf("continuing as new after %d history events", info.GetCurrentHistoryLength()))
	next := r.in
	state := r.s
	next.State = &state
	return workflow.NewContinueAsNewError(ctx, Promotion, next)
}

// release is the service's release in one target.
func (r *promotionRun) release(t contract.Target) contract.ServiceRelease {
	return contract.ServiceRelease{Target: t, Service: r.in.Service, Simulated: slices.Contains(r.s.Simulated, t.Cluster)}
}

// event appends a line to the status' log, dropping the oldest beyond maxEvents.
func (r *promotionRun) event(ctx workflow.Context, msg string) {
	ev := &r.s.Status.Events
	*ev = append(*ev, PromotionEvent{At: workflow.Now(ctx), Message: msg})
	if len(*ev) > maxEvents {
		*ev = slices.Clone((*ev)[len(*ev)-maxEvents:])
	}
	workflow.GetLogger(ctx).Info(msg, "service", r.in.Service)
}

// upsertStage publishes the stage as the ConveyorStage search attribute.
func (r *promotionRun) upsertStage(ctx workflow.Context) {
	v := r.s.Status.Stage
	if v == PromotionStageProduction {
		v += "/" + r.s.Status.Cluster
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, StageKey.ValueSet(v)); err != nil {
		workflow.GetLogger(ctx).Warn("Setting the stage search attribute failed", "error", err)
	}
}

// notify tells the approvers; a failure is logged, never fatal.
func (r *promotionRun) notify(ctx workflow.Context, kind, msg string) {
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, promotionNotifyOptions), contract.PromotionNotify,
		contract.PromotionNotifyInput{Service: r.in.Service, Kind: kind, Message: msg, Approvers: r.s.Plan.Approvers}).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Error("Notifying the approvers failed", "kind", kind, "error", err)
	}
}

func clusterNames(ts []contract.Target) []string {
	var names []string
	for _, t := range ts {
		names = append(names, t.Cluster)
	}
	return names
}

func orNoReason(s string) string {
	if s == "" {
		return "no reason given"
	}
	return s
}

// math100 is part/whole in percent, to one decimal.
func math100(part, whole int) float64 {
	return float64(part*1000/whole) / 10
}

// stepErr is a failure with what the promotion was doing: its text is that
// context and the innermost application error's message.
type stepErr struct {
	msg string
	err error
}

func (e *stepErr) Error() string { return e.msg + ": " + promotionDetail(e.err) }
func (e *stepErr) Unwrap() error { return e.err }

func wrapf(err error, format string, args ...any) error {
	return &stepErr{msg: fmt.Sprintf(format, args...), err: err}
}

// errorText is what the status says about err.
func errorText(err error) string {
	var se *stepErr
	if errors.As(err, &se) {
		return se.Error()
	}
	return promotionDetail(err)
}

// promotionDetail is the message of the innermost application error (an
// activity's own words, without the SDK's type and retry notes), or err's text.
func promotionDetail(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.Message() != "" {
		return app.Message()
	}
	return err.Error()
}
