package promote

import (
	"context"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/heartbeat"
	"github.com/wikimedia/conveyor/activities/internal/helmkit"
)

// requestTimeout bounds one analysis request; a request that takes longer is an
// error.
const requestTimeout = 5 * time.Second

// analysisWorkers is how many requests an analysis has in flight at once.
const analysisWorkers = 4

// CanaryAnalyze sends in.Analysis.Requests GETs of in.Analysis.Path to the canary's
// ready pods and as many to the stable release's, each pod addressed directly (the
// worker host reaches pod IPs on the node's bridge), spread over the pods in turn.
// A request fails when it gets no answer within requestTimeout or an answer that is
// not 2xx. The canary passes when its error ratio is at most MaxErrorRatio and its
// 95th percentile latency at most MaxLatencyP95; the stable pods' error ratio is
// measured under the same traffic for comparison. A failed analysis is a result
// (Passed false, Reason naming the threshold), not an error.
//
// On a simulated cluster no pod serves traffic: the canary passes when all its pods
// are ready, and Reason says that only readiness was checked.
func (a *Activities) CanaryAnalyze(ctx context.Context, in contract.CanaryAnalyzeInput) (contract.Analysis, error) {
	if err := checkRelease(in.ServiceRelease); err != nil {
		return contract.Analysis{}, err
	}
	c, err := a.clusterFor(in.ServiceRelease)
	if err != nil {
		return contract.Analysis{}, err
	}
	plan := in.Analysis
	if plan.Requests < 1 || plan.MaxErrorRatio < 0 || plan.MaxErrorRatio > 1 || plan.MaxLatencyP95 < 0 {
		return contract.Analysis{}, nonRetryable(contract.ErrPromotionConfig,
			"analysis of %s: requests %d must be at least 1, maxErrorRatio %g between 0 and 1, maxLatencyP95 %s not negative",
			in.Service, plan.Requests, plan.MaxErrorRatio, plan.MaxLatencyP95)
	}
	path := plan.Path
	if path == "" {
		path = "/"
	}
	canaryPods, canaryWaiting, err := servingPods(ctx, c, in.Namespace, trackSelector(in.Service, "canary"))
	if err != nil {
		return contract.Analysis{}, err
	}
	stablePods, _, err := servingPods(ctx, c, in.Namespace, trackSelector(in.Service, "stable"))
	if err != nil {
		return contract.Analysis{}, err
	}
	if len(canaryPods) == 0 {
		return contract.Analysis{Reason: fmt.Sprintf("no canary pod of %s is ready in cluster %s (%d not ready)", in.Service, c.Name, canaryWaiting)}, nil
	}
	if a.simulated(in.ServiceRelease, c) {
		out := contract.Analysis{Passed: canaryWaiting == 0}
		out.Reason = fmt.Sprintf("simulated cluster %s (kwok nodes, pods serve no traffic): readiness only, %d of %d canary pods ready, %d stable pods ready; no error ratio or latency measured",
			c.Name, len(canaryPods), len(canaryPods)+canaryWaiting, len(stablePods))
		return out, nil
	}
	canaryURLs, err := podURLs(canaryPods, path)
	if err != nil {
		return contract.Analysis{}, nonRetryable(contract.ErrPromotionConfig, "canary of %s: %v", in.Service, err)
	}
	stableURLs, err := podURLs(stablePods, path)
	if err != nil {
		return contract.Analysis{}, nonRetryable(contract.ErrPromotionConfig, "stable release of %s: %v", in.Service, err)
	}
	heartbeat.Record(ctx, Progress{Step: "analysing the canary", Detail: fmt.Sprintf("%d requests to %d canary and %d stable pods", plan.Requests, len(canaryURLs), len(stableURLs))})
	var canary, stable sample
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); canary = a.load(ctx, canaryURLs, plan.Requests) }()
	go func() { defer wg.Done(); stable = a.load(ctx, stableURLs, plan.Requests) }()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for waiting := true; waiting; {
		select {
		case <-tick.C:
			heartbeat.Record(ctx, Progress{Step: "analysing the canary", Detail: fmt.Sprintf("%d requests to %d canary and %d stable pods", plan.Requests, len(canaryURLs), len(stableURLs))})
		case <-done:
			waiting = false
		}
	}
	if err := ctx.Err(); err != nil {
		return contract.Analysis{}, err
	}
	return verdict(plan, path, len(canaryURLs), canary, stable), nil
}

