package promotions

import (
	"errors"
	"fmt"
	"time"

	"github.com/wikimedia/conveyor/workflows"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/activities/contract"
)

// Production, cluster by cluster: the stable release looked up, the canary
// steps with their analyses, pauses and holds, the final upgrade, and the
// rollback that removes the canary.

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
		err := workflows.Execute(workflow.WithActivityOptions(ctx, promotionDeployOptions), contract.PromotionDeploy,
			contract.PromotionDeployInput{ServiceRelease: rel, Image: r.in.Image, Replicas: plan.Replicas, HistoryMax: plan.HistoryMax,
				OnlyIfAbsent: true}).Get(ctx, &out)
		if err != nil {
			cp.State, cp.Detail = ClusterFailed, workflows.ErrorDetail(err)
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
	err := workflows.Execute(workflow.WithActivityOptions(ctx, promotionDeployOptions), contract.PromotionDeploy,
		contract.PromotionDeployInput{ServiceRelease: rel, Image: r.in.Image, Replicas: plan.Replicas, HistoryMax: plan.HistoryMax}).Get(ctx, &out)
	if err != nil {
		cp.State, cp.Detail = ClusterFailed, "upgrading the stable release failed; the canary was left serving: "+workflows.ErrorDetail(err)
		return wrapf(err, "upgrading the stable release in %s/%s to the new image", t.Cluster, t.Namespace)
	}
	cp.Revision = out.Revision
	if err := r.removeCanary(ctx, rel); err != nil {
		cp.State, cp.Detail = ClusterFailed, "the stable release runs the new image, but removing the canary failed: "+workflows.ErrorDetail(err)
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
	err := workflows.Execute(workflow.WithActivityOptions(sctx, canaryOptions), contract.CanarySet,
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
	err = workflows.Execute(workflow.WithActivityOptions(sctx, canaryOptions), contract.CanaryAnalyze,
		contract.CanaryAnalyzeInput{ServiceRelease: rel, Analysis: plan.Analysis}).Get(sctx, &an)
	if err != nil {
		return wrapf(err, "step %d (%d %%): analysing the canary", st.Step, step.Weight)
	}
	st.LastAnalysis = &AnalysisRecord{Analysis: an, Cluster: rel.Cluster, Step: st.Step, Weight: step.Weight, At: workflow.Now(ctx)}
	if !an.Passed {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("step %d (%d %%) failed its analysis: %s", st.Step, step.Weight, an.Reason), contract.ErrPromotionRolledBack, nil)
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
		cp.State, cp.Detail = ClusterFailed, "removing the canary failed: "+workflows.ErrorDetail(err)
		msg = fmt.Sprintf("rolling back in %s/%s (%s) failed: removing the canary: %s; remove it by hand and check the stable release",
			rel.Cluster, rel.Namespace, reason, workflows.ErrorDetail(err))
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
	return temporal.NewNonRetryableApplicationError(msg, contract.ErrPromotionRolledBack, nil)
}

// removeCanary runs CanaryRemove even when the workflow is being cancelled.
func (r *promotionRun) removeCanary(ctx workflow.Context, rel contract.ServiceRelease) error {
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	return workflows.Execute(workflow.WithActivityOptions(dctx, canaryOptions), contract.CanaryRemove,
		contract.CanaryRemoveInput{ServiceRelease: rel, StableReplicas: r.s.Plan.Replicas}).Get(dctx, nil)
}
