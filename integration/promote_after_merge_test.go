package integration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/internal/client/launch"
	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/internal/dev/gittest"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/workflows"
	"github.com/wikimedia/conveyor/workflows/changes"
	"github.com/wikimedia/conveyor/workflows/promotions"
)

// mergePromotionNamespace is TestMergeStartsPromotion's Temporal namespace: its
// worker serves the build and deploy pools there only, with the test's own
// configuration registry.
const mergePromotionNamespace = "conveyor-merge-promotion-it"

// TestMergeStartsPromotion merges a change on the real stack: the branch's merge
// batcher runs the real publishing pipeline of a copy of examples/hello, then
// finds the service's plan in a configuration registry of the test's own and
// starts the image's Promotion, which reads that registry at the commit the
// batcher saw, deploys staging, smoke-checks it and waits at its gate. A reject
// ends it there with nothing in production.
func TestMergeStartsPromotion(t *testing.T) {
	pcfg := stacktest.Namespace(t, mergePromotionNamespace)
	service := "pm-" + randomHex(t)[:8]
	dir, _ := serviceRepo(t, service, 1, nil)
	registry, commit := mergePromotionRegistry(t, service, pcfg.Promotion.Clusters[0].Name)

	worker := exec.Command(filepath.Join(binDir, "conveyor-worker"), "--config", stackConfigPath(), "--pools", "build,deploy")
	wout := &syncBuffer{}
	worker.Stdout, worker.Stderr = wout, wout
	worker.Env = append(os.Environ(), "TEMPORAL_NAMESPACE="+mergePromotionNamespace, "CONVEYOR_CONFIG_REPO="+registry)
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	c, err := temporalclient.Dial(ctx, pcfg.Temporal, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatalf("Temporal (make up): %v", err)
	}
	t.Cleanup(c.Close) // after the cleanup below, which uses it
	batcher := changes.BatcherID(service, "main")
	kube := kubeClient(t)
	t.Cleanup(func() {
		if err := c.TerminateWorkflow(context.Background(), batcher, "", "the test is over"); err == nil {
			stacktest.RecordHistory(t, c, batcher, "", "batcher-merge-promotion.json")
		}
		_ = worker.Process.Kill()
		_, _ = worker.Process.Wait()
		if t.Failed() {
			t.Logf("worker output:\n%s", wout.String())
		}
		deleteNamespace(t, kube, service+"-staging")
	})

	target := changes.BatchTarget{Project: service, Repo: dir, Branch: "main", Publish: true,
		Settings: changes.BatchSettings{QuietPeriod: time.Second, MaxWait: 5 * time.Second}}
	if _, err := c.SignalWithStartWorkflow(ctx, batcher, changes.SignalMerged,
		changes.MergeSignal{Target: target, Change: changes.MergedChange{Key: "merge-1", Change: 1, Patchset: 1, Revision: gittest.Git(t, dir, "rev-parse", "HEAD")}},
		client.StartWorkflowOptions{ID: batcher, TaskQueue: workflows.TaskQueueBuild}, changes.MergeBatcher, changes.BatcherInput{Target: target}); err != nil {
		t.Fatal(err)
	}

	var build *changes.BatchBuild
	stacktest.WaitFor(t, 15*time.Minute, "the batch's pipeline and its promotion", func() error {
		v, err := c.QueryWorkflow(ctx, batcher, "", changes.QueryBatcher)
		if err != nil {
			return err
		}
		var st changes.BatcherStatus
		if err := v.Get(&st); err != nil {
			return err
		}
		if build = st.State.LastBuild; build == nil {
			return fmt.Errorf("no build finished (building %v)", st.Building)
		}
		return nil
	})
	if build.Outcome != "succeeded" || build.Promotion == "" {
		t.Fatalf("batch build %+v, want a published build that started a promotion", build)
	}
	if !strings.HasPrefix(build.Promotion, "promote/"+service+"/") {
		t.Errorf("promotion id %q", build.Promotion)
	}

	var st promotions.PromotionStatus
	stacktest.WaitFor(t, 5*time.Minute, "the promotion waiting at its gate", func() error {
		st, err = launch.PromotionStatus(ctx, c, build.Promotion, "")
		if err != nil {
			return err
		}
		if st.Stage != promotions.PromotionStageGate {
			return fmt.Errorf("stage %s (%s)", st.Stage, st.Error)
		}
		return nil
	})
	if st.ConfigCommit != commit || st.ConfigRef != commit {
		t.Errorf("configuration ref %q commit %q, want the registry's commit %s as the batcher saw it", st.ConfigRef, st.ConfigCommit, commit)
	}
	if st.Service != service || !strings.Contains(st.Image, "/"+service+"@sha256:") || st.Source.Pipeline != build.WorkflowID || st.Source.Project != service {
		t.Errorf("promotion of %s %s from %+v, want the batch's published image", st.Service, st.Image, st.Source)
	}
	if st.Staging == nil || st.Staging.Status != 200 {
		t.Errorf("staging check %+v", st.Staging)
	}

	if _, err := launch.PromotionDecide(ctx, c, build.Promotion, promotions.PromoteReject, promotions.PromotionDecision{Approver: "bob", Reason: "test over"}); err != nil {
		t.Fatal(err)
	}
	err = c.GetWorkflow(ctx, build.Promotion, "").Get(ctx, nil)
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != contract.ErrPromotionRejected {
		t.Fatalf("promotion ended with %v, want %s", err, contract.ErrPromotionRejected)
	}
	if _, err := kube.CoreV1().Namespaces().Get(ctx, service, metav1.GetOptions{}); err == nil {
		t.Errorf("namespace %s exists in production after a reject", service)
	}
	stacktest.RecordHistory(t, c, build.Promotion, "", "promotion-merge-rejected.json")
}

// mergePromotionRegistry makes a configuration registry with a plan for service
// (staging and production in cluster) and returns its path and commit.
func mergePromotionRegistry(t *testing.T, service, cluster string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	svc := filepath.Join(dir, "services", service)
	if err := os.MkdirAll(svc, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"promotion.yaml": fmt.Sprintf(`staging: {cluster: %s, namespace: %s-staging}
production:
  - {cluster: %s, namespace: %s}
replicas: 2
steps: [{weight: 50}, {weight: 100}]
analysis: {requests: 10, path: /cgi-bin/healthz, maxErrorRatio: 0.05, maxLatencyP95: 2s}
smokePath: /cgi-bin/healthz
approvers: [alice, bob]
reminderEvery: 1h
historyMax: 3
`, cluster, service, cluster, service),
		"values.yaml": `containerPort: 8080
service: {port: 8080}
probes:
  readiness: {path: /cgi-bin/healthz, periodSeconds: 1}
  liveness: {path: /cgi-bin/healthz}
test: {enabled: false}
`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(svc, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	commit, err := gittest.CommitAll(context.Background(), dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	return dir, commit
}
