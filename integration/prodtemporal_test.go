package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/workflows"
	"github.com/wikimedia/conveyor/workflows/changes"
	"github.com/wikimedia/conveyor/workflows/promotions"
)

// The production Temporal tests run conveyor on Temporal's own server (frontend,
// history, matching and worker as four processes, on PostgreSQL) instead of the
// dev server the other tests use: one change pipeline, with PostgreSQL restarted
// under it, and one promotion to full production.

func TestPipelineOnProductionTemporalSurvivesPostgresRestart(t *testing.T) {
	prod := stacktest.ProdTemporal(t)
	wout := startLoggedWorker(t, []string{"TEMPORAL_ADDRESS=" + prod.Temporal.Address, "TEMPORAL_NAMESPACE=" + prod.Temporal.Namespace},
		"--pools", "build,deploy")
	c := dialTemporal(t, prod.Temporal)
	image := uniqueImage(t, "pg")
	restarted := false
	st, _, err := runPipelineCase(t, c, pipelineCase{record: "on-postgres", image: image, change: 4601, publish: true,
		duringStep: changes.StepBuildProduction, during: func() {
			stacktest.Restart(t, "postgresql")
			restarted = true
		}})
	if err != nil {
		t.Fatalf("pipeline failed on the production Temporal: %v\n%+v\nworker:\n%s", err, st, wout.String())
	}
	if !restarted {
		t.Fatal("PostgreSQL was not restarted during the pipeline")
	}
	for _, step := range changes.PipelineSteps {
		if s := st.Step(step); s.State != changes.StepSucceeded {
			t.Errorf("step %s is %s (%s), want succeeded", step, s.State, s.Detail)
		}
	}
	wantPublished(t, image, st.Step(changes.StepDeploy).Digest)
	namespaceGone(t, st.Namespace)
}

func TestPromotionOnProductionTemporal(t *testing.T) {
	pc := newPromotionCaseOn(t, stacktest.ProdTemporal(t), planOptions{})
	imgs := pc.images
	run := pc.start(imgs.v2)
	pc.waitStatus(run, 5*time.Minute, "the promotion reaching its gate", atGate)
	if _, err := pc.decide(run, promotions.PromoteApprove, "alice"); err != nil {
		t.Fatalf("alice's approve: %v", err)
	}
	st, err := pc.result(run, 10*time.Minute)
	if err != nil {
		t.Fatalf("promotion failed on the production Temporal: %v\n%+v", err, st)
	}
	if st.Stage != promotions.PromotionStagePromoted || st.ApprovedBy != "alice" {
		t.Errorf("stage %s approved by %q, want promoted by alice", st.Stage, st.ApprovedBy)
	}
	for _, cl := range pc.prod {
		pc.wantStable(cl.Name, imgs.v2, []int{1, 2})
	}
	// The approver is searchable on this server's visibility store (PostgreSQL).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stacktest.WaitFor(t, time.Minute, "the promotion listed by its approver", func() error {
		resp, err := pc.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowId = %q AND %s = 'alice'", run.GetID(), workflows.SearchAttributeApprover),
		})
		if err != nil {
			return err
		}
		if n := len(resp.GetExecutions()); n != 1 {
			return fmt.Errorf("%d executions", n)
		}
		return nil
	})
	if !strings.HasPrefix(pc.cfg.Temporal.Address, "127.0.0.1:7333") {
		t.Errorf("the promotion ran on %s, not the production Temporal", pc.cfg.Temporal.Address)
	}
}
