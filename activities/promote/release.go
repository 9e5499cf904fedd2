package promote

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/log"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/helmkit"
)

// canaryHistoryMax bounds the canary release's revisions: each step is one.
const canaryHistoryMax = 3

// splitImage splits repository@sha256:... and refuses anything else.
func splitImage(image string) (repo, digest string, err error) {
	repo, digest, ok := helmkit.SplitImage(image)
	if !ok {
		return "", "", nonRetryable(contract.ErrPromotionInput, "image %q: want repository@sha256:<64 hex digits>", image)
	}
	return repo, digest, nil
}

// checkRelease checks the names an activity is given before they reach a cluster.
func checkRelease(r contract.ServiceRelease) error {
	if errs := validation.IsDNS1035Label(r.Service); len(errs) > 0 || len(r.Service) > 46 {
		return nonRetryable(contract.ErrPromotionInput, "service %q: must be a lowercase DNS label of at most 46 characters (it names the Service and, with -canary, a Helm release): %s",
			r.Service, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Label(r.Namespace); len(errs) > 0 {
		return nonRetryable(contract.ErrPromotionInput, "namespace %q of service %s in cluster %s: %s", r.Namespace, r.Service, r.Cluster, strings.Join(errs, "; "))
	}
	return nil
}

// releaseValues are the environment's values (YAML) with conveyor's own on top: the
// image by digest, the application name, the track and the replica count. A canary
// has no Service or test hook of its own: its pods join the stable release's Service.
func releaseValues(envValues, service, track, image string, replicas int) (map[string]any, error) {
	repo, digest, err := splitImage(image)
	if err != nil {
		return nil, err
	}
	if replicas < 0 {
		return nil, nonRetryable(contract.ErrPromotionInput, "%s replicas %d of service %s: must not be negative", track, replicas, service)
	}
	vals := map[string]any{}
	if strings.TrimSpace(envValues) != "" {
		if err := yaml.Unmarshal([]byte(envValues), &vals); err != nil {
			return nil, nonRetryable(contract.ErrPromotionConfig, "the Helm values of service %s are not a YAML mapping: %v", service, err)
		}
	}
	img, _ := vals["image"].(map[string]any)
	if img == nil {
		img = map[string]any{}
	}
	img["repository"], img["digest"] = repo, digest
	delete(img, "tag")
	vals["image"] = img
	vals["appName"] = service
	vals["track"] = track
	vals["replicaCount"] = replicas
	if track == "canary" {
		vals["service"] = mergeMaps(asMap(vals["service"]), map[string]any{"enabled": false})
		vals["test"] = mergeMaps(asMap(vals["test"]), map[string]any{"enabled": false})
	}
	return vals, nil
}

// loadChart loads the embedded scaffold chart afresh: Helm's actions keep and may
// change the chart they are given.
func (a *Activities) loadChart() (*chart.Chart, error) {
	ch, err := loader.LoadDir(a.chartDir)
	if err != nil {
		return nil, fmt.Errorf("loading the scaffold chart %s: %w", a.chartDir, err)
	}
	return ch, nil
}

// ensureNamespace creates ns in c; one that exists is fine.
func ensureNamespace(ctx context.Context, c *cluster, ns string) error {
	obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"app.kubernetes.io/managed-by": "conveyor"}}}
	_, err := c.Kube.CoreV1().Namespaces().Create(ctx, obj, metav1.CreateOptions{})
	if err == nil || apierrors.IsAlreadyExists(err) {
		return nil
	}
	return fmt.Errorf("creating namespace %s in cluster %s: %w", ns, c.Name, err)
}

// applied is what apply did.
type applied struct {
	cfg *action.Configuration
	rel *release.Release
	// previous is the last revision before apply, nil for a first install.
	previous *release.Release
	changed  bool
}

