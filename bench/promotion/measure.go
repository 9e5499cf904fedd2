package main

// The two timed sides, the check that every replica serves the image, and the
// arithmetic of the timings.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log"
	"os/exec"
	"slices"
	"strings"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/internal/client/launch"
	"github.com/wikimedia/conveyor/workflows/promotions"
)

// timing is one side's run: when every pod serving the Service in every
// production cluster ran the new image (serving), and when the side finished
// (done): the promotion completed, or the last helm upgrade --wait returned.
type timing struct {
	serving, done time.Duration
	start         time.Time
}

// timed runs a side while watching the clusters for the moment all production
// traffic goes to v2; the side returns its own start and end.
func (b *bench) timed(ctx context.Context, side func(context.Context) (timing, error)) (timing, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	at := make(chan time.Time, 1)
	go func() {
		for wctx.Err() == nil {
			if ok, err := b.allServing(wctx, b.v2); err == nil && ok {
				at <- time.Now()
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	t, err := side(ctx)
	if err != nil {
		return t, err
	}
	select {
	case when := <-at:
		t.serving = when.Sub(t.start)
	case <-time.After(2 * time.Minute):
		return t, fmt.Errorf("not all production traffic went to %s within 2m of the side's end", b.v2)
	}
	return t, nil
}

// promotion starts a promotion of v2, lets it pass staging, and times it from the
// approval until it completes: the new image is the stable release with every pod
// ready, and the canary removed, in every production cluster.
func (b *bench) promotion(ctx context.Context) (timing, error) {
	run, err := launch.Promotion(ctx, b.c, promotions.PromotionInput{Service: b.service, Image: b.v2})
	if err != nil {
		return timing{}, err
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		st, err := launch.PromotionStatus(ctx, b.c, run.GetID(), run.GetRunID())
		if err == nil && st.Stage == promotions.PromotionStageGate {
			break
		}
		if err == nil && st.Error != "" {
			return timing{}, fmt.Errorf("the promotion failed before its gate: %s", st.Error)
		}
		if time.Now().After(deadline) {
			return timing{}, fmt.Errorf("the promotion is not at its gate after 5m (stage %q, %v)", st.Stage, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	start := time.Now()
	if _, err := launch.PromotionDecide(ctx, b.c, run.GetID(), promotions.PromoteApprove, promotions.PromotionDecision{Approver: "bench", Reason: "benchmark"}); err != nil {
		return timing{}, err
	}
	var st promotions.PromotionStatus
	if err := run.Get(ctx, &st); err != nil {
		return timing{}, fmt.Errorf("the promotion failed: %w", err)
	}
	d := time.Since(start)
	if st.Stage != promotions.PromotionStagePromoted {
		return timing{}, fmt.Errorf("the promotion ended at stage %q, want %q", st.Stage, promotions.PromotionStagePromoted)
	}
	if b.o.verbose {
		for _, e := range st.Events {
			if !e.At.Before(start.Add(-time.Second)) {
				log.Printf("  promotion %+6.1fs %s", e.At.Sub(start).Seconds(), e.Message)
			}
		}
	}
	return timing{done: d, start: start}, nil
}

// helmUpgrade times `helm upgrade --wait` of the stable release to v2 in each
// production cluster, one after the other, with the release's own values (only
// the image changes).
func (b *bench) helmUpgrade(ctx context.Context) (timing, error) {
	repo, digest, ok := strings.Cut(b.v2, "@")
	if !ok {
		return timing{}, fmt.Errorf("image %s has no digest", b.v2)
	}
	start := time.Now()
	for _, t := range b.plan.Production {
		cmd := exec.CommandContext(ctx, b.helm, "upgrade", b.service, b.chartDir,
			"--kubeconfig", b.kcfg[t.Cluster], "--namespace", t.Namespace,
			"--reuse-values", "--set", "image.repository="+repo, "--set", "image.digest="+digest,
			"--history-max", fmt.Sprint(b.plan.HistoryMax), "--wait", "--timeout", "5m")
		if out, err := cmd.CombinedOutput(); err != nil {
			return timing{}, fmt.Errorf("helm upgrade in %s: %v: %s", t.Cluster, err, out)
		}
		if b.o.verbose {
			log.Printf("  helm      %+6.1fs %s upgraded", time.Since(start).Seconds(), t.Cluster)
		}
	}
	return timing{done: time.Since(start), start: start}, nil
}

// allServing says whether, in every production cluster, the pods behind the
// service's ready endpoints are at least the plan's replicas and all run image.
func (b *bench) allServing(ctx context.Context, image string) (bool, error) {
	for _, t := range b.plan.Production {
		kube := b.kube[t.Cluster]
		eps, err := kube.DiscoveryV1().EndpointSlices(t.Namespace).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + b.service})
		if err != nil {
			return false, err
		}
		pods, err := kube.CoreV1().Pods(t.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		images := map[string]string{}
		for _, p := range pods.Items {
			images[p.Name] = p.Spec.Containers[0].Image
		}
		n := 0
		for _, s := range eps.Items {
			for _, e := range s.Endpoints {
				if e.Conditions.Ready == nil || !*e.Conditions.Ready {
					continue
				}
				if e.TargetRef == nil || images[e.TargetRef.Name] != image {
					return false, nil
				}
				n++
			}
		}
		if n < b.o.replicas {
			return false, nil
		}
	}
	return true, nil
}

// check waits until every production cluster's stable Deployment runs image with
// all its replicas ready and no other pod is left: what both sides must end at,
// and the settled state each starts from.
func (b *bench) check(ctx context.Context, image string) error {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		err := b.checkOnce(ctx, image)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (b *bench) checkOnce(ctx context.Context, image string) error {
	for _, t := range b.plan.Production {
		kube := b.kube[t.Cluster]
		d, err := kube.AppsV1().Deployments(t.Namespace).Get(ctx, b.service+"-stable", metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("%s: %w", t.Cluster, err)
		}
		st, want := d.Status, int32(b.o.replicas)
		if got := d.Spec.Template.Spec.Containers[0].Image; got != image {
			return fmt.Errorf("%s: the stable Deployment runs %s, want %s", t.Cluster, got, image)
		}
		if st.ObservedGeneration < d.Generation || st.UpdatedReplicas != want || st.ReadyReplicas != want || st.Replicas != want {
			return fmt.Errorf("%s: %d updated, %d ready of %d pods, want %d", t.Cluster, st.UpdatedReplicas, st.ReadyReplicas, st.Replicas, want)
		}
		pods, err := kube.CoreV1().Pods(t.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		// Settled: no canary, and no pod of an earlier rollout still terminating
		// (busybox's httpd ignores SIGTERM), which a side would otherwise wait for.
		for _, p := range pods.Items {
			if p.Labels["track"] == "canary" || p.DeletionTimestamp != nil || p.Spec.Containers[0].Image != image {
				return fmt.Errorf("%s: pod %s (track %s, image %s) is left over", t.Cluster, p.Name, p.Labels["track"], p.Spec.Containers[0].Image)
			}
		}
	}
	return nil
}

func clusterNames(ts []contract.Target) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Cluster)
	}
	return out
}

func medianTiming(ts []timing) timing {
	var s, d []time.Duration
	for _, t := range ts {
		s, d = append(s, t.serving), append(d, t.done)
	}
	return timing{serving: median(s), done: median(d)}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
