package promote

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/log"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/heartbeat"
	"github.com/wikimedia/conveyor/activities/internal/helmkit"
)

// canaryGrace is how long a removed canary's pods get to stop: they served a share
// of the traffic through the Service, which stops sending them any as soon as they
// are terminating; a server that ignores SIGTERM (busybox httpd) would otherwise
// hold its pod for the default 30 seconds.
const canaryGrace = time.Second

// CanarySet makes the canary release of in.Service (Helm release <service>-canary:
// Deployment <service>-canary, no Service of its own, its pods selected by the
// stable release's Service) run in.Image with in.CanaryReplicas pods, scales the
// stable Deployment to in.StableReplicas, and waits until both have exactly that
// many ready pods. The canary is created or upgraded first, so that the pods
// serving the Service never drop below what both numbers promise.
//
// It is idempotent: a canary release already at the image and replicas gets no new
// revision, and a Deployment already at its replicas is not touched. A canary whose
// pods fail for good (missing image, crash loop) is a non-retryable
// contract.ErrReleaseNotReady.
func (a *Activities) CanarySet(ctx context.Context, in contract.CanarySetInput) (contract.CanarySetOutput, error) {
	if err := checkRelease(in.ServiceRelease); err != nil {
		return contract.CanarySetOutput{}, err
	}
	c, err := a.clusterFor(in.ServiceRelease)
	if err != nil {
		return contract.CanarySetOutput{}, err
	}
	if in.CanaryReplicas < 0 || in.StableReplicas < 0 || in.CanaryReplicas+in.StableReplicas == 0 {
		return contract.CanarySetOutput{}, nonRetryable(contract.ErrPromotionInput, "CanarySet of %s: canary %d and stable %d replicas: neither may be negative, and together at least 1",
			in.Service, in.CanaryReplicas, in.StableReplicas)
	}
	logger := log.With(helmkit.Logger(ctx), "cluster", c.Name, "namespace", in.Namespace, "service", in.Service)
	vals, err := releaseValues(in.Values, in.Service, "canary", in.Image, in.CanaryReplicas)
	if err != nil {
		return contract.CanarySetOutput{}, err
	}
	// The stable release must exist before a canary joins its Service.
	if in.StableReplicas > 0 {
		if _, err := c.Kube.AppsV1().Deployments(in.Namespace).Get(ctx, stableDeployment(in.Service), metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return contract.CanarySetOutput{}, nonRetryable(contract.ErrReleaseNotReady,
				"service %s has no stable release in namespace %s of cluster %s: deploy it (PromotionDeploy) before a canary", in.Service, in.Namespace, c.Name)
		}
	}
	heartbeat.Record(ctx, Progress{Step: fmt.Sprintf("setting the canary to %d pods of %s", in.CanaryReplicas, in.Image)})
	res, err := a.apply(ctx, c, in.Namespace, canaryRelease(in.Service), vals, canaryHistoryMax, logger)
	if err != nil {
		return contract.CanarySetOutput{}, err
	}
	if !res.changed {
		// A Deployment scaled by hand since is brought back to what was asked.
		if err := scaleDeployment(ctx, c, in.Namespace, canaryDeployment(in.Service), int32(in.CanaryReplicas)); err != nil {
			return contract.CanarySetOutput{}, err
		}
	}
	canary := want{deployment: canaryDeployment(in.Service), selector: trackSelector(in.Service, "canary"), replicas: int32(in.CanaryReplicas)}
	stable := want{deployment: stableDeployment(in.Service), selector: trackSelector(in.Service, "stable"), replicas: int32(in.StableReplicas)}
	// The canary's new pods are ready before the stable release gives any up.
	if _, err := a.waitDeployments(ctx, c, in.Namespace, "waiting for the canary", []want{canary}); err != nil {
		return contract.CanarySetOutput{}, err
	}
	if err := scaleDeployment(ctx, c, in.Namespace, stable.deployment, stable.replicas); err != nil {
		return contract.CanarySetOutput{}, err
	}
	ready, err := a.waitDeployments(ctx, c, in.Namespace, "waiting for the canary and the stable release", []want{canary, stable})
	if err != nil {
		return contract.CanarySetOutput{}, err
	}
	out := contract.CanarySetOutput{CanaryReady: int(ready[canary.deployment]), StableReady: int(ready[stable.deployment])}
	logger.Info("Canary set", "image", in.Image, "canaryReady", out.CanaryReady, "stableReady", out.StableReady, "canaryRevision", res.rel.Version)
	return out, nil
}

