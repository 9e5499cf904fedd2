package helm

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/kube"
	"helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/heartbeat"
	"github.com/wikimedia/conveyor/activities/internal/helmkit"
	"github.com/wikimedia/conveyor/internal/lib/tracing"
)

// heartbeatEvery is how often an activity heartbeats while Helm works.
const heartbeatEvery = 10 * time.Second

// maxHistory bounds the revisions kept per release: retries upgrade in place.
const maxHistory = 5

// DeployCandidate installs in.Image as release in.Release with the repository's chart
// into a namespace of its own, and waits until the release is ready. The chart is
// conveyor's charts/service when in.Settings.Chart is empty, else that directory of
// in.Source's checkout (fetched on this worker when it is not there). The values are
// in.Settings.Values with image.repository and image.digest set by conveyor, and with
// the default chart appName too (the release name, which names the Service).
//
// It is idempotent: a release left by an earlier attempt is upgraded, also when that
// attempt died half-way. A chart that does not render or values that fail its schema
// are a non-retryable contract.ErrChart; pods that keep crashing, or whose image does
// not exist, a non-retryable contract.ErrCandidateNotReady; pods that are merely not
// ready before the ready timeout, a retryable error. Both errors list each pod's reasons.
func (a *Activities) DeployCandidate(ctx context.Context, in contract.DeployCandidateInput) (contract.DeployCandidateOutput, error) {
	ns, name := in.Release.Namespace, in.Release.Name
	logger := log.With(helmkit.Logger(ctx), "namespace", ns, "release", name)
	if err := validateRelease(in.Release); err != nil {
		return contract.DeployCandidateOutput{}, err
	}
	repo, digest, ok := helmkit.SplitImage(in.Image)
	if !ok {
		return contract.DeployCandidateOutput{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("image %q: want a candidate by digest, repository@sha256:<64 hex digits>", in.Image), contract.ErrInvalidConfig, nil)
	}
	ch, isDefault, err := a.loadChart(ctx, in.Settings.Chart, in.Source)
	if err != nil {
		return contract.DeployCandidateOutput{}, err
	}
	vals := candidateValues(in.Settings.Values, name, repo, digest, isDefault)
	unreviewed := !isDefault && in.Source.Branch == ""
	field := fmt.Sprintf("chart.path %q in .pipeline/config.yaml", in.Settings.Chart)
	if unreviewed {
		// Before checkRenders: a chart that reads the cluster may not render without it.
		if problems := templateProblems(ch); len(problems) > 0 {
			return contract.DeployCandidateOutput{}, untrusted(field, problems)
		}
	}
	if err := a.checkRenders(ch, vals, in.Release, in.Settings); err != nil {
		return contract.DeployCandidateOutput{}, err
	}
	if unreviewed {
		caps, err := a.capabilities()
		if err != nil {
			return contract.DeployCandidateOutput{}, err
		}
		if ch, err = pinUntrusted(ch, vals, in.Release, field, caps, sandbox{namespace: ns, mapper: a.mapper}); err != nil {
			return contract.DeployCandidateOutput{}, err
		}
		logger.Info("Checked the chart of an unreviewed patchset; installing what it rendered", "chart", in.Settings.Chart, "objects", len(ch.Templates))
	}
	if err := a.ensureNamespace(ctx, ns, in.Labels); err != nil {
		return contract.DeployCandidateOutput{}, err
	}
	if a.releaseRole != "" {
		if err := ensureReleaseBinding(ctx, a.kube, a.releaseRole, ns); err != nil {
			return contract.DeployCandidateOutput{}, err
		}
	}
	cfg, err := a.cluster.ActionConfig(ns, logger)
	if err != nil {
		return contract.DeployCandidateOutput{}, err
	}
	rel, err := heartbeat.While(ctx, heartbeatEvery, Progress{Step: "installing " + in.Image}, func() (*release.Release, error) {
		ctx, span := tracing.Span(ctx, "helm install", attribute.String("helm.release", name), attribute.String("k8s.namespace", ns), attribute.String("image", in.Image))
		rel, err := a.installOrUpgrade(ctx, cfg, in.Release, ch, vals, logger)
		tracing.End(span, err)
		return rel, err
	})
	if err != nil {
		return contract.DeployCandidateOutput{}, classifyInstall(in.Release, err)
	}
	logger.Info("Installed the candidate; waiting for it to be ready", "revision", rel.Version, "image", in.Image)
	resources, err := cfg.KubeClient.Build(bytes.NewBufferString(rel.Manifest), false)
	if err != nil {
		return contract.DeployCandidateOutput{}, fmt.Errorf("reading the manifest of release %s/%s: %w", ns, name, err)
	}
	wctx, span := tracing.Span(ctx, "kubernetes wait ready", attribute.String("k8s.namespace", ns), attribute.Int("k8s.objects", len(resources)))
	err = a.waitReady(wctx, ns, resources, logger)
	tracing.End(span, err)
	if err != nil {
		return contract.DeployCandidateOutput{}, err
	}
	url, err := a.serviceURL(ctx, in.Release, resources, in.Settings.ServicePort)
	if err != nil {
		return contract.DeployCandidateOutput{}, err
	}
	logger.Info("Candidate ready", "revision", rel.Version, "serviceURL", url)
	return contract.DeployCandidateOutput{ServiceURL: url, Revision: rel.Version}, nil
}

