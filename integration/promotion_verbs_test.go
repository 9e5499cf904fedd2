package integration

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/workflows/promotions"
)

// TestPromotionOperatorVerbs drives a promotion through the verbs an operator
// sends after the gate: the first canary step in eqiad is indefinite (resume by
// an approver goes on), the second runs for an hour (pause, then promote-full
// skips what is left in every cluster). Both clusters end on v2.
func TestPromotionOperatorVerbs(t *testing.T) {
	pc := newPromotionCase(t, planOptions{steps: "[{weight: 25, pause: indefinite}, {weight: 50, pause: 1h}, {weight: 100}]"})
	imgs := pc.images
	run := pc.startApproved(imgs.v2, "alice")
	eqiad := pc.prod[0].Name
	pc.waitStatus(run, 5*time.Minute, "the indefinite first step in "+eqiad, atStep(eqiad, 1, "indefinite pause"))
	if _, err := pc.decide(run, promotions.PromoteResume, "mallory"); err == nil || !strings.Contains(err.Error(), "not an approver") {
		t.Errorf("mallory's resume: %v, want refused as not an approver", err)
	}
	if _, err := pc.decide(run, promotions.PromoteResume, "bob"); err != nil {
		t.Fatalf("bob's resume: %v", err)
	}
	pc.waitStatus(run, 5*time.Minute, "the hour-long second step in "+eqiad, atStep(eqiad, 2, "runs for 1h0m0s"))
	// Anyone may pause.
	if st, err := pc.decide(run, promotions.PromotePause, "carol"); err != nil || !st.Paused {
		t.Fatalf("carol's pause: %v (paused %v)", err, st.Paused)
	}
	if _, err := pc.decide(run, promotions.PromoteFull, "alice"); err != nil {
		t.Fatalf("alice's promote-full: %v", err)
	}
	st, err := pc.result(run, 10*time.Minute)
	if err != nil {
		t.Fatalf("promotion failed: %v\n%+v", err, st)
	}
	stacktest.RecordHistory(t, pc.c, run.GetID(), run.GetRunID(), "promotion-resume-pause-promote-full.json")
	if st.Stage != promotions.PromotionStagePromoted || !st.PromoteFull {
		t.Errorf("stage %s, promote-full %v: want promoted by promote-full", st.Stage, st.PromoteFull)
	}
	var verbs []string
	for _, d := range st.Decisions {
		if d.Accepted {
			verbs = append(verbs, d.Verb+" by "+d.Approver)
		}
	}
	if want := "approve by alice, resume by bob, pause by carol, promote-full by alice"; strings.Join(verbs, ", ") != want {
		t.Errorf("accepted decisions %q, want %q", verbs, want)
	}
	for _, cl := range pc.prod {
		pc.wantStable(cl.Name, imgs.v2, []int{1, 2})
	}
}

// TestPromotionRollbackAtAnIndefiniteStep asks for a rollback while the eqiad
// canary holds at an indefinite step: the canary goes, both clusters keep v1,
// the promotion fails saying who asked.
func TestPromotionRollbackAtAnIndefiniteStep(t *testing.T) {
	pc := newPromotionCase(t, planOptions{steps: "[{weight: 50, pause: indefinite}, {weight: 100}]"})
	imgs := pc.images
	run := pc.startApproved(imgs.v2, "alice")
	eqiad := pc.prod[0].Name
	pc.waitStatus(run, 5*time.Minute, "the indefinite first step in "+eqiad, atStep(eqiad, 1, "indefinite pause"))
	if p := pc.inspect(eqiad, pc.service); !p.canary {
		t.Fatalf("no canary in %s at the indefinite step: %+v", eqiad, p)
	}
	if _, err := pc.decide(run, promotions.PromoteRollback, "carol"); err != nil {
		t.Fatalf("carol's rollback: %v", err)
	}
	pc.wantAborted(run, 5*time.Minute, promotions.PromotionStageRolledBack, imgs.v1, contract.ErrPromotionRolledBack, "carol asked for a rollback")
	stacktest.RecordHistory(t, pc.c, run.GetID(), run.GetRunID(), "promotion-rollback.json")
}

// atStep accepts a status at canary step n in cluster whose wait says waiting.
func atStep(cluster string, n int, waiting string) func(promotions.PromotionStatus) error {
	return func(st promotions.PromotionStatus) error {
		if st.Cluster != cluster || st.Step != n || !strings.Contains(st.Waiting, waiting) {
			return fmt.Errorf("stage %s cluster %s step %d waiting %q", st.Stage, st.Cluster, st.Step, st.Waiting)
		}
		if st.Error != "" {
			return errors.New(st.Error)
		}
		return nil
	}
}