// CanaryRemove scales the stable Deployment back to in.StableReplicas and waits
// until they are ready, then uninstalls the canary release and waits until its pods
// are gone. Stable comes first so that the Service never has fewer pods than
// during the canary. An absent canary is fine: removing twice is harmless. The
// stable release's image is never changed here.
func (a *Activities) CanaryRemove(ctx context.Context, in contract.CanaryRemoveInput) error {
	if err := checkRelease(in.ServiceRelease); err != nil {
		return err
	}
	c, err := a.clusterFor(in.ServiceRelease)
	if err != nil {
		return err
	}
	if in.StableReplicas < 0 {
		return nonRetryable(contract.ErrPromotionInput, "CanaryRemove of %s: stable replicas %d is negative", in.Service, in.StableReplicas)
	}
	logger := log.With(helmkit.Logger(ctx), "cluster", c.Name, "namespace", in.Namespace, "service", in.Service)
	stable := want{deployment: stableDeployment(in.Service), selector: trackSelector(in.Service, "stable"), replicas: int32(in.StableReplicas)}
	if err := scaleDeployment(ctx, c, in.Namespace, stable.deployment, stable.replicas); err != nil {
		return err
	}
	if _, err := a.waitDeployments(ctx, c, in.Namespace, "restoring the stable release", []want{stable}); err != nil {
		return err
	}
	heartbeat.Record(ctx, Progress{Step: "removing the canary"})
	// The kubelet keeps the grace period of a pod's first deletion, so the canary's
	// objects are deleted orphaning their pods, and the pods then with canaryGrace
	// (stopCanaryPods) rather than by the garbage collector with the default one.
	if err := uninstall(ctx, c, in.Namespace, canaryRelease(in.Service), helmkit.Within(ctx, a.waits.ReadyTimeout), logger); err != nil {
		return err
	}
	orphan := metav1.DeletePropagationOrphan
	// A canary Deployment left by hand or by an interrupted uninstall goes too.
	err = c.Kube.AppsV1().Deployments(in.Namespace).Delete(ctx, canaryDeployment(in.Service), metav1.DeleteOptions{PropagationPolicy: &orphan})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting Deployment %s/%s in cluster %s: %w", in.Namespace, canaryDeployment(in.Service), c.Name, err)
	}
	err = c.Kube.AppsV1().ReplicaSets(in.Namespace).DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: &orphan},
		metav1.ListOptions{LabelSelector: trackSelector(in.Service, "canary")})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting the canary's ReplicaSets in %s of cluster %s: %w", in.Namespace, c.Name, err)
	}
	if err := a.stopCanaryPods(ctx, c, in.Namespace, trackSelector(in.Service, "canary")); err != nil {
		return err
	}
	logger.Info("Canary removed", "stableReplicas", in.StableReplicas)
	return nil
}

// stopCanaryPods deletes the pods of selector with a short grace period and waits
// until each one is terminating: a terminating pod is no longer a ready endpoint
// of the Service, so it takes no more traffic, and the kubelet stops it within
// canaryGrace. Waiting for the pods to disappear as well would only add the
// kubelet's cleanup to every promotion's critical path.
func (a *Activities) stopCanaryPods(ctx context.Context, c *cluster, ns, selector string) error {
	timeout := helmkit.Within(ctx, a.waits.ReadyTimeout)
	deadline := time.Now().Add(timeout)
	grace := int64(canaryGrace / time.Second)
	t := time.NewTicker(a.waits.Poll)
	defer t.Stop()
	for {
		pods, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return fmt.Errorf("listing the canary's pods in %s of cluster %s: %w", ns, c.Name, err)
		}
		serving := 0
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil && p.DeletionGracePeriodSeconds != nil && *p.DeletionGracePeriodSeconds <= grace {
				continue
			}
			serving++
			err := c.Kube.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &grace})
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("deleting canary pod %s/%s in cluster %s: %w", ns, p.Name, c.Name, err)
			}
		}
		if serving == 0 {
			return nil
		}
		heartbeat.Record(ctx, Progress{Step: "removing the canary", Detail: fmt.Sprintf("%d pods left", serving)})
		if time.Now().After(deadline) {
			return fmt.Errorf("the canary's pods in %s of cluster %s are still not terminating after %s", ns, c.Name, timeout.Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