// existingRelease is where HelmTest and Teardown start: the release's names
// checked, a logger naming it, and a Helm configuration for its namespace.
func (a *Activities) existingRelease(ctx context.Context, r contract.Release) (*action.Configuration, log.Logger, error) {
	logger := log.With(helmkit.Logger(ctx), "namespace", r.Namespace, "release", r.Name)
	if err := validateRelease(r); err != nil {
		return nil, nil, err
	}
	cfg, err := a.cluster.ActionConfig(r.Namespace, logger)
	if err != nil {
		return nil, nil, err
	}
	return cfg, logger, nil
}

// validateRelease checks the names before they reach the API server.
func validateRelease(r contract.Release) error {
	if errs := validation.IsDNS1123Label(r.Namespace); len(errs) > 0 {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("release namespace %q: %s", r.Namespace, strings.Join(errs, "; ")), contract.ErrInvalidConfig, nil)
	}
	if err := chartutil.ValidateReleaseName(r.Name); err != nil {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("release name %q (the image name in .pipeline/config.yaml): %v", r.Name, err), contract.ErrInvalidConfig, err)
	}
	return nil
}

// ensureNamespace creates the release's namespace with labels and conveyor's
// sandbox labels (sandboxLabels); one that exists already is fine if it has
// conveyor's sandbox label (an earlier attempt's), and refused otherwise: the
// release would land among objects conveyor does not own, and Teardown would
// refuse to remove it.
func (a *Activities) ensureNamespace(ctx context.Context, ns string, labels map[string]string) error {
	obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: sandboxLabels(labels)}}
	_, err := a.kube.CoreV1().Namespaces().Create(ctx, obj, metav1.CreateOptions{})
	switch {
	case err == nil:
		return nil
	case apierrors.IsAlreadyExists(err):
		got, err := a.kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading namespace %s: %w", ns, err)
		}
		return checkSandbox(got, "deploy into")
	case apierrors.IsInvalid(err):
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("creating namespace %s: %v", ns, err), contract.ErrInvalidConfig, err)
	default:
		return fmt.Errorf("creating namespace %s: %w", ns, err)
	}
}

// installOrUpgrade installs the release, or upgrades the one an earlier attempt left,
// also when that attempt died half-way (helmkit.InstallOrUpgrade). Neither waits for
// readiness: waitReady does, with heartbeats and reasons.
func (a *Activities) installOrUpgrade(ctx context.Context, cfg *action.Configuration, r contract.Release, ch *chart.Chart, vals map[string]any, logger log.Logger) (*release.Release, error) {
	last, err := helmkit.LastRevision(cfg, r.Name)
	if err != nil {
		return nil, fmt.Errorf("reading the history of release %s/%s: %w", r.Namespace, r.Name, err)
	}
	if last != nil {
		logger.Info("Release exists from an earlier attempt; upgrading it", "revision", last.Version, "status", last.Info.Status)
	}
	return helmkit.InstallOrUpgrade(ctx, cfg, last, helmkit.Apply{
		Name: r.Name, Namespace: r.Namespace, Timeout: helmkit.Within(ctx, a.waits.ReadyTimeout), MaxHistory: maxHistory,
		Interrupted: "interrupted; superseded by a retried deploy",
	}, ch, vals)
}

// classifyInstall makes the API server's refusal of the rendered objects a chart error;
// everything else (the cluster unreachable, a conflict) is retried.
func classifyInstall(r contract.Release, err error) error {
	msg := fmt.Sprintf("installing release %s/%s: %v", r.Namespace, r.Name, err)
	if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
		return temporal.NewNonRetryableApplicationError(msg+" (the Kubernetes API refused an object the chart rendered)", contract.ErrChart, err)
	}
	return fmt.Errorf("installing release %s/%s: %w", r.Namespace, r.Name, err)
}

// serviceURL is http://ClusterIP:port of the release's Service that has port (any
// port if 0; the Service named like the release first).
func (a *Activities) serviceURL(ctx context.Context, r contract.Release, resources kube.ResourceList, port int) (string, error) {
	var svcs []*corev1.Service
	for _, info := range resources {
		if info.Mapping == nil || info.Mapping.GroupVersionKind.Kind != "Service" || info.Mapping.GroupVersionKind.Group != "" {
			continue
		}
		svc, err := a.kube.CoreV1().Services(info.Namespace).Get(ctx, info.Name, metav1.GetOptions{})
		if err != nil {
			return "", fmt.Errorf("reading Service %s/%s: %w", info.Namespace, info.Name, err)
		}
		if svc.Name == r.Name {
			svcs = append([]*corev1.Service{svc}, svcs...)
		} else {
			svcs = append(svcs, svc)
		}
	}
	var seen []string
	for _, svc := range svcs {
		if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
			continue
		}
		for _, p := range svc.Spec.Ports {
			seen = append(seen, fmt.Sprintf("%s:%d", svc.Name, p.Port))
			if port == 0 || int(p.Port) == port {
				host := svc.Spec.ClusterIP
				if strings.Contains(host, ":") {
					host = "[" + host + "]"
				}
				return "http://" + host + ":" + strconv.Itoa(int(p.Port)), nil
			}
		}
	}
	if len(seen) == 0 {
		return "", temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("release %s/%s has no Service with a ClusterIP: the e2e checks need one (service.enabled in chart.values?)", r.Namespace, r.Name),
			contract.ErrChart, nil)
	}
	return "", temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("servicePort %d in .pipeline/config.yaml matches no port of the release's Services (%s): set it to one of them, or set chart.values service.port to %d",
			port, strings.Join(seen, ", "), port),
		contract.ErrInvalidConfig, nil)
}
