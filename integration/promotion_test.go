package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/internal/client/launch"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/workflows/promotions"
	"go.temporal.io/sdk/temporal"
)

// TestPromotionToFullProduction approves a promotion of hello v2 and sees it
// reach 100 % in both clusters: the stable release runs v2 at a new Helm revision,
// the canary is gone, staging runs v2, and the status tells the story.
func TestPromotionToFullProduction(t *testing.T) {
	pc := newPromotionCase(t, planOptions{})
	imgs := pc.images
	run := pc.start(imgs.v2)
	gate := pc.waitStatus(run, 5*time.Minute, "the promotion reaching its gate", atGate)
	if gate.ConfigCommit != pc.commit || gate.Staging == nil || gate.Staging.Status != 200 {
		t.Errorf("at the gate: configuration commit %s (want %s), staging smoke check %+v", gate.ConfigCommit, pc.commit, gate.Staging)
	}
	if _, err := pc.decide(run, promotions.PromoteApprove, "alice"); err != nil {
		t.Fatalf("alice's approve: %v", err)
	}
	st, err := pc.result(run, 10*time.Minute)
	if err != nil {
		t.Fatalf("promotion failed: %v\n%+v", err, st)
	}
	stacktest.RecordHistory(t, pc.c, run.GetID(), run.GetRunID(), "promotion-full.json")
	if st.Stage != promotions.PromotionStagePromoted || st.ApprovedBy != "alice" {
		t.Errorf("stage %s approved by %q, want promoted by alice", st.Stage, st.ApprovedBy)
	}
	for _, cl := range pc.prod {
		pc.wantStable(cl.Name, imgs.v2, []int{1, 2})
		if cs := clusterState(st, cl.Name); cs.State != promotions.ClusterPromoted || cs.Revision != 2 || cs.Previous != imgs.v1 {
			t.Errorf("%s in the status: %+v, want promoted at revision 2 from %s", cl.Name, cs, imgs.v1)
		}
	}
	staging := pc.inspect(pc.prod[0].Name, pc.service+"-staging")
	if staging.image != imgs.v2 {
		t.Errorf("staging runs %s, want %s", staging.image, imgs.v2)
	}
	// The last analysis is the last cluster's: codfw's, on simulated nodes.
	if a := st.LastAnalysis; a == nil || !a.Passed || !strings.Contains(a.Reason, "readiness only") {
		t.Errorf("last analysis %+v, want codfw's readiness-only pass", st.LastAnalysis)
	}
	var eqiadPassed bool
	for _, ev := range st.Events {
		t.Logf("%s %s", ev.At.Format("15:04:05.000"), ev.Message)
		eqiadPassed = eqiadPassed || strings.HasPrefix(ev.Message, pc.prod[0].Name) && strings.Contains(ev.Message, "canary passed: 20 GETs")
	}
	if !eqiadPassed {
		t.Errorf("no event says the eqiad canary passed an analysis of 20 requests: %+v", st.Events)
	}
}

// TestPromotionBadCanaryRollsBack promotes hello-broken, whose /cgi-bin/hello
// answers 500: the first step's analysis fails, the canary is removed, the
// stable release is untouched in every cluster and the promotion fails with the
// reason.
func TestPromotionBadCanaryRollsBack(t *testing.T) {
	pc := newPromotionCase(t, planOptions{})
	imgs := pc.images
	run := pc.startApproved(imgs.broken, "bob")
	st, err := pc.result(run, 10*time.Minute)
	wantFailure(t, err, contract.ErrPromotionRolledBack, "failed its analysis", "error ratio 1.000 is above maxErrorRatio 0.05", "broken on purpose")
	stacktest.RecordHistory(t, pc.c, run.GetID(), run.GetRunID(), "promotion-bad-canary.json")
	if st.Stage != promotions.PromotionStageRolledBack {
		t.Errorf("stage %s, want %s", st.Stage, promotions.PromotionStageRolledBack)
	}
	if a := st.LastAnalysis; a == nil || a.Passed || a.Requests != 20 || a.Errors != 20 || a.StableErrorRatio != 0 {
		t.Errorf("last analysis %+v, want 20 of 20 canary requests failed and none of the stable's", st.LastAnalysis)
	}
	for _, cl := range pc.prod {
		pc.wantStable(cl.Name, imgs.v1, []int{1})
	}
	if cs := clusterState(st, pc.prod[0].Name); cs.State != promotions.ClusterRolledBack {
		t.Errorf("%s in the status: %+v, want rolled back", pc.prod[0].Name, cs)
	}
	if cs := clusterState(st, pc.prod[1].Name); cs.State != promotions.ClusterPending {
		t.Errorf("%s in the status: %+v, want pending: it was never touched", pc.prod[1].Name, cs)
	}
}

