package promotions

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/wikimedia/conveyor/workflows"

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
			return temporal.NewNonRetryableApplicationError(err.Error(), contract.ErrPromotionInput, nil)
		}
		attrs := []temporal.SearchAttributeUpdate{workflows.StageKey.ValueSet(PromotionStageConfig)}
		if r.in.Source.Project != "" {
			attrs = append(attrs, workflows.ProjectKey.ValueSet(r.in.Source.Project))
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
	err := workflows.Execute(workflow.WithActivityOptions(ctx, promotionConfigOptions), contract.PromotionConfig,
		contract.PromotionConfigInput{Service: r.in.Service, Ref: r.in.ConfigRef, Image: r.in.Image}).Get(ctx, &out)
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
	err := workflows.Execute(workflow.WithActivityOptions(ctx, promotionDeployOptions), contract.PromotionDeploy,
		contract.PromotionDeployInput{ServiceRelease: rel, Image: r.in.Image, Replicas: 1, HistoryMax: r.s.Plan.HistoryMax}).Get(ctx, &dep)
	if err != nil {
		return wrapf(err, "deploying to staging (%s/%s); production is unchanged", rel.Cluster, rel.Namespace)
	}
	var smoke contract.PromotionSmokeOutput
	err = workflows.Execute(workflow.WithActivityOptions(ctx, promotionDeployOptions), contract.PromotionSmoke,
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
	outcome := "approved"
	switch {
	case r.rejected != nil:
		outcome = "rejected"
	case timedOut && st.ApprovedBy == "":
		outcome = "timed-out"
	}
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"service": r.in.Service, "outcome": outcome}).
		Timer(workflows.MetricPromotionGateWait).Record(workflow.Now(ctx).Sub(st.WaitingSince))
	st.Waiting, st.WaitingSince, st.Deadline = "", time.Time{}, time.Time{}
	switch {
	case r.rejected != nil:
		msg := fmt.Sprintf("rejected by %s at the gate: %s; production is unchanged", r.rejected.Approver, orNoReason(r.rejected.Reason))
		r.event(ctx, msg)
		return temporal.NewNonRetryableApplicationError(msg, contract.ErrPromotionRejected, nil)
	case timedOut && st.ApprovedBy == "":
		msg := fmt.Sprintf("nobody approved within the pause timeout of %s; production is unchanged", r.s.Plan.PauseTimeout)
		r.event(ctx, msg)
		return temporal.NewNonRetryableApplicationError(msg, contract.ErrPromotionTimedOut, nil)
	}
	r.notify(ctx, "approved", fmt.Sprintf("%s %s was approved by %s: production starts", r.in.Service, r.in.Image, st.ApprovedBy))
	return nil
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
			workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"service": r.in.Service, "stage": r.s.Status.Stage}).
				Counter(workflows.MetricPromotionReminders).Inc(1)
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
	if !workflows.HistoryFull(ctx, info.GetCurrentHistoryLength(), limit) {
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
	r.describe(ctx)
}

// upsertStage publishes the stage as the ConveyorStage search attribute.
func (r *promotionRun) upsertStage(ctx workflow.Context) {
	v := r.s.Status.Stage
	if v == PromotionStageProduction {
		v += "/" + r.s.Status.Cluster
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, workflows.StageKey.ValueSet(v)); err != nil {
		workflow.GetLogger(ctx).Warn("Setting the stage search attribute failed", "error", err)
	}
	r.describe(ctx)
}

// notify tells the approvers; a failure is logged, never fatal.
func (r *promotionRun) notify(ctx workflow.Context, kind, msg string) {
	err := workflows.Execute(workflow.WithActivityOptions(ctx, promotionNotifyOptions), contract.PromotionNotify,
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

func (e *stepErr) Error() string { return e.msg + ": " + workflows.ErrorDetail(e.err) }
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
	return workflows.ErrorDetail(err)
}