// servingPods returns the ready pods of selector that are not being deleted, and
// how many others there are.
func servingPods(ctx context.Context, c *cluster, ns, selector string) ([]corev1.Pod, int, error) {
	list, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, 0, fmt.Errorf("listing pods %s in %s of cluster %s: %w", selector, ns, c.Name, err)
	}
	var ready []corev1.Pod
	waiting := 0
	for _, p := range list.Items {
		switch {
		case p.DeletionTimestamp != nil:
		case helmkit.PodReady(&p) && p.Status.PodIP != "":
			ready = append(ready, p)
		default:
			waiting++
		}
	}
	slices.SortFunc(ready, func(x, y corev1.Pod) int { return strings.Compare(x.Name, y.Name) })
	return ready, waiting, nil
}

// podURLs are http://podIP:port/path of each pod, port being its container port
// named http.
func podURLs(pods []corev1.Pod, path string) ([]string, error) {
	var urls []string
	for _, p := range pods {
		port := 0
		for _, ctr := range p.Spec.Containers {
			for _, cp := range ctr.Ports {
				if cp.Name == "http" {
					port = int(cp.ContainerPort)
				}
			}
		}
		if port == 0 {
			return nil, fmt.Errorf("pod %s has no container port named http to send traffic to", p.Name)
		}
		urls = append(urls, "http://"+net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port))+path)
	}
	return urls, nil
}

// sample is what one side of an analysis saw.
type sample struct {
	requests, errors int
	latencies        []time.Duration
	// firstError is one failure, to quote in the reason.
	firstError string
}

// load sends n GETs spread over urls in turn, analysisWorkers at a time.
func (a *Activities) load(ctx context.Context, urls []string, n int) sample {
	var s sample
	if len(urls) == 0 {
		return s
	}
	var mu sync.Mutex
	jobs := make(chan string)
	var wg sync.WaitGroup
	for range analysisWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for url := range jobs {
				start := time.Now()
				status, body, err := a.get(ctx, url, requestTimeout)
				took := time.Since(start)
				mu.Lock()
				s.requests++
				s.latencies = append(s.latencies, took)
				switch {
				case err != nil:
					s.errors++
					if s.firstError == "" {
						s.firstError = err.Error()
					}
				case status/100 != 2:
					s.errors++
					if s.firstError == "" {
						s.firstError = fmt.Sprintf("GET %s: %d %s", url, status, body)
					}
				}
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		select {
		case jobs <- urls[i%len(urls)]:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	return s
}

func (s sample) ratio() float64 {
	if s.requests == 0 {
		return 0
	}
	return float64(s.errors) / float64(s.requests)
}

// p95 is the nearest-rank 95th percentile of the latencies.
func (s sample) p95() time.Duration {
	if len(s.latencies) == 0 {
		return 0
	}
	l := slices.Clone(s.latencies)
	slices.Sort(l)
	rank := int(math.Ceil(0.95*float64(len(l)))) - 1
	return l[max(rank, 0)]
}

// verdict compares the canary's sample with the plan's thresholds.
func verdict(plan contract.AnalysisPlan, path string, pods int, canary, stable sample) contract.Analysis {
	out := contract.Analysis{
		Requests:         canary.requests,
		Errors:           canary.errors,
		ErrorRatio:       canary.ratio(),
		LatencyP95:       canary.p95().Round(time.Microsecond),
		StableErrorRatio: stable.ratio(),
	}
	measured := fmt.Sprintf("%d GETs of %s to %d canary pods: %d failed (ratio %.3f, stable %.3f), p95 latency %s",
		canary.requests, path, pods, canary.errors, out.ErrorRatio, out.StableErrorRatio, out.LatencyP95)
	var failed []string
	if out.ErrorRatio > plan.MaxErrorRatio {
		failed = append(failed, fmt.Sprintf("error ratio %.3f is above maxErrorRatio %g (first failure: %s)", out.ErrorRatio, plan.MaxErrorRatio, canary.firstError))
	}
	if plan.MaxLatencyP95 > 0 && out.LatencyP95 > plan.MaxLatencyP95 {
		failed = append(failed, fmt.Sprintf("p95 latency %s is above maxLatencyP95 %s", out.LatencyP95, plan.MaxLatencyP95))
	}
	if canary.requests < plan.Requests {
		failed = append(failed, fmt.Sprintf("only %d of %d requests were sent", canary.requests, plan.Requests))
	}
	if len(failed) > 0 {
		out.Reason = "canary failed: " + strings.Join(failed, "; ") + "; " + measured
		return out
	}
	out.Passed = true
	out.Reason = "canary passed: " + measured
	return out
}
