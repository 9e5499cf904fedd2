package integration

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/promote"
)

// TestPromotionActivitiesAreIdempotent calls the promotion's activities directly,
// twice each, on the real clusters: a repeated call changes nothing (no new Helm
// revision, same pods), removing an absent canary is fine, and a canary whose
// image does not exist fails for good instead of waiting.
func TestPromotionActivitiesAreIdempotent(t *testing.T) {
	pc := newPromotionCase(t, planOptions{})
	pc.stopWorker(syscall.SIGTERM) // no workflow here: the activities run in the test
	imgs := pc.images
	acts, err := promote.New(pc.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	plan, err := acts.PromotionConfig(ctx, contract.PromotionConfigInput{Service: pc.service})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Simulated) != 1 || plan.Simulated[0] != pc.prod[1].Name {
		t.Errorf("simulated clusters %v, want [%s]", plan.Simulated, pc.prod[1].Name)
	}
	eqiad := contract.ServiceRelease{Target: plan.Plan.Production[0], Service: pc.service}
	codfw := contract.ServiceRelease{Target: plan.Plan.Production[1], Service: pc.service}

	// The stable release is already at v1 (newPromotionCase): deploying it again
	// adds no revision; asking only-if-absent for v2 reports v1 and changes nothing.
	dep, err := acts.PromotionDeploy(ctx, contract.PromotionDeployInput{ServiceRelease: eqiad, Image: imgs.v1, Replicas: promotionReplicas, HistoryMax: 3})
	if err != nil || dep.Revision != 1 || dep.Previous != "" {
		t.Errorf("deploying v1 again: %+v, %v; want revision 1 and no previous image", dep, err)
	}
	dep, err = acts.PromotionDeploy(ctx, contract.PromotionDeployInput{ServiceRelease: eqiad, Image: imgs.v2, Replicas: promotionReplicas, HistoryMax: 3, OnlyIfAbsent: true})
	if err != nil || dep.Revision != 1 || dep.Previous != imgs.v1 {
		t.Errorf("only-if-absent with v2: %+v, %v; want revision 1 running v1", dep, err)
	}
	pc.wantStable(eqiad.Cluster, imgs.v1, []int{1})

	smoke, err := acts.PromotionSmoke(ctx, contract.PromotionSmokeInput{ServiceRelease: eqiad, Path: "/cgi-bin/hello?name=smoke"})
	if err != nil || smoke.Status != 200 {
		t.Errorf("smoke check in eqiad: %+v, %v", smoke, err)
	}
	smoke, err = acts.PromotionSmoke(ctx, contract.PromotionSmokeInput{ServiceRelease: codfw})
	if err != nil || !strings.Contains(smoke.Detail, "readiness only") {
		t.Errorf("smoke check in codfw: %+v, %v; want readiness only", smoke, err)
	}

	// A canary of v2 at 1 + 1, set twice: one canary revision, the same pods.
	set := contract.CanarySetInput{ServiceRelease: eqiad, Image: imgs.v2, CanaryReplicas: 1, StableReplicas: 1}
	for i := range 2 {
		out, err := acts.CanarySet(ctx, set)
		if err != nil || out.CanaryReady != 1 || out.StableReady != 1 {
			t.Fatalf("CanarySet #%d: %+v, %v", i+1, out, err)
		}
	}
	p := pc.inspect(eqiad.Cluster, pc.service)
	if !p.canary || p.replicas != 1 || p.image != imgs.v1 {
		t.Errorf("after CanarySet: canary %v, stable %d replicas of %s; want a canary and 1 stable pod of v1", p.canary, p.replicas, p.image)
	}
	secrets, err := pc.kube[eqiad.Cluster].CoreV1().Secrets(pc.service).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,name=" + pc.service + "-canary"})
	if err != nil || len(secrets.Items) != 1 {
		t.Errorf("canary Helm revisions after setting it twice: %d (%v), want 1", len(secrets.Items), err)
	}

	an, err := acts.CanaryAnalyze(ctx, contract.CanaryAnalyzeInput{ServiceRelease: eqiad, Analysis: plan.Plan.Analysis})
	if err != nil || !an.Passed || an.Requests != plan.Plan.Analysis.Requests || an.Errors != 0 {
		t.Errorf("analysis of a good canary: %+v, %v", an, err)
	}
	an, err = acts.CanaryAnalyze(ctx, contract.CanaryAnalyzeInput{ServiceRelease: codfw, Analysis: plan.Plan.Analysis})
	if err != nil || an.Passed || !strings.Contains(an.Reason, "no canary pod") {
		t.Errorf("analysis in codfw without a canary: %+v, %v; want failed, no canary pod", an, err)
	}

	for i := range 2 {
		if err := acts.CanaryRemove(ctx, contract.CanaryRemoveInput{ServiceRelease: eqiad, StableReplicas: promotionReplicas}); err != nil {
			t.Fatalf("CanaryRemove #%d: %v", i+1, err)
		}
	}
	pc.wantStable(eqiad.Cluster, imgs.v1, []int{1})

	// A canary of an image the registry does not have fails for good.
	missing := strings.Split(imgs.v1, "@")[0] + "@sha256:" + strings.Repeat("0", 64)
	_, err = acts.CanarySet(ctx, contract.CanarySetInput{ServiceRelease: eqiad, Image: missing, CanaryReplicas: 1, StableReplicas: 1})
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != contract.ErrReleaseNotReady || !app.NonRetryable() {
		t.Errorf("canary of a missing image: %v, want a non-retryable %s", err, contract.ErrReleaseNotReady)
	}
	if err := acts.CanaryRemove(ctx, contract.CanaryRemoveInput{ServiceRelease: eqiad, StableReplicas: promotionReplicas}); err != nil {
		t.Fatal(err)
	}
	pc.wantStable(eqiad.Cluster, imgs.v1, []int{1})
}