// apply installs or upgrades release name in ns of c to vals, keeping historyMax
// revisions, without waiting for readiness. A release whose last revision is
// deployed with the same chart and values is left as it is, so that a retried
// activity adds no revision.
func (a *Activities) apply(ctx context.Context, c *cluster, ns, name string, vals map[string]any, historyMax int, logger log.Logger) (applied, error) {
	ch, err := a.loadChart()
	if err != nil {
		return applied{}, err
	}
	if err := ensureNamespace(ctx, c, ns); err != nil {
		return applied{}, err
	}
	cfg, err := c.ActionConfig(ns, logger)
	if err != nil {
		return applied{}, err
	}
	last, err := helmkit.LastRevision(cfg, name)
	if err != nil {
		return applied{}, fmt.Errorf("reading the history of release %s/%s in cluster %s: %w", ns, name, c.Name, err)
	}
	if last != nil && last.Info.Status == release.StatusDeployed && sameValues(last.Config, vals) && sameChart(last.Chart, ch) {
		return applied{cfg: cfg, rel: last, previous: last}, nil
	}
	if last != nil && last.Info.Status.IsPending() {
		logger.Info("Closing an interrupted Helm operation", "release", name, "revision", last.Version, "status", last.Info.Status)
	}
	rel, err := helmkit.InstallOrUpgrade(ctx, cfg, last, helmkit.Apply{
		Name: name, Namespace: ns, Timeout: helmkit.Within(ctx, a.waits.ReadyTimeout), MaxHistory: historyMax,
		Interrupted: "interrupted; superseded by a retried activity",
	}, ch, vals)
	return applied{cfg: cfg, rel: rel, previous: last, changed: true}, installError(c, ns, name, err)
}

func installError(c *cluster, ns, name string, err error) error {
	if err == nil {
		return nil
	}
	msg := fmt.Sprintf("installing release %s/%s in cluster %s: %v", ns, name, c.Name, err)
	if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || strings.Contains(err.Error(), "values don't meet the specifications") {
		return nonRetryable(contract.ErrPromotionConfig, "%s (the chart or the Kubernetes API refused the values from the configuration registry)", msg)
	}
	return fmt.Errorf("%s", msg)
}

// sameValues compares two sets of values as JSON: a release's stored values come
// back with float64 numbers, conveyor's have ints.
func sameValues(x, y map[string]any) bool {
	bx, err1 := json.Marshal(x)
	by, err2 := json.Marshal(y)
	return err1 == nil && err2 == nil && bytes.Equal(bx, by)
}

// sameChart says whether a release was made with the chart ch (same version and
// templates).
func sameChart(got, ch *chart.Chart) bool {
	if got == nil || got.Metadata == nil || got.Metadata.Version != ch.Metadata.Version || len(got.Templates) != len(ch.Templates) {
		return false
	}
	for i, t := range ch.Templates {
		if got.Templates[i].Name != t.Name || !bytes.Equal(got.Templates[i].Data, t.Data) {
			return false
		}
	}
	return true
}

// imageOf is the image a release's values name, repository@digest.
func imageOf(rel *release.Release) string {
	if rel == nil {
		return ""
	}
	img := asMap(rel.Config["image"])
	repo, _ := img["repository"].(string)
	digest, _ := img["digest"].(string)
	if repo == "" || digest == "" {
		return ""
	}
	return repo + "@" + digest
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	if m == nil {
		return map[string]any{}
	}
	return m
}

// mergeMaps returns base with over merged into it, maps merged key by key; neither
// argument is changed.
func mergeMaps(base, over map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		if bm, ok := out[k].(map[string]any); ok {
			if om, ok := v.(map[string]any); ok {
				out[k] = mergeMaps(bm, om)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// uninstall removes release name from ns of c, orphaning what its objects own
// (the caller deletes that); a release that is not there is fine.
func uninstall(ctx context.Context, c *cluster, ns, name string, timeout time.Duration, logger log.Logger) error {
	cfg, err := c.ActionConfig(ns, logger)
	if err != nil {
		return err
	}
	if err := helmkit.Uninstall(cfg, name, timeout); err != nil {
		return fmt.Errorf("uninstalling release %s/%s in cluster %s: %w", ns, name, c.Name, err)
	}
	return nil
}
