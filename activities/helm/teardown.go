package helm

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/log"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/heartbeat"
	"github.com/wikimedia/conveyor/activities/internal/helmkit"
)

// teardownGrace is how long Teardown gives the release's pods to stop.
const teardownGrace = time.Second

// Teardown uninstalls the release (running its delete hooks) and deletes its
// namespace, waiting until the namespace is gone. A release or namespace that does not
// exist is fine, so tearing down twice is harmless. A release that cannot be
// uninstalled is logged and left to the namespace's deletion, which removes it too.
//
// The pods get one second to stop, not their termination grace period: the isolated
// release served only the pipeline's checks, and a server that ignores SIGTERM as
// PID 1 (busybox httpd does) would hold every teardown for 30 seconds. The kubelet
// keeps the grace period of a pod's first deletion, so the uninstall orphans the
// release's ReplicaSets and pods rather than let the garbage collector delete them
// with the default grace, and the pods are deleted once the namespace is terminating
// and nothing can recreate them.
//
// It refuses, non-retryably, a namespace that lacks conveyor's sandbox label
// (sandboxLabel, set when DeployCandidate creates it), and then touches nothing in
// it: a mistaken or forged input must not delete a namespace conveyor did not make.
func (a *Activities) Teardown(ctx context.Context, in contract.TeardownInput) error {
	ns, name := in.Release.Namespace, in.Release.Name
	cfg, logger, err := a.existingRelease(ctx, in.Release)
	if err != nil {
		return err
	}
	got, err := a.kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		logger.Info("Namespace already gone")
		return nil
	case err != nil:
		return fmt.Errorf("reading namespace %s: %w", ns, err)
	}
	if err := checkSandbox(got, "tear down"); err != nil {
		return err
	}
	timeout := helmkit.Within(ctx, a.goneTimeout)
	_, err = heartbeat.While(ctx, heartbeatEvery, Progress{Step: "uninstalling release " + name}, func() (struct{}, error) {
		return struct{}{}, helmkit.Uninstall(cfg, name, timeout)
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		logger.Warn("Uninstalling the release failed; deleting its namespace removes it anyway", "error", err)
	}
	return a.deleteNamespace(ctx, ns, logger)
}

// deleteNamespace deletes ns and waits, heartbeating, until it is gone.
func (a *Activities) deleteNamespace(ctx context.Context, ns string, logger log.Logger) error {
	err := a.kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deleting namespace %s: %w", ns, err)
	}
	timeout := helmkit.Within(ctx, a.goneTimeout)
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(a.waits.Poll)
	defer t.Stop()
	for {
		a.hurryPods(ctx, ns, logger)
		got, err := a.kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			logger.Info("Namespace deleted")
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		}
		detail := ""
		if err != nil {
			detail = err.Error()
		} else {
			detail = namespaceDetail(got)
		}
		heartbeat.Record(ctx, Progress{Step: "deleting namespace " + ns, Detail: detail})
		if time.Now().After(deadline) {
			return fmt.Errorf("namespace %s still there after %s: %s", ns, timeout.Round(time.Second), detail)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// hurryPods deletes the namespace's pods that are not being deleted yet, with a grace
// period of teardownGrace. The namespace is terminating, so nothing can recreate them.
func (a *Activities) hurryPods(ctx context.Context, ns string, logger log.Logger) {
	pods, err := a.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	grace := int64(teardownGrace / time.Second)
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		err := a.kube.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &grace})
		if err != nil && !apierrors.IsNotFound(err) {
			logger.Warn("Deleting a pod of the terminating namespace failed", "pod", p.Name, "error", err)
		}
	}
}

// namespaceDetail says what a terminating namespace still waits for.
func namespaceDetail(n *corev1.Namespace) string {
	parts := []string{string(n.Status.Phase)}
	for _, c := range n.Status.Conditions {
		if c.Status == corev1.ConditionTrue && c.Message != "" {
			parts = append(parts, c.Message)
		}
	}
	return strings.Join(parts, "; ")
}
