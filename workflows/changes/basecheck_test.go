package changes

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/workflows"
	"github.com/wikimedia/conveyor/workflows/internal/wftest"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/activities/contract"
)

// fakeRegistry stands in for the base image activities: the targets' bases are
// fixed, the digests change when the test says.
type fakeRegistry struct {
	mu      sync.Mutex
	bases   map[string][]string // project -> images
	digests map[string]string   // image -> digest ("" = unreadable)
	reads   int
}

func (r *fakeRegistry) set(image, digest string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.digests[image] = digest
}

func (r *fakeRegistry) register(env *testsuite.TestWorkflowEnvironment) {
	env.RegisterActivityWithOptions(func(_ context.Context, in contract.ResolveBaseImagesInput) (contract.ResolveBaseImagesOutput, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		var out contract.ResolveBaseImagesOutput
		for _, t := range in.Targets {
			tb := contract.TargetBases{Target: t, Images: r.bases[t.Project]}
			if tb.Images == nil {
				tb.Error = "fetching main of " + t.Repo + ": not found"
			}
			out.Targets = append(out.Targets, tb)
		}
		return out, nil
	}, activity.RegisterOptions{Name: contract.ResolveBaseImages.Name})
	env.RegisterActivityWithOptions(func(_ context.Context, in contract.ImageDigestsInput) (contract.ImageDigestsOutput, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.reads++
		var out contract.ImageDigestsOutput
		for _, img := range in.Images {
			d := contract.ImageDigest{Image: img, Digest: r.digests[img]}
			if d.Digest == "" {
				d.Error = "looking up " + img + ": 503"
			}
			out.Digests = append(out.Digests, d)
		}
		return out, nil
	}, activity.RegisterOptions{Name: contract.ImageDigests.Name})
}

const (
	baseA = "localhost:5000/conveyor/busybox:latest"
	baseB = "localhost:5000/conveyor/debian:bookworm"
)

func TestBaseImageCheckRebuildsTheDependentsOfAChangedBase(t *testing.T) {
	reg := &fakeRegistry{
		bases:   map[string][]string{"hello": {baseA}, "world": {baseA, baseB}, "solo": {baseB}},
		digests: map[string]string{baseA: "sha256:aaaa000000000001", baseB: "sha256:bbbb000000000001"},
	}
	builds := &fakeBuilds{duration: 45 * time.Minute}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(BaseImageCheck)
	env.RegisterWorkflowWithOptions(builds.pipeline, workflow.RegisterOptions{Name: "Pipeline"})
	reg.register(env)

	cfg := BaseCheckConfig{Every: time.Hour, Targets: []RebuildTarget{
		{Project: "hello", Repo: "/srv/hello", Branch: "main", Publish: true},
		{Project: "world", Repo: "/srv/world", Branch: "main", Publish: true},
		{Project: "solo", Repo: "/srv/solo", Branch: "main"},
		{Project: "gone", Repo: "/srv/gone", Branch: "main"},
	}}
	var first, afterChange, afterOutage, end BaseCheckStatus
	query := func(dst *BaseCheckStatus) {
		v, err := env.QueryWorkflow(QueryBaseCheck)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Get(dst); err != nil {
			t.Fatal(err)
		}
	}
	env.RegisterDelayedCallback(func() { query(&first) }, 30*time.Minute)
	// Between the checks at 1h and 2h, baseA changes: hello and world depend on it.
	env.RegisterDelayedCallback(func() { reg.set(baseA, "sha256:aaaa000000000002") }, 90*time.Minute)
	env.RegisterDelayedCallback(func() { query(&afterChange) }, 150*time.Minute)
	// baseB cannot be read at 3h: not a change. At 4h it is back, unchanged.
	env.RegisterDelayedCallback(func() { reg.set(baseB, "") }, 170*time.Minute)
	env.RegisterDelayedCallback(func() { query(&afterOutage) }, 190*time.Minute)
	env.RegisterDelayedCallback(func() { reg.set(baseB, "sha256:bbbb000000000001") }, 200*time.Minute)
	// A check on demand, then pause: no more checks.
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalCheckNow, nil) }, 250*time.Minute)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.SignalPause, nil) }, 251*time.Minute)
	env.RegisterDelayedCallback(func() {
		query(&end)
		env.CancelWorkflow()
	}, 10*time.Hour)
	env.ExecuteWorkflow(BaseImageCheck, BaseCheckInput{Config: cfg})

	if first.State.Checks != 1 || len(first.State.Rebuilds) != 0 || len(first.State.Digests) != 2 {
		t.Errorf("first check: %+v, want the two digests recorded and nothing rebuilt", first.State)
	}
	if len(first.State.Problems) != 1 {
		t.Errorf("first check problems %q, want the unreadable target", first.State.Problems)
	}
	if afterChange.State.Checks != 3 || len(afterChange.State.Rebuilds) != 2 {
		t.Fatalf("after the change: %+v, want hello and world rebuilt", afterChange.State)
	}
	for i, want := range []string{"rebuild/hello/main/aaaa00000000", "rebuild/world/main/aaaa00000000"} {
		rb := afterChange.State.Rebuilds[i]
		if rb.WorkflowID != want || rb.Image != baseA || rb.From != "sha256:aaaa000000000001" || rb.To != "sha256:aaaa000000000002" || rb.Error != "" {
			t.Errorf("rebuild %d: %+v, want %s", i, rb, want)
		}
	}
	if i := slices.IndexFunc(afterOutage.State.Digests, func(d contract.ImageDigest) bool { return d.Image == baseB }); i < 0 ||
		afterOutage.State.Digests[i].Digest != "sha256:bbbb000000000001" {
		t.Errorf("after the outage: digests %+v, want baseB's last digest kept", afterOutage.State.Digests)
	}
	if !end.State.Paused || end.State.Checks != 6 || len(end.State.Rebuilds) != 2 {
		t.Errorf("end: checks %d (want 6: 0, 1h, 2h, 3h, 4h, on demand at 4h10), rebuilds %d, paused %v",
			end.State.Checks, len(end.State.Rebuilds), end.State.Paused)
	}
	if builds.count() != 2 || !builds.inputs[0].Publish || builds.inputs[0].Ref != "refs/heads/main" || builds.ids[1] != "rebuild/world/main/aaaa00000000" {
		t.Errorf("pipelines %+v %v", builds.inputs, builds.ids)
	}
}

func TestBaseImageCheckContinuesAsNewWithItsDigests(t *testing.T) {
	reg := &fakeRegistry{bases: map[string][]string{"hello": {baseA}}, digests: map[string]string{baseA: "sha256:aaaa"}}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(BaseImageCheck)
	reg.register(env)
	env.ExecuteWorkflow(BaseImageCheck, BaseCheckInput{Config: BaseCheckConfig{Every: time.Minute,
		Targets: []RebuildTarget{{Project: "hello", Repo: "/srv/hello", Branch: "main"}}}})
	var next BaseCheckInput
	wftest.ContinuedAsNew(t, env, fmt.Sprintf(" after %d checks", baseChecksPerRun), &next)
	if reg.reads != baseChecksPerRun {
		t.Errorf("%d checks before continuing as new, want %d", reg.reads, baseChecksPerRun)
	}
	if len(next.State.Digests) != 1 || next.State.Digests[0].Digest != "sha256:aaaa" || len(next.Config.Targets) != 1 || next.State.LastCheck.IsZero() {
		t.Errorf("carried %+v, want the digest, the targets and the last check's time", next)
	}
}
