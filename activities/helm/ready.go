package helm

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"helm.sh/helm/v3/pkg/kube"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/cli-runtime/pkg/resource"
)

// ignoredEvents are warnings that say nothing about why a pod is not ready.
var ignoredEvents = []string{"MissingClusterDNS"}

// permanentWaiting are the reasons a container waits for that waiting cannot fix.
var permanentWaiting = []string{"InvalidImageName", "CreateContainerConfigError", "ErrImageNeverPull"}

// waitReady polls until every resource of the release is ready by Helm's rules (the
// ones `helm install --wait` applies: Deployments rolled out, Services with a
// ClusterIP...), heartbeating what it waits for. It gives up for good when a pod fails
// permanently, and with a retryable error when the ready timeout passes.
func (a *Activities) waitReady(ctx context.Context, ns string, resources kube.ResourceList, logger log.Logger) error {
	checker := kube.NewReadyChecker(a.kube, nil, kube.PausedAsReady(true), kube.CheckJobs(true))
	timeout := within(ctx, a.readyTimeout)
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(a.poll)
	defer t.Stop()
	for {
		var waiting []string
		for _, info := range resources {
			ok, err := checker.IsReady(ctx, info)
			switch {
			case err != nil:
				waiting = append(waiting, fmt.Sprintf("%s/%s (%v)", kindOf(info), info.Name, err))
			case !ok:
				waiting = append(waiting, kindOf(info)+"/"+info.Name)
			}
		}
		if len(waiting) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		pods, permanent := a.podProblems(ctx, ns, false)
		heartbeat(ctx, Progress{Step: "waiting for readiness", Detail: "waiting for " + strings.Join(waiting, ", ") + podsDetail(pods)})
		if permanent {
			pods, _ = a.podProblems(ctx, ns, true)
			msg := fmt.Sprintf("release in namespace %s cannot become ready: %s", ns, strings.Join(pods, "; "))
			logger.Warn("Candidate cannot become ready", "pods", pods)
			return temporal.NewNonRetryableApplicationError(msg, ErrNotReady, nil)
		}
		if time.Now().After(deadline) {
			pods, _ = a.podProblems(ctx, ns, true)
			return fmt.Errorf("release in namespace %s not ready after %s: waiting for %s%s", ns, timeout.Round(time.Second), strings.Join(waiting, ", "), podsDetail(pods))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func kindOf(info *resource.Info) string {
	if info.Mapping != nil {
		return info.Mapping.GroupVersionKind.Kind
	}
	return info.Object.GetObjectKind().GroupVersionKind().Kind
}

func podsDetail(pods []string) string {
	if len(pods) == 0 {
		return ""
	}
	return "; pods: " + strings.Join(pods, "; ")
}

// podProblems describes each serving pod of ns that is not ready, and says whether
// one of them failed in a way that waiting cannot fix. verbose adds the pods' recent
// warning events and the log tail of crashed containers.
func (a *Activities) podProblems(ctx context.Context, ns string, verbose bool) ([]string, bool) {
	list, err := a.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return []string{fmt.Sprintf("listing pods: %v", err)}, false
	}
	var out []string
	permanent := false
	for i := range list.Items {
		p := &list.Items[i]
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed || podReady(p) {
			continue
		}
		var reasons []string
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				reasons = append(reasons, fmt.Sprintf("not scheduled: %s %s", c.Reason, c.Message))
			}
		}
		statuses := append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...)
		for _, cs := range statuses {
			r, perm := a.containerProblem(ctx, p, cs, verbose)
			if r != "" {
				reasons = append(reasons, r)
			}
			permanent = permanent || perm
		}
		if len(reasons) == 0 {
			reasons = append(reasons, string(p.Status.Phase))
		}
		if verbose {
			said := strings.Join(reasons, " ")
			for _, w := range a.warnings(ctx, p) {
				if !strings.Contains(said, w.Message) {
					reasons = append(reasons, fmt.Sprintf("event %s: %s", w.Reason, w.Message))
				}
			}
		}
		out = append(out, "pod "+p.Name+": "+strings.Join(reasons, ", "))
	}
	return out, permanent
}

// containerProblem describes why one container is not ready and whether that is
// permanent: a crash loop past the limit, an image that does not exist, a container
// that cannot be created.
func (a *Activities) containerProblem(ctx context.Context, p *corev1.Pod, cs corev1.ContainerStatus, verbose bool) (string, bool) {
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
		if t := cs.LastTerminationState.Terminated; t != nil {
			s += fmt.Sprintf(", last exit code %d (%s)", t.ExitCode, t.Reason)
		}
		if verbose {
			s += ", log of the last run: " + a.logTail(ctx, p.Namespace, p.Name, cs.Name, true)
		}
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

// warnings are the last few distinct warning events of a pod: failing probes, pull
// errors, scheduling problems. Their messages are trimmed.
func (a *Activities) warnings(ctx context.Context, p *corev1.Pod) []corev1.Event {
	sel := fields.Set{"involvedObject.name": p.Name, "involvedObject.kind": "Pod", "type": corev1.EventTypeWarning}.AsSelector().String()
	evs, err := a.kube.CoreV1().Events(p.Namespace).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil || len(evs.Items) == 0 {
		return nil
	}
	slices.SortFunc(evs.Items, func(x, y corev1.Event) int { return eventTime(y).Compare(eventTime(x)) })
	var out []corev1.Event
	for _, e := range evs.Items {
		e.Message = strings.TrimSpace(e.Message)
		dup := slices.ContainsFunc(out, func(o corev1.Event) bool { return o.Reason == e.Reason && o.Message == e.Message })
		if dup || slices.Contains(ignoredEvents, e.Reason) {
			continue
		}
		out = append(out, e)
		if len(out) == 3 {
			break
		}
	}
	return out
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// logTail is the end of a container's log (its previous run's when previous is set),
// read from the kubelet through the API server, for failure messages.
func (a *Activities) logTail(ctx context.Context, ns, pod, container string, previous bool) string {
	lines, limit := int64(20), int64(4<<10)
	b, err := a.kube.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{
		Container: container, Previous: previous, TailLines: &lines, LimitBytes: &limit,
	}).DoRaw(ctx)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return "(empty)"
	}
	return "\n" + s
}
