package promote

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/heartbeat"
	"github.com/wikimedia/conveyor/activities/internal/helmkit"
)

// want is one Deployment a wait expects to reach a number of ready pods.
type want struct {
	deployment string
	// selector finds the Deployment's pods, to say why they are not ready.
	selector string
	replicas int32
}

// readyCounts are the ready pods of each awaited Deployment, by name.
type readyCounts map[string]int32

// waitDeployments polls until each Deployment of ns in c has rolled out to exactly
// its wanted replicas, all ready and of the current template, heartbeating what it
// waits for. A pod that fails for good (an image that does not exist, a crash loop)
// ends the wait with a non-retryable ErrReleaseNotReady; the ready timeout with a
// retryable error. Both list the pods' reasons.
func (a *Activities) waitDeployments(ctx context.Context, c *cluster, ns, step string, wants []want) (readyCounts, error) {
	timeout := helmkit.Within(ctx, a.waits.ReadyTimeout)
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(a.waits.Poll)
	defer t.Stop()
	for {
		ready := readyCounts{}
		var waiting []string
		for _, w := range wants {
			n, problem, err := deploymentReady(ctx, c, ns, w)
			if err != nil {
				return ready, err
			}
			ready[w.deployment] = n
			if problem != "" {
				waiting = append(waiting, problem)
			}
		}
		if len(waiting) == 0 {
			return ready, nil
		}
		if err := ctx.Err(); err != nil {
			return ready, err
		}
		problems := func(verbose bool) (string, bool) {
			var pods []string
			permanent := false
			for _, w := range wants {
				p, perm := a.podProblems(ctx, c, ns, w.selector, verbose)
				pods, permanent = append(pods, p...), permanent || perm
			}
			return strings.Join(waiting, "; ") + helmkit.PodsDetail(pods), permanent
		}
		detail, permanent := problems(false)
		heartbeat.Record(ctx, Progress{Step: step, Detail: detail})
		// The error that ends the wait says more: the pods' warning events (a
		// failing probe says how it failed) and the log of a crashed container.
		if permanent {
			detail, _ = problems(true)
			return ready, nonRetryable(contract.ErrReleaseNotReady, "%s in namespace %s of cluster %s cannot succeed: %s", step, ns, c.Name, detail)
		}
		if time.Now().After(deadline) {
			detail, _ = problems(true)
			return ready, fmt.Errorf("%s in namespace %s of cluster %s: not done after %s: %s", step, ns, c.Name, timeout.Round(time.Second), detail)
		}
		select {
		case <-ctx.Done():
			return ready, ctx.Err()
		case <-t.C:
		}
	}
}

// deploymentReady returns a Deployment's ready pods, and what it still waits for
// ("" when it has rolled out to w.replicas).
func deploymentReady(ctx context.Context, c *cluster, ns string, w want) (int32, string, error) {
	d, err := c.Kube.AppsV1().Deployments(ns).Get(ctx, w.deployment, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) && w.replicas == 0:
		return 0, "", nil
	case apierrors.IsNotFound(err):
		return 0, fmt.Sprintf("Deployment %s does not exist", w.deployment), nil
	case err != nil:
		return 0, "", fmt.Errorf("reading Deployment %s/%s in cluster %s: %w", ns, w.deployment, c.Name, err)
	}
	return d.Status.ReadyReplicas, rolloutProblem(d, w.replicas), nil
}

// rolloutProblem says what keeps d from having exactly replicas ready pods of its
// current template, "" when nothing does.
func rolloutProblem(d *appsv1.Deployment, replicas int32) string {
	s := d.Status
	spec := int32(1)
	if d.Spec.Replicas != nil {
		spec = *d.Spec.Replicas
	}
	switch {
	case spec != replicas:
		return fmt.Sprintf("Deployment %s is set to %d replicas, not %d", d.Name, spec, replicas)
	case s.ObservedGeneration < d.Generation:
		return fmt.Sprintf("Deployment %s: the controller has not seen its latest change", d.Name)
	case s.UpdatedReplicas != replicas || s.Replicas != replicas || s.ReadyReplicas < replicas || s.AvailableReplicas < replicas:
		return fmt.Sprintf("Deployment %s: %d of %d pods updated, %d ready, %d in all", d.Name, s.UpdatedReplicas, replicas, s.ReadyReplicas, s.Replicas)
	}
	return ""
}

// podProblems describes each pod of selector in ns that is not ready (pods being
// deleted left out), and says whether one failed in a way that waiting cannot fix.
// verbose adds the pods' recent warning events and crashed containers' log tails.
func (a *Activities) podProblems(ctx context.Context, c *cluster, ns, selector string, verbose bool) ([]string, bool) {
	return helmkit.PodProblems(ctx, c.Kube, helmkit.PodQuery{
		Namespace: ns, Selector: selector, CrashLimit: a.waits.CrashLimit, SkipTerminating: true, Verbose: verbose,
	})
}

// scaleDeployment sets a Deployment's replicas through its scale subresource, only
// when they differ. A Deployment that does not exist is an error unless replicas is
// 0.
func scaleDeployment(ctx context.Context, c *cluster, ns, name string, replicas int32) error {
	sc, err := c.Kube.AppsV1().Deployments(ns).GetScale(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) && replicas == 0:
		return nil
	case apierrors.IsNotFound(err):
		return nonRetryable(contract.ErrReleaseNotReady, "Deployment %s/%s does not exist in cluster %s: deploy the stable release (PromotionDeploy) before a canary", ns, name, c.Name)
	case err != nil:
		return fmt.Errorf("reading the scale of Deployment %s/%s in cluster %s: %w", ns, name, c.Name, err)
	}
	if sc.Spec.Replicas == replicas {
		return nil
	}
	sc.Spec.Replicas = replicas
	if _, err := c.Kube.AppsV1().Deployments(ns).UpdateScale(ctx, name, sc, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("scaling Deployment %s/%s in cluster %s to %d: %w", ns, name, c.Name, replicas, err)
	}
	return nil
}
