package promote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/log"
	"helm.sh/helm/v3/pkg/storage/driver"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/heartbeat"
	"github.com/wikimedia/conveyor/activities/internal/helmkit"
)

// PromotionDeploy installs or upgrades the stable release of in.Service in one
// cluster and namespace to in.Image with in.Replicas pods (Helm, the scaffold chart,
// the environment's values, keeping in.HistoryMax revisions), and waits until every
// pod runs the image and is ready.
//
// With in.OnlyIfAbsent, a release that has a deployed revision is left exactly as
// it is: Revision is that revision and Previous its image.
//
// It is idempotent: a release already deployed with the same image, values and
// chart gets no new revision; its Deployment is only scaled back to in.Replicas if a
// canary step had scaled it down. Previous is the image of the revision before the
// current one, so a retried deploy reports the same as the first.
func (a *Activities) PromotionDeploy(ctx context.Context, in contract.PromotionDeployInput) (contract.PromotionDeployOutput, error) {
	if err := checkRelease(in.ServiceRelease); err != nil {
		return contract.PromotionDeployOutput{}, err
	}
	c, err := a.clusterFor(in.ServiceRelease)
	if err != nil {
		return contract.PromotionDeployOutput{}, err
	}
	if in.Replicas < 1 || in.HistoryMax < 1 {
		return contract.PromotionDeployOutput{}, nonRetryable(contract.ErrPromotionInput, "PromotionDeploy of %s: replicas %d and historyMax %d must be at least 1", in.Service, in.Replicas, in.HistoryMax)
	}
	logger := log.With(helmkit.Logger(ctx), "cluster", c.Name, "namespace", in.Namespace, "service", in.Service)
	vals, err := releaseValues(in.Values, in.Service, "stable", in.Image, in.Replicas)
	if err != nil {
		return contract.PromotionDeployOutput{}, err
	}
	if in.OnlyIfAbsent {
		if out, found, err := a.deployedRelease(c, in.Namespace, stableRelease(in.Service), logger); err != nil || found {
			if found {
				logger.Info("Stable release exists; left as it is", "revision", out.Revision, "image", out.Previous)
			}
			return out, err
		}
	}
	heartbeat.Record(ctx, Progress{Step: "deploying " + in.Image})
	res, err := a.apply(ctx, c, in.Namespace, stableRelease(in.Service), vals, in.HistoryMax, logger)
	if err != nil {
		return contract.PromotionDeployOutput{}, err
	}
	if !res.changed {
		if err := scaleDeployment(ctx, c, in.Namespace, stableDeployment(in.Service), int32(in.Replicas)); err != nil {
			return contract.PromotionDeployOutput{}, err
		}
	}
	logger.Info("Stable release applied; waiting for it", "revision", res.rel.Version, "image", in.Image, "changed", res.changed)
	_, err = a.waitDeployments(ctx, c, in.Namespace, "rolling out "+in.Image+" as the stable release", []want{
		{deployment: stableDeployment(in.Service), selector: trackSelector(in.Service, "stable"), replicas: int32(in.Replicas)},
	})
	if err != nil {
		return contract.PromotionDeployOutput{}, err
	}
	out := contract.PromotionDeployOutput{Revision: res.rel.Version}
	if res.rel.Version > 1 {
		if prev, err := res.cfg.Releases.Get(res.rel.Name, res.rel.Version-1); err == nil {
			out.Previous = imageOf(prev)
		} else if res.previous != nil && res.changed {
			out.Previous = imageOf(res.previous)
		}
	}
	logger.Info("Stable release ready", "revision", out.Revision, "previous", out.Previous)
	return out, nil
}

// deployedRelease finds the deployed revision of release name in ns of c.
func (a *Activities) deployedRelease(c *cluster, ns, name string, logger log.Logger) (contract.PromotionDeployOutput, bool, error) {
	cfg, err := c.ActionConfig(ns, logger)
	if err != nil {
		return contract.PromotionDeployOutput{}, false, err
	}
	rel, err := cfg.Releases.Deployed(name)
	switch {
	case errors.Is(err, driver.ErrNoDeployedReleases) || errors.Is(err, driver.ErrReleaseNotFound):
		return contract.PromotionDeployOutput{}, false, nil
	case err != nil:
		return contract.PromotionDeployOutput{}, false, fmt.Errorf("reading the history of release %s/%s in cluster %s: %w", ns, name, c.Name, err)
	}
	return contract.PromotionDeployOutput{Revision: rel.Version, Previous: imageOf(rel)}, true, nil
}

// smokeWindow is how long PromotionSmoke retries a Service that does not answer yet
// (kube-proxy programs a new Service within seconds).
const smokeWindow = 30 * time.Second

