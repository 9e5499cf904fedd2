// Package helm holds the deploy pool's activities of the change pipeline: install a
// candidate image with the Helm v3 SDK into a namespace of its own and wait until it
// is ready, run the release's `helm test` hooks, smoke-test its Service from the worker
// host, and tear it all down again.
//
// Every activity is idempotent. DeployCandidate upgrades the release that an earlier
// attempt installed instead of failing; Teardown of a release or namespace that is
// already gone succeeds.
package helm

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"helm.sh/helm/v3/pkg/chart/loader"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"

	"github.com/wikimedia/conveyor/activities/internal/helmkit"
	"github.com/wikimedia/conveyor/charts"
	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/internal/lib/e2e"
)

// Activities are the deploy pool's activities. The worker builds one with New and
// registers it as a pointer; its exported methods are the activities, named as in
// activities/contract, so it has no other exported methods.
type Activities struct {
	chartDir string
	stateDir string
	cluster  *helmkit.Cluster
	kube     kubernetes.Interface
	// mapper says which kinds the cluster serves and their scope, for the checks
	// of an unreviewed chart.
	mapper      meta.RESTMapper
	waits       helmkit.Waits
	testTimeout time.Duration
	goneTimeout time.Duration
	e2eOpts     []e2e.Option
	e2e         *e2e.Runner
	// releaseRole is kubernetes.releaseClusterRole: bound in each namespace
	// DeployCandidate creates (ensureReleaseBinding).
	releaseRole string
}

// Option configures Activities.
type Option func(*Activities) error

// WithDefaultChart sets the chart directory that deploys use when the repository's
// settings name no chart: conveyor's charts/service. The default is the scaffold
// chart embedded in this binary (package charts), written under the state directory.
// The directory must hold a chart that loads.
func WithDefaultChart(dir string) Option {
	return func(a *Activities) error {
		if _, err := loader.LoadDir(dir); err != nil {
			return fmt.Errorf("default chart %s: %w", dir, err)
		}
		a.chartDir = dir
		return nil
	}
}

// WithReadyTimeout bounds DeployCandidate's wait for the release to become ready; the
// default is 5 minutes. The activity's own deadline, if earlier, wins.
func WithReadyTimeout(d time.Duration) Option {
	return func(a *Activities) error { return a.waits.SetReadyTimeout(d) }
}

// WithTestTimeout bounds HelmTest's wait for each test hook; the default is 5 minutes.
func WithTestTimeout(d time.Duration) Option {
	return func(a *Activities) error {
		if err := helmkit.Positive("test timeout", d); err != nil {
			return err
		}
		a.testTimeout = d
		return nil
	}
}

// WithCrashLoopLimit sets how many restarts of a crash-looping container
// DeployCandidate waits for before it gives up for good
// (contract.ErrCandidateNotReady); the default is 3.
func WithCrashLoopLimit(n int) Option {
	return func(a *Activities) error { return a.waits.SetCrashLoopLimit(n) }
}

// WithPollInterval sets how often the waits look at the cluster; the default is 500ms.
func WithPollInterval(d time.Duration) Option {
	return func(a *Activities) error { return a.waits.SetPollInterval(d) }
}

// WithE2EOptions configures RunE2E's checks (retry window, request timeout); the
// defaults are e2e.New's.
func WithE2EOptions(opts ...e2e.Option) Option {
	return func(a *Activities) error {
		a.e2eOpts = append(a.e2eOpts, opts...)
		return nil
	}
}

// New builds the deploy activities' clients from cfg.Kubernetes.Kubeconfig (empty:
// $KUBECONFIG or ~/.kube/config). Repositories' own charts are fetched into
// workspaces under cfg.StateDir. It does not contact the cluster.
func New(cfg config.Config, opts ...Option) (*Activities, error) {
	if cfg.StateDir == "" {
		return nil, errNoStateDir
	}
	a := &Activities{
		stateDir:    cfg.StateDir,
		waits:       helmkit.Waits{ReadyTimeout: 5 * time.Minute, Poll: 500 * time.Millisecond, CrashLimit: 3},
		testTimeout: 5 * time.Minute,
		goneTimeout: 5 * time.Minute,
		releaseRole: cfg.Kubernetes.ReleaseClusterRole,
	}
	for _, o := range opts {
		if err := o(a); err != nil {
			return nil, err
		}
	}
	if a.chartDir == "" {
		// The scaffold chart this binary was built with, written out once.
		dir, err := charts.ExtractService(filepath.Join(cfg.StateDir, "charts"))
		if err != nil {
			return nil, err
		}
		a.chartDir = dir
	}
	var err error
	if a.e2e, err = e2e.New(a.e2eOpts...); err != nil {
		return nil, fmt.Errorf("configuring the e2e checks: %w", err)
	}
	if a.cluster, err = helmkit.NewCluster("", cfg.Kubernetes.Kubeconfig); err != nil {
		return nil, fmt.Errorf("kubernetes.kubeconfig: %w", err)
	}
	a.kube = a.cluster.Kube
	a.mapper = restmapper.NewDeferredDiscoveryRESTMapper(a.cluster.Discovery)
	return a, nil
}

// Progress is the heartbeat detail of the long activities: what they wait for.
type Progress = helmkit.Progress

// errNoStateDir refuses a configuration without a state directory: the chart and the
// workspaces would otherwise be written under the working directory, which may be a
// source tree.
var errNoStateDir = errors.New("stateDir is empty: set stateDir in the configuration file (or CONVEYOR_STATE_DIR) to the directory that holds the workspaces and charts")
