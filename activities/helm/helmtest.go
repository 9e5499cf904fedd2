package helm

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.temporal.io/sdk/temporal"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/heartbeat"
	"github.com/wikimedia/conveyor/activities/internal/helmkit"
	"github.com/wikimedia/conveyor/internal/lib/tracing"
)

// HelmTest runs the release's test hooks, as `helm test` does, and waits for each to
// finish (at most the test timeout). A test pod that fails or does not finish in time
// is a non-retryable contract.ErrHelmTest carrying the pod's state and log tail; a
// hook that could not even be created (the cluster unreachable) is retried.
func (a *Activities) HelmTest(ctx context.Context, in contract.HelmTestInput) error {
	ns, name := in.Release.Namespace, in.Release.Name
	cfg, logger, err := a.existingRelease(ctx, in.Release)
	if err != nil {
		return err
	}
	rt := action.NewReleaseTesting(cfg)
	rt.Namespace, rt.Timeout = ns, helmkit.Within(ctx, a.testTimeout)
	rel, err := heartbeat.While(ctx, heartbeatEvery, Progress{Step: "running helm test"}, func() (*release.Release, error) {
		_, span := tracing.Span(ctx, "helm test", attribute.String("helm.release", name), attribute.String("k8s.namespace", ns))
		rel, err := rt.Run(name)
		tracing.End(span, err)
		return rel, err
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err == nil {
		for _, h := range testHooks(rel) {
			logger.Info("Test hook passed", "hook", h.Name, "log", a.hookLog(ctx, ns, h))
		}
		return nil
	}
	if rel == nil {
		return fmt.Errorf("running the tests of release %s/%s: %w", ns, name, err)
	}
	var failed []string
	for _, h := range testHooks(rel) {
		if h.LastRun.Phase != release.HookPhaseFailed {
			continue
		}
		detail, ran := a.hookFailure(ctx, ns, h, rt.Timeout, timedOut(err))
		if !ran {
			return fmt.Errorf("running test hook %s of release %s/%s: %w", h.Name, ns, name, err)
		}
		failed = append(failed, detail)
	}
	if len(failed) == 0 {
		return fmt.Errorf("running the tests of release %s/%s: %w", ns, name, err)
	}
	msg := fmt.Sprintf("helm test of release %s/%s failed: %s", ns, name, strings.Join(failed, "\n"))
	logger.Warn("Helm test failed", "error", err)
	return temporal.NewNonRetryableApplicationError(msg, contract.ErrHelmTest, err)
}

// testHooks are the release's test hooks, Pods or Jobs.
func testHooks(rel *release.Release) []*release.Hook {
	var out []*release.Hook
	for _, h := range rel.Hooks {
		if slices.Contains(h.Events, release.HookTest) {
			out = append(out, h)
		}
	}
	return out
}

// hookPod finds the pod a test hook ran as: the hook itself, or its Job's last pod.
func (a *Activities) hookPod(ctx context.Context, ns string, h *release.Hook) (*corev1.Pod, error) {
	switch h.Kind {
	case "Pod":
		return a.kube.CoreV1().Pods(ns).Get(ctx, h.Name, metav1.GetOptions{})
	case "Job":
		sel := labels.Set{"batch.kubernetes.io/job-name": h.Name}.AsSelector().String()
		list, err := a.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return nil, err
		}
		if len(list.Items) == 0 {
			return nil, apierrors.NewNotFound(corev1.Resource("pods"), "of job "+h.Name)
		}
		last := slices.MaxFunc(list.Items, func(x, y corev1.Pod) int {
			return x.CreationTimestamp.Compare(y.CreationTimestamp.Time)
		})
		return &last, nil
	}
	return nil, apierrors.NewNotFound(corev1.Resource("pods"), h.Name)
}

// hookFailure describes a failed test hook with its pod's state and log tail, and says
// whether the test ran and failed: its pod failed, or did not finish within timeout,
// or was removed by its delete policy on failure. A pod that is missing otherwise was
// never created, and one still running when the watch broke off early may yet pass.
func (a *Activities) hookFailure(ctx context.Context, ns string, h *release.Hook, timeout time.Duration, timedOut bool) (string, bool) {
	pod, err := a.hookPod(ctx, ns, h)
	if err != nil {
		if apierrors.IsNotFound(err) && slices.Contains(h.DeletePolicies, release.HookFailed) {
			return fmt.Sprintf("test %s failed; its pod was deleted by its hook-delete-policy, so its log is gone", h.Name), true
		}
		return "", false
	}
	state := string(pod.Status.Phase)
	if pod.Status.Reason != "" {
		state += " (" + pod.Status.Reason + ")"
	}
	if pod.Status.Phase != corev1.PodFailed {
		if !timedOut {
			return "", false
		}
		state += fmt.Sprintf(", still not done after %s", timeout.Round(time.Second))
	}
	var logs []string
	for _, c := range pod.Spec.Containers {
		logs = append(logs, fmt.Sprintf("container %s%s, log tail: %s", c.Name, exitOf(pod, c.Name), helmkit.LogTail(ctx, a.kube, ns, pod.Name, c.Name, false)))
	}
	return fmt.Sprintf("test pod %s: %s; %s", pod.Name, state, strings.Join(logs, "; ")), true
}

// hookLog is a passed test's log tail, for the worker's log.
func (a *Activities) hookLog(ctx context.Context, ns string, h *release.Hook) string {
	pod, err := a.hookPod(ctx, ns, h)
	if err != nil || len(pod.Spec.Containers) == 0 {
		return ""
	}
	return strings.TrimSpace(helmkit.LogTail(ctx, a.kube, ns, pod.Name, pod.Spec.Containers[0].Name, false))
}

// timedOut says whether Helm gave up waiting for a hook, rather than seeing it fail.
func timedOut(err error) bool {
	return wait.Interrupted(err) || strings.Contains(err.Error(), "timed out waiting for the condition")
}

func exitOf(p *corev1.Pod, container string) string {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == container && cs.State.Terminated != nil {
			return fmt.Sprintf(" exited %d (%s)", cs.State.Terminated.ExitCode, cs.State.Terminated.Reason)
		}
	}
	return ""
}
