package helmkit

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
)

// ignoredEvents are warnings that say nothing about why a pod is not ready.
var ignoredEvents = []string{"MissingClusterDNS"}

// permanentWaiting are the reasons a container waits for that waiting cannot fix.
var permanentWaiting = []string{"InvalidImageName", "CreateContainerConfigError", "ErrImageNeverPull"}

// PodQuery says which pods PodProblems looks at, and how closely.
type PodQuery struct {
	// Namespace is the pods' namespace.
	Namespace string
	// Selector is a label selector; "" is every pod of the namespace.
	Selector string
	// CrashLimit is how many restarts of a crash-looping container make its failure
	// permanent.
	CrashLimit int32
	// SkipTerminating leaves out pods that are being deleted.
	SkipTerminating bool
	// InitContainers looks at the init containers too, not only the containers.
	InitContainers bool
	// Verbose adds each pod's recent warning events and the log tail of each
	// container's previous run, when it restarted.
	Verbose bool
}

// PodProblems describes each serving pod of q that is not ready (pods that succeeded
// or failed are done, not serving), and says whether one of them failed in a way that
// waiting cannot fix: a crash loop past q.CrashLimit, an image that does not exist, a
// container that cannot be created. A pod list that fails is one problem, not a
// permanent one.
func PodProblems(ctx context.Context, kube kubernetes.Interface, q PodQuery) ([]string, bool) {
	list, err := kube.CoreV1().Pods(q.Namespace).List(ctx, metav1.ListOptions{LabelSelector: q.Selector})
	if err != nil {
		return []string{fmt.Sprintf("listing pods: %v", err)}, false
	}
	var out []string
	permanent := false
	for i := range list.Items {
		p := &list.Items[i]
		if (q.SkipTerminating && p.DeletionTimestamp != nil) || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed || PodReady(p) {
			continue
		}
		var reasons []string
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				reasons = append(reasons, fmt.Sprintf("not scheduled: %s %s", c.Reason, c.Message))
			}
		}
		statuses := p.Status.ContainerStatuses
		if q.InitContainers {
			statuses = append(slices.Clone(p.Status.InitContainerStatuses), statuses...)
		}
		for _, cs := range statuses {
			r, perm := containerProblem(ctx, kube, p, cs, q)
			if r != "" {
				reasons = append(reasons, r)
			}
			permanent = permanent || perm
		}
		if len(reasons) == 0 {
			reasons = append(reasons, string(p.Status.Phase))
		}
		if q.Verbose {
			said := strings.Join(reasons, " ")
			for _, w := range warnings(ctx, kube, p) {
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
// permanent.
func containerProblem(ctx context.Context, kube kubernetes.Interface, p *corev1.Pod, cs corev1.ContainerStatus, q PodQuery) (string, bool) {
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
		case w.Reason == "CrashLoopBackOff" && cs.RestartCount >= q.CrashLimit:
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
		if q.Verbose {
			s += ", log of the last run: " + LogTail(ctx, kube, p.Namespace, p.Name, cs.Name, true)
		}
	}
	return s, permanent
}

// PodReady says whether p's Ready condition is true.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// PodsDetail is the tail of a message that lists pods' problems, "" when there are
// none.
func PodsDetail(pods []string) string {
	if len(pods) == 0 {
		return ""
	}
	return "; pods: " + strings.Join(pods, "; ")
}

// warnings are the last few distinct warning events of a pod: failing probes, pull
// errors, scheduling problems. Their messages are trimmed.
func warnings(ctx context.Context, kube kubernetes.Interface, p *corev1.Pod) []corev1.Event {
	sel := fields.Set{"involvedObject.name": p.Name, "involvedObject.kind": "Pod", "type": corev1.EventTypeWarning}.AsSelector().String()
	evs, err := kube.CoreV1().Events(p.Namespace).List(ctx, metav1.ListOptions{FieldSelector: sel})
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

// LogTail is the end of a container's log (its previous run's when previous is set),
// read from the kubelet through the API server, for failure messages. It starts with
// a newline; a log that cannot be read is "(no log: reason)".
func LogTail(ctx context.Context, kube kubernetes.Interface, ns, pod, container string, previous bool) string {
	lines, limit := int64(20), int64(4<<10)
	b, err := kube.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{
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