// PromotionSmoke GETs in.Path on the release's Service from the worker host, which
// reaches ClusterIPs through kube-proxy, and wants a 2xx answer. A connection that
// fails is retried for a while; an answer that is not 2xx is a non-retryable
// contract.ErrSmokeFailed. On a simulated cluster no pod answers: the check is that
// the Service exists and selects ready pods, and Detail says so.
func (a *Activities) PromotionSmoke(ctx context.Context, in contract.PromotionSmokeInput) (contract.PromotionSmokeOutput, error) {
	if err := checkRelease(in.ServiceRelease); err != nil {
		return contract.PromotionSmokeOutput{}, err
	}
	c, err := a.clusterFor(in.ServiceRelease)
	if err != nil {
		return contract.PromotionSmokeOutput{}, err
	}
	path := in.Path
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") {
		return contract.PromotionSmokeOutput{}, nonRetryable(contract.ErrPromotionConfig, "smoke path %q of service %s: must start with /", path, in.Service)
	}
	svc, err := c.Kube.CoreV1().Services(in.Namespace).Get(ctx, in.Service, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return contract.PromotionSmokeOutput{}, nonRetryable(contract.ErrSmokeFailed, "service %s has no Service in namespace %s of cluster %s: deploy it first", in.Service, in.Namespace, c.Name)
	}
	if err != nil {
		return contract.PromotionSmokeOutput{}, fmt.Errorf("reading Service %s/%s in cluster %s: %w", in.Namespace, in.Service, c.Name, err)
	}
	if a.simulated(in.ServiceRelease, c) {
		pods, err := c.Kube.CoreV1().Pods(in.Namespace).List(ctx, metav1.ListOptions{LabelSelector: metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: svc.Spec.Selector})})
		if err != nil {
			return contract.PromotionSmokeOutput{}, fmt.Errorf("listing the pods of Service %s/%s in cluster %s: %w", in.Namespace, in.Service, c.Name, err)
		}
		ready := 0
		for i := range pods.Items {
			if helmkit.PodReady(&pods.Items[i]) && pods.Items[i].DeletionTimestamp == nil {
				ready++
			}
		}
		if ready == 0 {
			return contract.PromotionSmokeOutput{}, nonRetryable(contract.ErrSmokeFailed, "Service %s/%s in simulated cluster %s selects no ready pod", in.Namespace, in.Service, c.Name)
		}
		return contract.PromotionSmokeOutput{Detail: fmt.Sprintf(
			"simulated cluster %s: readiness only (its pods serve no traffic): Service %s selects %d ready pods", c.Name, in.Service, ready)}, nil
	}
	url, err := serviceURL(svc)
	if err != nil {
		return contract.PromotionSmokeOutput{}, nonRetryable(contract.ErrSmokeFailed, "service %s in cluster %s: %v", in.Service, c.Name, err)
	}
	url += path
	deadline := time.Now().Add(min(smokeWindow, helmkit.Within(ctx, smokeWindow)))
	for attempt := 1; ; attempt++ {
		heartbeat.Record(ctx, Progress{Step: "smoke check", Detail: fmt.Sprintf("GET %s, attempt %d", url, attempt)})
		status, body, err := a.get(ctx, url, 5*time.Second)
		if err == nil && status/100 == 2 {
			return contract.PromotionSmokeOutput{URL: url, Status: status, Detail: fmt.Sprintf("GET %s: %d", url, status)}, nil
		}
		if err == nil {
			return contract.PromotionSmokeOutput{}, nonRetryable(contract.ErrSmokeFailed, "smoke check of %s in cluster %s: GET %s answered %d, want 2xx: %s",
				in.Service, c.Name, url, status, body)
		}
		if ctx.Err() != nil {
			return contract.PromotionSmokeOutput{}, ctx.Err()
		}
		if time.Now().After(deadline) {
			return contract.PromotionSmokeOutput{}, fmt.Errorf("smoke check of %s in cluster %s: GET %s: %w (for %s)", in.Service, c.Name, url, err, smokeWindow)
		}
		select {
		case <-ctx.Done():
			return contract.PromotionSmokeOutput{}, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// serviceURL is http://ClusterIP:port of a Service's first port.
func serviceURL(svc *corev1.Service) (string, error) {
	if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone || len(svc.Spec.Ports) == 0 {
		return "", fmt.Errorf("Service %s/%s has no ClusterIP and port to check", svc.Namespace, svc.Name)
	}
	return "http://" + net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(int(svc.Spec.Ports[0].Port))), nil
}

// get sends one GET with a timeout and returns the status and the start of the
// body; an error means no answer at all.
func (a *Activities) get(ctx context.Context, url string, timeout time.Duration) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}
