package integration

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/internal/client/launch"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/workflows"
)

// TestWorkerBuildsSideBySide runs two builds of the worker as two versions of
// one worker deployment. A ping started while build a is current stays on a
// after build b becomes current, to its last workflow task, while a ping
// started after the rollout runs on b. The first ping also asks the deploy
// pool, which has no worker, so that it is still running when b rolls out:
// its last workflow task (the deploy ping's timeout) comes after the rollout.
func TestWorkerBuildsSideBySide(t *testing.T) {
	nsCfg := stacktest.Namespace(t, "conveyor-versioning-it")
	ns := nsCfg.Temporal.Namespace
	deployment := "it-" + randomHex(t)[:8]
	c := dialTemporal(t, nsCfg.Temporal)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	startBuild := func(build string) {
		startLoggedWorker(t, nil, "--namespace", ns, "--pools", "build", "--deployment", deployment, "--build-id", build)
		// Temporal knows a version once one of its workers has polled: until then
		// the rollout is refused, saying so.
		var out []byte
		stacktest.WaitFor(t, time.Minute, "conveyor workers rollout --build-id "+build, func() error {
			var err error
			out, err = exec.CommandContext(ctx, filepath.Join(binDir, "conveyor"), "--config", stackConfigPath(), "workers", "rollout",
				"--namespace", ns, "--deployment", deployment, "--build-id", build).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
		if !strings.Contains(string(out), "build "+build+" is current") {
			t.Errorf("rollout of %s printed %q", build, out)
		}
	}

	startBuild("a")
	first, err := launch.Ping(ctx, c, "versioning-first-"+randomHex(t)[:6], 3*time.Minute,
		workflows.PingInput{Pools: []string{workflows.PoolBuild, workflows.PoolDeploy}, Message: "first"})
	if err != nil {
		t.Fatal(err)
	}
	// The build pool has answered: the first ping now waits for the deploy pool.
	stacktest.WaitFor(t, time.Minute, "the first ping waiting for the deploy pool", func() error {
		d, err := c.DescribeWorkflowExecution(ctx, first.GetID(), first.GetRunID())
		if err != nil {
			return err
		}
		for _, a := range d.GetPendingActivities() {
			if a.GetActivityType().GetName() == "Ping" && d.GetWorkflowExecutionInfo().GetHistoryLength() > 10 {
				return nil
			}
		}
		return fmt.Errorf("%d events, pending %v", d.GetWorkflowExecutionInfo().GetHistoryLength(), d.GetPendingActivities())
	})

	startBuild("b")
	rolledOut := time.Now()
	second, err := launch.Ping(ctx, c, "versioning-second-"+randomHex(t)[:6], time.Minute,
		workflows.PingInput{Pools: []string{workflows.PoolBuild}, Message: "second"})
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Get(ctx, nil); err != nil {
		t.Fatalf("the second ping: %v", err)
	}
	if err := first.Get(ctx, nil); err == nil {
		t.Fatal("the first ping succeeded, but no worker serves the deploy pool")
	}

	for _, tc := range []struct {
		run   client.WorkflowRun
		build string
		// after: the run must have a workflow task completed after the rollout.
		after bool
	}{{first, "a", true}, {second, "b", false}} {
		d, err := c.DescribeWorkflowExecution(ctx, tc.run.GetID(), tc.run.GetRunID())
		if err != nil {
			t.Fatal(err)
		}
		vi := d.GetWorkflowExecutionInfo().GetVersioningInfo()
		if got := vi.GetDeploymentVersion().GetBuildId(); got != tc.build || vi.GetDeploymentVersion().GetDeploymentName() != deployment {
			t.Errorf("%s ran on %s/%s, want %s/%s", tc.run.GetID(), vi.GetDeploymentVersion().GetDeploymentName(), got, deployment, tc.build)
		}
		if vi.GetBehavior() != enumspb.VERSIONING_BEHAVIOR_PINNED {
			t.Errorf("%s: versioning behavior %s, want Pinned", tc.run.GetID(), vi.GetBehavior())
		}
		// Every workflow task was completed by build tc.build, including those
		// after the rollout.
		var late int
		iter := c.GetWorkflowHistory(ctx, tc.run.GetID(), tc.run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for iter.HasNext() {
			ev, err := iter.Next()
			if err != nil {
				t.Fatal(err)
			}
			done := ev.GetWorkflowTaskCompletedEventAttributes()
			if done == nil {
				continue
			}
			if b := done.GetDeploymentVersion().GetBuildId(); b != tc.build {
				t.Errorf("%s: workflow task of event %d completed by build %q, want %s", tc.run.GetID(), ev.GetEventId(), b, tc.build)
			}
			if ev.GetEventTime().AsTime().After(rolledOut) {
				late++
			}
		}
		if tc.after && late == 0 {
			t.Errorf("%s: no workflow task after build b rolled out: the test proves nothing", tc.run.GetID())
		}
	}
}
