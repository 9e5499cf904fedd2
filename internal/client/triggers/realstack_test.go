package triggers

// Tests on the real Temporal dev server of the local stack, each in a namespace of
// its own so that no other worker picks up their workflows.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/workflows/changes"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/internal/dev/fakegerrit"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/workflows"
)

func randomID(t testing.TB) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// dial returns a client of the dev server in namespace ns.
func dial(t testing.TB, ns string) client.Client {
	t.Helper()
	cfg := stacktest.Namespace(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := temporalclient.Dial(ctx, cfg.Temporal, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("Temporal (make up): %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// stackConverter is the data converter of the stack's clients: it decrypts the
// payloads and memos that the stack's payload key encrypted.
func stackConverter(t testing.TB) converter.DataConverter {
	t.Helper()
	dc, err := temporalclient.DataConverter(stacktest.Config(t).Temporal)
	if err != nil {
		t.Fatal(err)
	}
	if dc == nil {
		return converter.GetDefaultDataConverter()
	}
	return dc
}

// serveEvents serves the webhooks endpoint of a Handler of cfg that starts
// workflows through c, until the test ends, and returns the URL to deliver events
// to.
func serveEvents(t testing.TB, c client.Client, cfg *Config) string {
	t.Helper()
	h, err := NewHandler(c, cfg, WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(h, testSecret, WithServerLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts.URL + EventsPath + "/" + testSecret
}

// runsOf lists the executions with workflow id id.
func runsOf(ctx context.Context, c client.Client, id string) ([]string, error) {
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: fmt.Sprintf("WorkflowId = '%s'", id)})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range resp.Executions {
		out = append(out, e.GetExecution().GetRunId()+" "+e.GetStatus().String())
	}
	return out, nil
}

// TestDuplicateDeliveriesStartOneWorkflow delivers one patchset-created event five
// times at once, then twice more after its workflow has ended, through the real
// endpoint and client: one workflow runs, and every delivery gets the same 202.
func TestDuplicateDeliveriesStartOneWorkflow(t *testing.T) {
	c := dial(t, "conveyor-triggers-test")
	project := "it/dup-" + randomID(t)
	cfg, err := Parse([]byte("projects: [{name: "+project+", repo: /srv/nowhere}]"), "")
	if err != nil {
		t.Fatal(err)
	}
	url := serveEvents(t, c, cfg)
	body := []byte(strings.ReplaceAll(string(webhookSample(t, "patchset-created.json")), "mediawiki/services/hello", project))
	id := changes.VerifyID(project, 1234, 2, "")
	ctx := context.Background()
	t.Cleanup(func() { _ = c.TerminateWorkflow(context.Background(), id, "", "test cleanup") })

	deliver := func(n int) []string {
		var mu sync.Mutex
		var answers []string
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				code, err := fakegerrit.Deliver(ctx, http.DefaultClient, url, "https://gerrit.example.org/r/", body)
				mu.Lock()
				defer mu.Unlock()
				answers = append(answers, fmt.Sprint(code, err))
			})
		}
		wg.Wait()
		return answers
	}
	answers := deliver(5)
	// No worker serves this namespace: end the run by hand, as if it had finished.
	if err := c.TerminateWorkflow(ctx, id, "", "the first run is over"); err != nil {
		t.Fatalf("terminating %s: %v", id, err)
	}
	answers = append(answers, deliver(2)...)
	for i, a := range answers {
		if a != "202 <nil>" {
			t.Errorf("delivery %d answered %s, want 202", i+1, a)
		}
	}
	var runs []string
	stacktest.WaitFor(t, 30*time.Second, "the terminated run in the visibility store", func() error {
		runs, err = runsOf(ctx, c, id)
		if err == nil && (len(runs) == 0 || !strings.HasSuffix(runs[0], " "+enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED.String())) {
			err = fmt.Errorf("runs %v", runs)
		}
		return err
	})
	if len(runs) != 1 {
		t.Errorf("runs of %s: %v, want exactly one", id, runs)
	}
	d, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := d.GetWorkflowExecutionInfo().GetType().GetName(); got != "ChangeVerification" {
		t.Errorf("workflow type %s", got)
	}
}

// TestNightlyScheduleIsRegisteredAndTriggerable syncs a triggers file with a
// nightly target, checks the schedule, triggers it, pauses and resumes it, syncs
// again (an update) and without the target (a deletion).
func TestNightlyScheduleIsRegisteredAndTriggerable(t *testing.T) {
	c := dial(t, "conveyor-triggers-schedules")
	ctx := context.Background()
	project := "it/nightly-" + randomID(t)
	cfg, err := Parse([]byte("projects: [{name: "+project+", repo: /srv/nowhere, nightly: [main]}]"), "")
	if err != nil {
		t.Fatal(err)
	}
	id := NightlyScheduleID(project, "main")
	t.Cleanup(func() {
		_ = c.ScheduleClient().GetHandle(context.Background(), id).Delete(context.Background())
		_ = c.TerminateWorkflow(context.Background(), changes.BaseCheckID, "", "test cleanup")
	})
	rep, err := Sync(ctx, c, cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Created) != 1 || rep.Created[0] != id || rep.BaseCheck != changes.BaseCheckID {
		t.Errorf("sync report %+v", rep)
	}
	h := c.ScheduleClient().GetHandle(ctx, id)
	d, err := h.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	spec := d.Schedule.Spec
	if len(spec.Calendars) != 1 || spec.Calendars[0].Hour[0].Start != 4 || spec.Calendars[0].Minute[0].Start != 0 || spec.TimeZoneName != "UTC" {
		t.Errorf("spec %+v, want 04:00 UTC every day", spec)
	}
	action, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction)
	if !ok || action.Workflow != "Pipeline" || action.TaskQueue != workflows.TaskQueueBuild {
		t.Errorf("action %+v", d.Schedule.Action)
	}
	next := time.Now().UTC()
	if len(d.Info.NextActionTimes) > 0 {
		next = d.Info.NextActionTimes[0].UTC()
	}
	if next.Hour() != 4 || next.Minute() != 0 {
		t.Errorf("next action at %s, want 04:00 UTC", next)
	}

	if err := Run(ctx, c, id); err != nil {
		t.Fatal(err)
	}
	var started string
	stacktest.WaitFor(t, 30*time.Second, "the triggered nightly build", func() error {
		d, err := h.Describe(ctx)
		if err != nil {
			return err
		}
		for _, a := range d.Info.RecentActions {
			if a.StartWorkflowResult != nil {
				started = a.StartWorkflowResult.WorkflowID
				return nil
			}
		}
		return fmt.Errorf("no action yet")
	})
	t.Cleanup(func() { _ = c.TerminateWorkflow(context.Background(), started, "", "test cleanup") })
	if !strings.HasPrefix(started, id+"-") {
		t.Errorf("the schedule started %q, want an id starting with %s-", started, id)
	}
	wd, err := c.DescribeWorkflowExecution(ctx, started, "")
	if err != nil {
		t.Fatal(err)
	}
	if wd.GetWorkflowExecutionInfo().GetType().GetName() != "Pipeline" {
		t.Errorf("started a %s", wd.GetWorkflowExecutionInfo().GetType().GetName())
	}
	hist := c.GetWorkflowHistory(ctx, started, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	ev, err := hist.Next()
	if err != nil {
		t.Fatal(err)
	}
	if in := stackConverter(t).ToString(ev.GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()[0]); !strings.Contains(in, `"ref":"refs/heads/main"`) ||
		!strings.Contains(in, `"publish":true`) || !strings.Contains(in, project) {
		t.Errorf("input %s", in)
	}

	if err := Pause(ctx, c, id, "test"); err != nil {
		t.Fatal(err)
	}
	if d, _ := h.Describe(ctx); !d.Schedule.State.Paused {
		t.Error("not paused")
	}
	var listed bool
	stacktest.WaitFor(t, 30*time.Second, "the paused schedule in the listing", func() error {
		all, err := List(ctx, c, WithMemoConverter(stackConverter(t)))
		if err != nil {
			return err
		}
		for _, ti := range all {
			if ti.ID == id && ti.Kind == KindSchedule && ti.Paused {
				listed = true
				return nil
			}
		}
		return fmt.Errorf("not listed as paused: %+v", all)
	})
	if !listed {
		t.Error("not listed")
	}
	if err := Resume(ctx, c, id, "test"); err != nil {
		t.Fatal(err)
	}
	if d, _ := h.Describe(ctx); d.Schedule.State.Paused {
		t.Error("still paused")
	}

	rep, err = Sync(ctx, c, cfg, "")
	if err != nil || len(rep.Updated) != 1 || len(rep.Created) != 0 {
		t.Errorf("second sync %+v, %v: want an update", rep, err)
	}
	none, _ := Parse([]byte("projects: [{name: "+project+", repo: /srv/nowhere}]"), "")
	stacktest.WaitFor(t, 30*time.Second, "the schedule's deletion", func() error {
		rep, err := Sync(ctx, c, none, "")
		if err != nil {
			return err
		}
		if _, err := h.Describe(ctx); err == nil {
			return fmt.Errorf("still there (sync deleted %v)", rep.Deleted)
		}
		return nil
	})
}
