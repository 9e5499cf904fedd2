package changes

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/workflows/internal/wftest"
	"github.com/wikimedia/conveyor/workflows/promotions"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/activities/contract"
)

// TestMergedBuildStartsPromotion runs the merge batcher with a Pipeline that
// publishes an image: the batcher asks the configuration registry for the
// service's plan and starts its Promotion, once, under the image's id; a
// service without a plan is not promoted.
func TestMergedBuildStartsPromotion(t *testing.T) {
	for _, tc := range []struct {
		name     string
		absent   bool
		wantNote string
	}{
		{name: "with a plan"},
		{name: "without a plan", absent: true, wantNote: "no promotion plan for hello"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestWorkflowEnvironment()
			env.RegisterWorkflow(MergeBatcher)
			env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in PipelineInput) (PipelineStatus, error) {
				return PipelineStatus{Project: in.Project, Ref: in.Ref, Commit: "abc123",
					Published: []string{"localhost:5000/hello:2026-11-26-120000-production@sha256:" + sha('1')}}, nil
			}, workflow.RegisterOptions{Name: "Pipeline"})
			var mu sync.Mutex
			var started []promotions.PromotionInput
			var ids []string
			env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in promotions.PromotionInput) (promotions.PromotionStatus, error) {
				mu.Lock()
				started = append(started, in)
				ids = append(ids, workflow.GetInfo(ctx).WorkflowExecution.ID)
				mu.Unlock()
				return promotions.PromotionStatus{}, nil
			}, workflow.RegisterOptions{Name: "Promotion"})
			var asked []contract.PromotionConfigInput
			env.RegisterActivityWithOptions(func(_ context.Context, in contract.PromotionConfigInput) (contract.PromotionConfigOutput, error) {
				mu.Lock()
				asked = append(asked, in)
				mu.Unlock()
				if tc.absent {
					return contract.PromotionConfigOutput{Absent: true}, nil
				}
				return contract.PromotionConfigOutput{Commit: wftest.PromoCommit, Plan: wftest.PromotionPlan()}, nil
			}, activity.RegisterOptions{Name: contract.PromotionConfig.Name})

			env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalMerged, merge(1)) }, 0)
			var end BatcherStatus
			env.RegisterDelayedCallback(func() {
				end = queryBatcher(t, env)
				env.CancelWorkflow()
			}, time.Hour)
			env.ExecuteWorkflow(MergeBatcher, BatcherInput{Target: batchTarget})

			if len(asked) != 1 || asked[0].Service != "hello" || !asked[0].Optional {
				t.Fatalf("asked the registry %+v, want once for hello, optionally", asked)
			}
			lb := end.State.LastBuild
			if lb == nil {
				t.Fatal("no build")
			}
			if tc.absent {
				if len(started) != 0 || lb.Promotion != "" || lb.PromotionNote == "" || !strings.Contains(lb.PromotionNote, tc.wantNote) {
					t.Errorf("promotions %+v, build %+v", started, lb)
				}
				return
			}
			wantImage := "localhost:5000/hello@sha256:" + sha('1')
			if len(started) != 1 || started[0].Image != wantImage || started[0].Service != "hello" ||
				started[0].ConfigRef != wftest.PromoCommit || started[0].Source.Pipeline != "batch/hello/main/build-1" {
				t.Fatalf("promotions %+v", started)
			}
			if ids[0] != promotions.PromotionID("hello", wantImage) || lb.Promotion != ids[0] {
				t.Errorf("promotion id %q, recorded %q", ids[0], lb.Promotion)
			}
		})
	}
}

func TestPublishedImage(t *testing.T) {
	for _, tc := range []struct {
		published, image, service string
	}{
		{"localhost:5000/hello:t1@sha256:" + sha('2'), "localhost:5000/hello@sha256:" + sha('2'), "hello"},
		{"registry.example.org/team/svc:v1@sha256:" + sha('3'), "registry.example.org/team/svc@sha256:" + sha('3'), "team/svc"},
		{"localhost:5000/hello:t1", "", ""},
	} {
		image, service, ok := publishedImage(PipelineStatus{Published: []string{tc.published}})
		if image != tc.image || service != tc.service || ok != (tc.image != "") {
			t.Errorf("publishedImage(%s) = %s, %s, %v", tc.published, image, service, ok)
		}
	}
}

func sha(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return string(b)
}
