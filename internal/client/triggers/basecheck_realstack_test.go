package triggers

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/workflows/changes"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/activities/baseimages"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/workflows"
)

// TestBaseImageCheckOnTheRealStack runs the base image check on the dev server with
// the real activities (a workspace checkout of a repository whose Blubber config
// builds on an image of the real registry): the first check records the digest,
// a check after the image is pushed again rebuilds the project.
func TestBaseImageCheckOnTheRealStack(t *testing.T) {
	c := dial(t, "conveyor-triggers-basecheck")
	cfg := stacktest.Config(t)
	cfg.StateDir = t.TempDir()
	ctx := context.Background()
	base := cfg.Registry.Address + "/it-base-" + randomID(t) + ":latest"
	push := func() string {
		t.Helper()
		img, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := name.ParseReference(base)
		auth := authn.FromConfig(authn.AuthConfig{Username: cfg.Registry.Username, Password: cfg.Registry.Password})
		if err := remote.Write(ref, img, remote.WithAuth(auth)); err != nil {
			t.Fatalf("pushing %s (make up): %v", base, err)
		}
		d, _ := img.Digest()
		return d.String()
	}
	first := push()
	repo := stacktest.HelloOnBase(t, base)

	acts, err := baseimages.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var builds []string
	w := worker.New(c, workflows.TaskQueueBuild, worker.Options{})
	w.RegisterWorkflow(changes.BaseImageCheck)
	w.RegisterActivity(acts)
	w.RegisterWorkflowWithOptions(func(ctx workflow.Context, in changes.PipelineInput) (changes.PipelineStatus, error) {
		mu.Lock()
		defer mu.Unlock()
		builds = append(builds, workflow.GetInfo(ctx).WorkflowExecution.ID+" "+in.Ref)
		return changes.PipelineStatus{}, nil
	}, workflow.RegisterOptions{Name: "Pipeline"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	project := "it/base-" + randomID(t)
	id := changes.BaseCheckID + "-" + randomID(t)
	t.Cleanup(func() { _ = c.TerminateWorkflow(context.Background(), id, "", "test cleanup") })
	if _, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueueBuild},
		changes.BaseImageCheck, changes.BaseCheckInput{Config: changes.BaseCheckConfig{Every: time.Hour,
			Targets: []changes.RebuildTarget{{Project: project, Repo: repo, Branch: "main", Publish: true}}}}); err != nil {
		t.Fatal(err)
	}
	status := func(checks int) changes.BaseCheckStatus {
		t.Helper()
		var st changes.BaseCheckStatus
		stacktest.WaitFor(t, 2*time.Minute, fmt.Sprintf("check %d", checks), func() error {
			v, err := c.QueryWorkflow(ctx, id, "", changes.QueryBaseCheck)
			if err != nil {
				return err
			}
			st = changes.BaseCheckStatus{}
			if err := v.Get(&st); err != nil {
				return err
			}
			if st.State.Checks < checks {
				return fmt.Errorf("%d checks", st.State.Checks)
			}
			return nil
		})
		return st
	}
	st := status(1)
	if len(st.State.Digests) != 1 || st.State.Digests[0].Image != base || st.State.Digests[0].Digest != first || len(st.State.Rebuilds) != 0 || len(st.State.Problems) != 0 {
		t.Fatalf("first check: %+v, want %s recorded and nothing rebuilt", st.State, first)
	}

	second := push()
	if err := c.SignalWorkflow(ctx, id, "", changes.SignalCheckNow, nil); err != nil {
		t.Fatal(err)
	}
	st = status(2)
	if len(st.State.Rebuilds) != 1 {
		t.Fatalf("second check: %+v, want one rebuild", st.State)
	}
	rb := st.State.Rebuilds[0]
	if rb.From != first || rb.To != second || rb.WorkflowID != changes.RebuildID(project, "main", second) || rb.Error != "" {
		t.Errorf("rebuild %+v, want %s -> %s", rb, first, second)
	}
	stacktest.WaitFor(t, time.Minute, "the rebuild", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(builds) != 1 {
			return fmt.Errorf("builds %v", builds)
		}
		return nil
	})
	if builds[0] != rb.WorkflowID+" refs/heads/main" {
		t.Errorf("build %q", builds[0])
	}
	if err := c.TerminateWorkflow(ctx, id, "", "the test is over"); err == nil {
		stacktest.RecordHistory(t, c, id, "", "basecheck-rebuild.json")
	}
}
