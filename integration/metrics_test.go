package integration

import (
	"context"
	"fmt"
	"strconv"

	"testing"
	"time"

	"github.com/wikimedia/conveyor/internal/dev/stacktest"
)

// TestPipelineMetricsReachPrometheus runs a pipeline on a worker that serves
// /metrics, has the stack's Prometheus scrape it, and reads back through
// Prometheus' HTTP API the step-duration series of that pipeline's step and the
// Temporal SDK's own metrics of the worker.
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
}
