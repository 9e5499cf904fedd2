package integration

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/docs/grafana"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
)

// TestPipelineMetricsReachPrometheus runs a pipeline on a worker that serves
// /metrics, has the stack's Prometheus scrape it, and reads back through
// Prometheus' HTTP API the step-duration series of that pipeline's step and the
// Temporal SDK's own metrics of the worker. Then it evaluates every query of the
// Grafana dashboard (docs/grafana) there.
func TestPipelineMetricsReachPrometheus(t *testing.T) {
	nsCfg := stacktest.Namespace(t, "conveyor-metrics-it")
	addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	startLoggedWorker(t, nil, "--namespace", nsCfg.Temporal.Namespace, "--pools", "build,deploy", "--health-listen", addr)
	instance := "metrics-it-" + randomHex(t)[:8]
	stacktest.Scrape(t, instance, addr)
	stacktest.WaitForOK(t, 30*time.Second, "http://"+addr+"/metrics")

	// A pipeline that stops in its first step: the repository claims an image
	// its project was not given.
	c := dialTemporal(t, nsCfg.Temporal)
	image := uniqueImage(t, "metrics")
	if _, _, err := runPipelineCase(t, c, pipelineCase{image: image, trusted: image + "-other", change: 4105}); err == nil {
		t.Fatal("the pipeline of a repository claiming another image succeeded")
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, q := range []string{
		fmt.Sprintf(`conveyor_pipeline_step_duration_seconds_count{instance=%q,step="build-test",outcome="failed"}`, instance),
		fmt.Sprintf(`temporal_workflow_task_queue_poll_succeed_total{instance=%q}`, instance),
		fmt.Sprintf(`temporal_workflow_failed_total{instance=%q,workflow_type="Pipeline"}`, instance),
	} {
		stacktest.WaitFor(t, 45*time.Second, "Prometheus answering "+q, func() error {
			res, err := stacktest.PromQuery(ctx, q)
			if err != nil {
				return err
			}
			if len(res) == 0 {
				return fmt.Errorf("no series yet")
			}
			if v, err := strconv.ParseFloat(res[0].Value, 64); err != nil || v < 1 {
				return fmt.Errorf("value %q, want at least 1", res[0].Value)
			}
			return nil
		})
	}
	dashboardQueriesRead(ctx, t, nsCfg.Temporal.Namespace, instance)
}

// onlyAfterTheirEvent are the metrics of the dashboard a pipeline that fails its
// first step does not make: the SDK and conveyor create a series on its first
// value.
var onlyAfterTheirEvent = map[string]string{
	"temporal_workflow_canceled_total":                  "no workflow was cancelled",
	"temporal_workflow_completed_total":                 "the test's pipeline fails",
	"temporal_workflow_task_execution_failed_total":     "no workflow task failed",
	"temporal_sticky_cache_total_forced_eviction_total": "the cache did not fill",
	"temporal_request_failure_total":                    "no call to Temporal failed",
	"temporal_activity_execution_failed_total":          "the failing step returns its result, it does not fail the activity",
	"conveyor_promotion_gate_wait_seconds_bucket":       "promotions only",
	"conveyor_promotion_gate_wait_seconds_count":        "promotions only",
	"conveyor_promotion_reminders_total":                "promotions only",
	"conveyor_migration_vms":                            "migrations only",
	"conveyor_webhook_events_total":                     "gerrit serve only",
}

// dashboardQueriesRead evaluates every dashboard query on the stack's Prometheus
// for the test's namespace: each must evaluate, each metric it reads must exist
// for the worker (but those of onlyAfterTheirEvent), and the pipeline panels
// must show the pipeline.
func dashboardQueriesRead(ctx context.Context, t *testing.T, namespace, instance string) {
	t.Helper()
	d, err := grafana.Load()
	if err != nil {
		t.Fatal(err)
	}
	qs, err := d.Queries(map[string]string{"namespace": namespace, "job": ".*"})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if _, err := stacktest.PromQuery(ctx, q.Expr); err != nil {
			t.Errorf("dashboard panel %q, query %s: %v", q.Panel, q.RefID, err)
		}
		for _, m := range q.Metrics() {
			if _, ok := onlyAfterTheirEvent[m]; ok {
				continue
			}
			sel := fmt.Sprintf(`count(%s{instance=%q})`, m, instance)
			if res, err := stacktest.PromQuery(ctx, sel); err != nil || len(res) == 0 {
				t.Errorf("dashboard panel %q reads %s, which the worker that ran a pipeline does not serve (%v)", q.Panel, m, err)
			}
		}
		if !strings.HasPrefix(q.Panel, "Pipeline step") {
			continue
		}
		// A rate needs two scrapes of the series in its window.
		stacktest.WaitFor(t, 30*time.Second, fmt.Sprintf("dashboard panel %q showing the pipeline of namespace %s", q.Panel, namespace), func() error {
			res, err := stacktest.PromQuery(ctx, q.Expr)
			if err == nil && len(res) == 0 {
				err = fmt.Errorf("no series")
			}
			return err
		})
	}
}
