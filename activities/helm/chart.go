package helm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"go.temporal.io/sdk/temporal"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/internal/lib/repofile"
	"github.com/wikimedia/conveyor/internal/lib/workspace"
)

// loadChart loads the chart a deploy uses, fresh every time: Helm's install keeps
// and may change the chart it is given. An empty path is the default chart; any other
// is a chart directory in src's checkout, fetched on this worker if needed. It says
// whether the chart is the default one, whose values conveyor knows.
func (a *Activities) loadChart(ctx context.Context, path string, src contract.Source) (*chart.Chart, bool, error) {
	if path == "" {
		ch, err := loader.LoadDir(a.chartDir)
		if err != nil {
			// The default chart is the worker's: a broken one is the operator's to fix.
			return nil, true, fmt.Errorf("loading the default chart %s: %w", a.chartDir, err)
		}
		return ch, true, nil
	}
	field := fmt.Sprintf("chart.path %q in .pipeline/config.yaml", path)
	rel := filepath.FromSlash(path)
	if !filepath.IsLocal(rel) {
		return nil, false, temporal.NewNonRetryableApplicationError(
			field+": must be a relative path inside the repository, without ..", contract.ErrInvalidConfig, nil)
	}
	root, err := workspace.EnsureCommit(ctx, a.stateDir, workspace.Source(src))
	switch {
	case errors.Is(err, workspace.ErrNotFound) || errors.Is(err, workspace.ErrInvalidRef):
		return nil, false, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("fetching the chart of %s at %s: %v", src.Repo, src.Commit, err), contract.ErrSource, err)
	case err != nil:
		return nil, false, fmt.Errorf("fetching the chart of %s at %s: %w", src.Repo, src.Commit, err)
	}
	dir := filepath.Join(root, rel)
	if err := staysInside(root, dir); err != nil {
		return nil, false, temporal.NewNonRetryableApplicationError(field+": "+err.Error(), contract.ErrChart, err)
	}
	if err := repofile.CheckTree(dir, path, repofile.ChartFile, repofile.ChartTotal); err != nil {
		return nil, false, temporal.NewNonRetryableApplicationError(field+": "+err.Error(), contract.ErrChart, err)
	}
	ch, err := loader.LoadDir(dir)
	if err != nil {
		return nil, false, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("%s: not a chart that Helm can load (it must hold Chart.yaml): %v", field, err), contract.ErrChart, err)
	}
	return ch, false, nil
}

// staysInside checks that dir and every symbolic link under it resolve inside root:
// Helm's loader follows links, and a chart must not read the worker's files.
func staysInside(root, dir string) error {
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	inside := func(p string) bool {
		r, err := filepath.Rel(realRoot, p)
		return err == nil && filepath.IsLocal(r)
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("no such directory in the repository")
	}
	if !inside(realDir) && realDir != realRoot {
		return fmt.Errorf("leads outside the repository")
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		target, err := filepath.EvalSymlinks(p)
		if err != nil || !inside(target) {
			rel, _ := filepath.Rel(root, p)
			return fmt.Errorf("%s is a symbolic link that leads outside the repository or nowhere", filepath.ToSlash(rel))
		}
		return nil
	})
}

// candidateValues is the repository's values with conveyor's own on top: the
// candidate image by digest and, for the default chart, appName, the release name, so
// that the Service is named after the release. values is not changed.
func candidateValues(values map[string]any, name, repo, digest string, defaultChart bool) map[string]any {
	vals := deepCopy(values)
	img, _ := vals["image"].(map[string]any)
	if img == nil {
		img = map[string]any{}
	}
	img["repository"] = repo
	img["digest"] = digest
	vals["image"] = img
	if defaultChart {
		vals["appName"] = name
	}
	return vals
}

func deepCopy(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = deepCopyValue(v)
	}
	return out
}

func deepCopyValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return deepCopy(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = deepCopyValue(e)
		}
		return out
	default:
		return v
	}
}

// checkRenders validates the values against the chart's schema and renders it, so that
// a chart problem is reported as such (non-retryable) before anything is installed.
func (a *Activities) checkRenders(ch *chart.Chart, vals map[string]any, r contract.Release, settings contract.Settings) error {
	caps, err := a.capabilities()
	if err != nil {
		return err
	}
	which := fmt.Sprintf("chart %s", ch.Name())
	if settings.Chart != "" {
		which += fmt.Sprintf(" (chart.path %q)", settings.Chart)
	}
	if kv := ch.Metadata.KubeVersion; kv != "" && !chartutil.IsCompatibleRange(kv, caps.KubeVersion.String()) {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("%s requires Kubernetes %s (kubeVersion in Chart.yaml); the cluster runs %s", which, kv, caps.KubeVersion.String()),
			contract.ErrChart, nil)
	}
	ours := "image.repository and image.digest"
	if settings.Chart == "" {
		ours = "appName, " + ours
	}
	opts := chartutil.ReleaseOptions{Name: r.Name, Namespace: r.Namespace, Revision: 1, IsInstall: true}
	rv, err := chartutil.ToRenderValuesWithSchemaValidation(ch, vals, opts, caps, false)
	if err != nil {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("chart.values in .pipeline/config.yaml (with conveyor's %s) do not fit %s: %s", ours, which, strings.TrimSpace(err.Error())),
			contract.ErrChart, err)
	}
	if _, err := engine.Render(ch, rv); err != nil {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("%s does not render with chart.values from .pipeline/config.yaml: %v", which, err),
			contract.ErrChart, err)
	}
	return nil
}

// capabilities describes the cluster to templates, as Helm's install does.
func (a *Activities) capabilities() (*chartutil.Capabilities, error) {
	v, err := a.cluster.Discovery.ServerVersion()
	if err != nil {
		return nil, fmt.Errorf("reading the Kubernetes version: %w", err)
	}
	apis, err := action.GetVersionSet(a.cluster.Discovery)
	if err != nil {
		return nil, fmt.Errorf("reading the Kubernetes API versions: %w", err)
	}
	return &chartutil.Capabilities{
		KubeVersion: chartutil.KubeVersion{Version: v.GitVersion, Major: v.Major, Minor: v.Minor},
		APIVersions: apis,
		HelmVersion: chartutil.DefaultCapabilities.HelmVersion,
	}, nil
}
