package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/internal/client/launch"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/workflows/changes"
)

// poolNamespace is the Temporal namespace of the shared-pool test: no other
// test's worker may take its tasks.
const poolNamespace = "conveyor-pool-it"

// poolWorker is one conveyor-worker process of the shared-pool test.
type poolWorker struct {
	cmd *exec.Cmd
	out *syncBuffer
}

// identity is the prefix of the Temporal identities the worker's pools poll with.
func (w poolWorker) identity() string { return fmt.Sprintf("%d@", w.cmd.Process.Pid) }

func startPoolWorker(t *testing.T, pools string) poolWorker {
	t.Helper()
	w := poolWorker{out: &syncBuffer{}}
	w.cmd = exec.Command(filepath.Join(binDir, "conveyor-worker"), "--config", stackConfigPath(), "--pools", pools)
	w.cmd.Env = append(os.Environ(), "TEMPORAL_NAMESPACE="+poolNamespace)
	w.cmd.Stdout, w.cmd.Stderr = w.out, w.out
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = w.cmd.Process.Kill()
		_, _ = w.cmd.Process.Wait()
		if t.Failed() {
			t.Logf("worker %s (%s) output:\n%s", w.identity(), pools, w.out.String())
		}
	})
	return w
}

// TestBuildPoolWorkersShareABurstAndSurviveAKill runs two build-pool workers (and
// one deploy-pool worker) and a burst of pipelines whose tests take a while. Once
// one build worker is running a pipeline's activity, it is SIGKILLed: that activity
// is retried on the other worker, every pipeline completes, and each image is
// published exactly once.
func TestBuildPoolWorkersShareABurstAndSurviveAKill(t *testing.T) {
	cfg := stacktest.Namespace(t, poolNamespace)
	a, b := startPoolWorker(t, "build"), startPoolWorker(t, "build")
	startPoolWorker(t, "deploy")
	c := dialTemporal(t, cfg.Temporal)

	const burst = 4
	slowTests := func(dir string) {
		p := filepath.Join(dir, "test", "run.sh")
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		// After the shebang: the run-tests activity stays busy long enough to be
		// seen on a worker and killed there.
		slow := strings.Replace(string(src), "set -u\n", "set -u\nsleep 15\n", 1)
		if err := os.WriteFile(p, []byte(slow), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	type started struct {
		image string
		run   client.WorkflowRun
	}
	var runs []started
	for i := range burst {
		image := uniqueImage(t, fmt.Sprintf("pool%d", i))
		dir, ref := serviceRepo(t, image, 4700+i, slowTests)
		run, err := launch.Pipeline(ctx, c, changes.PipelineInput{Project: image, Repo: dir, Ref: ref, Publish: true})
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, started{image, run})
	}

	// Wait until worker a runs some pipeline's activity, then kill it.
	var victim, activity string
	stacktest.WaitFor(t, 5*time.Minute, "an activity running on worker "+a.identity(), func() error {
		for _, r := range runs {
			d, err := c.DescribeWorkflowExecution(ctx, r.run.GetID(), r.run.GetRunID())
			if err != nil {
				return err
			}
			for _, pa := range d.GetPendingActivities() {
				if pa.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED && strings.HasPrefix(pa.GetLastWorkerIdentity(), a.identity()) {
					victim, activity = r.run.GetID(), pa.GetActivityId()
					return nil
				}
			}
		}
		return fmt.Errorf("none of %d pipelines has a started activity on %s", burst, a.identity())
	})
	ranOn := map[string]bool{a.identity(): true}
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed worker %s while it ran activity %s of %s", a.identity(), activity, victim)

	for _, r := range runs {
		var st changes.PipelineStatus
		if err := r.run.Get(ctx, &st); err != nil {
			t.Fatalf("pipeline %s: %v\n%+v", r.run.GetID(), err, st)
		}
		wantPublished(t, r.image, st.Step(changes.StepDeploy).Digest)
	}

	// The killed activity ran again, on the other worker; both workers took work
	// (a's is the one seen running before the kill: a history records an
	// activity's last attempt only).
	var retriedOnB bool
	for _, r := range runs {
		iter := c.GetWorkflowHistory(ctx, r.run.GetID(), r.run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		scheduled := map[int64]string{} // event id -> activity id
		for iter.HasNext() {
			ev, err := iter.Next()
			if err != nil {
				t.Fatal(err)
			}
			if s := ev.GetActivityTaskScheduledEventAttributes(); s != nil {
				scheduled[ev.GetEventId()] = s.GetActivityId()
			}
			if s := ev.GetActivityTaskStartedEventAttributes(); s != nil {
				id := s.GetIdentity()
				if strings.HasPrefix(id, b.identity()) {
					ranOn[b.identity()] = true
				}
				if r.run.GetID() == victim && scheduled[s.GetScheduledEventId()] == activity && s.GetAttempt() > 1 && strings.HasPrefix(id, b.identity()) {
					retriedOnB = true
				}
			}
		}
	}
	if !retriedOnB {
		t.Errorf("activity %s of %s was not retried on worker %s after the kill", activity, victim, b.identity())
	}
	if !ranOn[a.identity()] || !ranOn[b.identity()] {
		t.Errorf("activities ran on %v, want both build workers", ranOn)
	}
}