// TestPromotionGateRefusesNonApproverAndRejectKeepsProduction sends approve as
// someone the plan does not list (refused by the update, nothing recorded), then
// rejects as an approver: production stays at hello v1 everywhere. An unpublished
// image is then refused outright.
func TestPromotionGateRefusesNonApproverAndRejectKeepsProduction(t *testing.T) {
	pc := newPromotionCase(t, planOptions{})
	imgs := pc.images
	run := pc.start(imgs.v2)
	pc.waitStatus(run, 5*time.Minute, "the promotion reaching its gate", atGate)

	_, err := pc.decide(run, promotions.PromoteApprove, "mallory")
	if !errors.Is(err, launch.ErrRefused) || !strings.Contains(err.Error(), `"mallory" is not an approver`) {
		t.Fatalf("mallory's approve: %v, want refused as not an approver", err)
	}
	st, err := launch.PromotionStatus(context.Background(), pc.c, run.GetID(), run.GetRunID())
	if err != nil {
		t.Fatal(err)
	}
	if st.Stage != promotions.PromotionStageGate || st.ApprovedBy != "" || len(st.Decisions) != 0 {
		t.Errorf("after a refused approve: stage %s, approved by %q, decisions %+v: want still at the gate, nothing recorded", st.Stage, st.ApprovedBy, st.Decisions)
	}

	if _, err := pc.decide(run, promotions.PromoteReject, "bob"); err != nil {
		t.Fatalf("bob's reject: %v", err)
	}
	pc.wantAborted(run, 5*time.Minute, promotions.PromotionStageRejected, imgs.v1, contract.ErrPromotionRejected, "rejected by bob")

	// An image the pipeline never published for the service (a candidate of
	// its own repository) is refused before anything is deployed.
	unpublished := testImages(t).v2
	_, err = pc.result(pc.start(unpublished), 2*time.Minute)
	if !hasApplicationError(err, contract.ErrPromotionInput) || !strings.Contains(fmt.Sprint(err), unpublished+" is not in service "+pc.service+"'s repository") {
		t.Errorf("promoting an unpublished image: %v, want it refused with %s", err, contract.ErrPromotionInput)
	}
	for _, cl := range pc.prod {
		pc.wantStable(cl.Name, imgs.v1, []int{1})
	}
}

// TestPromotionPauseTimeoutAborts lets the gate wait past the plan's
// pauseTimeout: the promotion fails, production untouched.
func TestPromotionPauseTimeoutAborts(t *testing.T) {
	pc := newPromotionCase(t, planOptions{pauseTimeout: "20s"})
	imgs := pc.images
	run := pc.start(imgs.v2)
	gate := pc.waitStatus(run, 5*time.Minute, "the promotion reaching its gate", atGate)
	if gate.Deadline.IsZero() {
		t.Errorf("the gate's status has no deadline: %+v", gate)
	}
	pc.wantAborted(run, 3*time.Minute, promotions.PromotionStageTimedOut, imgs.v1, contract.ErrPromotionTimedOut, "pause timeout of 20s")
}

// TestPromotionSurvivesWorkerKill kills the worker (SIGKILL) while the first
// canary step is being set in eqiad, starts another, and sees the promotion
// finish as if nothing happened.
func TestPromotionSurvivesWorkerKill(t *testing.T) {
	pc := newPromotionCase(t, planOptions{steps: "[{weight: 50, pause: 5s}, {weight: 100}]"})
	imgs := pc.images
	run := pc.startApproved(imgs.v2, "alice")
	// Kill once the first step's canary Deployment exists: CanarySet is waiting for
	// its pods, or the step runs its pause.
	eqiad := pc.prod[0].Name
	st := pc.waitStatus(run, 5*time.Minute, "the first canary step in "+eqiad, func(st promotions.PromotionStatus) error {
		if st.Cluster != eqiad || st.Step != 1 {
			return fmt.Errorf("stage %s cluster %s step %d", st.Stage, st.Cluster, st.Step)
		}
		if p := pc.inspect(eqiad, pc.service); !p.canary {
			return errors.New("no canary Deployment yet")
		}
		return nil
	})
	pc.stopWorker(syscall.SIGKILL)
	inFlight := "CanarySet in flight"
	if st.Weights.CanaryReady > 0 {
		inFlight = "the step's pause or analysis"
	}
	t.Logf("killed the worker in step 1 of %s (%s)", eqiad, inFlight)
	pc.startWorker()

	st, err := pc.result(run, 10*time.Minute)
	if err != nil {
		t.Fatalf("the promotion did not survive the kill: %v\n%+v", err, st)
	}
	stacktest.RecordHistory(t, pc.c, run.GetID(), run.GetRunID(), "promotion-worker-killed.json")
	if st.Stage != promotions.PromotionStagePromoted {
		t.Errorf("stage %s, want %s", st.Stage, promotions.PromotionStagePromoted)
	}
	for _, cl := range pc.prod {
		pc.wantStable(cl.Name, imgs.v2, []int{1, 2})
	}
}

// hasApplicationError says whether an application error of type typ is in err's
// chain (a workflow's failure wraps its activity's).
func hasApplicationError(err error, typ string) bool {
	for err != nil {
		var app *temporal.ApplicationError
		if !errors.As(err, &app) {
			return false
		}
		if app.Type() == typ {
			return true
		}
		err = app.Unwrap()
	}
	return false
}
