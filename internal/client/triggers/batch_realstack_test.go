package triggers

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/workflows/changes"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/internal/dev/fakegerrit"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/workflows"
)

// TestTwentyMergesOneBuildOnTheDevServer delivers 20 change-merged events (and
// repeats of some) through the real endpoint to a real batcher on the dev server,
// served by an in-process worker whose Pipeline only records its input: one build
// of the branch head holds the 20 changes.
func TestTwentyMergesOneBuildOnTheDevServer(t *testing.T) {
	c := dial(t, "conveyor-triggers-batch")
	ctx := context.Background()
	project := "it/batch-" + randomID(t)
	cfg, err := Parse([]byte("projects: [{name: "+project+", repo: /srv/nowhere, batch: {quietPeriod: 3s, maxWait: 1m}}]"), "")
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var builds []changes.PipelineInput
	w := worker.New(c, workflows.TaskQueueBuild, worker.Options{})
	w.RegisterWorkflow(changes.MergeBatcher)
	w.RegisterWorkflowWithOptions(func(ctx workflow.Context, in changes.PipelineInput) (changes.PipelineStatus, error) {
		mu.Lock()
		defer mu.Unlock()
		builds = append(builds, in)
		return changes.PipelineStatus{Project: in.Project, Ref: in.Ref}, nil
	}, workflow.RegisterOptions{Name: "Pipeline"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	batcher := changes.BatcherID(project, "main")
	t.Cleanup(func() { _ = c.TerminateWorkflow(context.Background(), batcher, "", "test cleanup") })

	url := serveEvents(t, c, cfg)
	tmpl := strings.ReplaceAll(string(webhookSample(t, "change-merged.json")), "mediawiki/services/hello", project)
	for i := 1; i <= 20; i++ {
		body := strings.ReplaceAll(tmpl, `"number": 1234`, fmt.Sprintf(`"number": %d`, 5000+i))
		for range 1 + i%3 { // some events twice or three times, as the plugin's retries do
			code, err := fakegerrit.Deliver(ctx, http.DefaultClient, url, "https://gerrit.example.org/r/", []byte(body))
			if err != nil || code != http.StatusAccepted {
				t.Fatalf("merge %d: %d %v", i, code, err)
			}
		}
	}

	var st changes.BatcherStatus
	stacktest.WaitFor(t, 90*time.Second, "the batch build", func() error {
		v, err := c.QueryWorkflow(ctx, batcher, "", changes.QueryBatcher)
		if err != nil {
			return err
		}
		// Decode into a fresh value: omitted fields must not keep the last poll's.
		st = changes.BatcherStatus{}
		if err := v.Get(&st); err != nil {
			return err
		}
		if st.State.LastBuild == nil || len(st.State.Pending) > 0 || st.Building != nil {
			return fmt.Errorf("builds %d, pending %d, building %v", st.State.Builds, len(st.State.Pending), st.Building)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if len(builds) != 1 || st.State.Builds != 1 || len(st.State.LastBuild.Changes) != 20 || st.State.LastBuild.Outcome != "succeeded" {
		t.Fatalf("%d builds (state %+v), want one of 20 changes", len(builds), st.State)
	}
	if in := builds[0]; in.Ref != "refs/heads/main" || !in.Publish || in.Project != project {
		t.Errorf("build input %+v", in)
	}
	// trigger pause and list: the memo says paused, without asking a worker.
	if err := Pause(ctx, c, batcher, "test"); err != nil {
		t.Fatal(err)
	}
	stacktest.WaitFor(t, 30*time.Second, "the paused batcher in the listing", func() error {
		all, err := List(ctx, c, WithMemoConverter(stackConverter(t)))
		if err != nil {
			return err
		}
		for _, ti := range all {
			if ti.ID == batcher && ti.Kind == KindBatcher && ti.Paused && strings.Contains(ti.Summary, "1 builds, last succeeded") {
				return nil
			}
		}
		return fmt.Errorf("listing %+v", all)
	})
	if err := Run(ctx, c, batcher); err == nil || !strings.Contains(err.Error(), "cannot be run by hand") {
		t.Errorf("running a batcher by hand: %v", err)
	}
	if err := c.TerminateWorkflow(ctx, batcher, "", "the test is over"); err == nil {
		stacktest.RecordHistory(t, c, batcher, "", "batcher-twenty-merges.json")
	}
}
