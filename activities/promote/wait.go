package promote

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wikimedia/conveyor/activities/contract"
)

// permanentWaiting are the reasons a container waits for that waiting cannot fix.
var permanentWaiting = []string{"InvalidImageName", "CreateContainerConfigError", "ErrImageNeverPull"}

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
	timeout := within(ctx, a.readyTimeout)
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(a.poll)
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
		var pods []string
		permanent := false
		for _, w := range wants {
			p, perm := a.podProblems(ctx, c, ns, w.selector)
			pods, permanent = append(pods, p...), permanent || perm
		}
		detail := strings.Join(waiting, "; ") + podsDetail(pods)
		heartbeat(ctx, Progress{Step: step, Detail: detail})
		if permanent {
			return ready, nonRetryable(contract.ErrReleaseNotReady, "%s in namespace %s of cluster %s cannot succeed: %s", step, ns, c.name, detail)
		}
		if time.Now().After(deadline) {
			return ready, fmt.Errorf("%s in namespace %s of cluster %s: not done after %s: %s", step, ns, c.name, timeout.Round(time.Second), detail)
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
	d, err := c.kube.AppsV1().Deployments(ns).Get(ctx, w.deployment, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) && w.replicas == 0:
		return 0, "", nil
	case apierrors.IsNotFound(err):
		return 0, fmt.Sprintf("Deployment %s does not exist", w.deployment), nil
	case err != nil:
		return 0, "", fmt.Errorf("reading Deployment %s/%s in cluster %s: %w", ns, w.deployment, c.name, err)
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

func podsDetail(pods []string) string {
	if len(pods) == 0 {
		return ""
	}
	return "; pods: " + strings.Join(pods, "; ")
}

// podProblems describes each pod of selector in ns that is not ready, and says
// whether one failed in a way that waiting cannot fix.
func (a *Activities) podProblems(ctx context.Context, c *cluster, ns, selector string) ([]string, bool) {
	list, err := c.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return []string{fmt.Sprintf("listing pods: %v", err)}, false
	}
	var out []string
	permanent := false
	for i := range list.Items {
		p := &list.Items[i]
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed || podReady(p) {
			continue
		}
		var reasons []string
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse {
				reasons = append(reasons, fmt.Sprintf("not scheduled: %s %s", cond.Reason, cond.Message))
			}
		}
		for _, cs := range p.Status.ContainerStatuses {
			r, perm := a.containerProblem(cs)
			if r != "" {
				reasons = append(reasons, r)
			}
			permanent = permanent || perm
		}
		if len(reasons) == 0 {
			reasons = append(reasons, string(p.Status.Phase))
		}
		out = append(out, "pod "+p.Name+": "+strings.Join(reasons, ", "))
	}
	return out, permanent
}

// containerProblem says why a container is not ready and whether that is for good.
func (a *Activities) containerProblem(cs corev1.ContainerStatus) (string, bool) {
	if cs.Ready {
		return "", false
	}
	s := "container " + cs.Name + ": "
	permanent := false
	switch {
	case cs.State.Waiting != nil:
		w := cs.State.Waiting
		s += w.Reason
		if w.Message != "" {
			s += " (" + w.Message + ")"
		}
		msg := strings.ToLower(w.Message)
		switch {
		case slices.Contains(permanentWaiting, w.Reason):
			permanent = true
		case w.Reason == "CrashLoopBackOff" && cs.RestartCount >= a.crashLimit:
			permanent = true
		case (w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff") &&
			(strings.Contains(msg, "not found") || strings.Contains(msg, "manifest unknown")):
			permanent = true
		}
	case cs.State.Terminated != nil:
		s += fmt.Sprintf("terminated (%s, exit code %d)", cs.State.Terminated.Reason, cs.State.Terminated.ExitCode)
	case cs.State.Running != nil:
		s += "running, not ready"
	default:
		s += "not started"
	}
	if cs.RestartCount > 0 {
		s += fmt.Sprintf(", %d restarts", cs.RestartCount)
	}
	return s, permanent
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// scaleDeployment sets a Deployment's replicas through its scale subresource, only
// when they differ. A Deployment that does not exist is an error unless replicas is
// 0.
func scaleDeployment(ctx context.Context, c *cluster, ns, name string, replicas int32) error {
	sc, err := c.kube.AppsV1().Deployments(ns).GetScale(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) && replicas == 0:
		return nil
	case apierrors.IsNotFound(err):
		return nonRetryable(contract.ErrReleaseNotReady, "Deployment %s/%s does not exist in cluster %s: deploy the stable release (PromotionDeploy) before a canary", ns, name, c.name)
	case err != nil:
		return fmt.Errorf("reading the scale of Deployment %s/%s in cluster %s: %w", ns, name, c.name, err)
	}
	if sc.Spec.Replicas == replicas {
		return nil
	}
	sc.Spec.Replicas = replicas
	if _, err := c.kube.AppsV1().Deployments(ns).UpdateScale(ctx, name, sc, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("scaling Deployment %s/%s in cluster %s to %d: %w", ns, name, c.name, replicas, err)
	}
	return nil
}
