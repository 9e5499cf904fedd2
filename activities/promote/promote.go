// Package promote holds the staged promotion's activities (promotions.Promotion): it
// reads a service's promotion plan and Helm values from the configuration registry (a
// git repository), deploys the stable release with Helm in one cluster, runs a
// canary Deployment of the new image beside it behind the same Service, analyses the
// canary under generated traffic, removes it, and notifies the approvers.
//
// Each production cluster is one entry of the worker's promotion.clusters. The
// stable release of service S is the Helm release S (Deployment S-stable and the
// Service S, charts/service with track stable); its canary is the Helm release
// S-canary (Deployment S-canary, track canary, no Service of its own), whose pods the
// Service S selects as well. Traffic is shared by replica ratio.
//
// Every activity is idempotent: each one reads the cluster's state and changes only
// what differs from what it was asked for.
package promote

import (
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/wikimedia/conveyor/activities/internal/registryclient"

	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/helmkit"
	"github.com/wikimedia/conveyor/charts"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// Activities are the promotion's activities. The worker builds one with New and
// registers it as a pointer; its exported methods are the activities named in
// activities/contract.
type Activities struct {
	clusters   map[string]*cluster
	order      []string
	chartDir   string
	stateDir   string
	configRepo string
	protected  string
	// registry is where the pipeline publishes: a promoted image must be there.
	registry *registryclient.Client
	waits    helmkit.Waits
	http     *http.Client
	// fallback says the clusters came from kubernetes.kubeconfig, not from
	// promotion.clusters.
	fallback bool
}

// Option configures Activities.
type Option func(*Activities) error

// WithReadyTimeout bounds each wait for pods to become ready; the default is 5
// minutes. The activity's own deadline, if earlier, wins.
func WithReadyTimeout(d time.Duration) Option {
	return func(a *Activities) error { return a.waits.SetReadyTimeout(d) }
}

// WithPollInterval sets how often the waits look at the cluster; the default is
// 250ms.
func WithPollInterval(d time.Duration) Option {
	return func(a *Activities) error { return a.waits.SetPollInterval(d) }
}

// WithCrashLoopLimit sets how many restarts of a crash-looping container the
// waits for pods accept before they give up for good (contract.ErrReleaseNotReady);
// the default is 3.
func WithCrashLoopLimit(n int) Option {
	return func(a *Activities) error { return a.waits.SetCrashLoopLimit(n) }
}

// New builds a client per cluster of cfg.Promotion.Clusters. When that list is
// empty, cfg.Kubernetes.Kubeconfig is the only cluster, named "eqiad" (a stack
// without a second cluster). It reads the kubeconfigs but does not contact the
// clusters; the configuration registry is cfg.Promotion.ConfigRepo.
func New(cfg config.Config, opts ...Option) (*Activities, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("stateDir is empty: set stateDir in the configuration file (or CONVEYOR_STATE_DIR) to the directory that holds the charts and the configuration registry's checkouts")
	}
	a := &Activities{
		clusters:   map[string]*cluster{},
		stateDir:   cfg.StateDir,
		configRepo: cfg.Promotion.ConfigRepo,
		protected:  cfg.Promotion.ProtectedBranch,
		waits:      helmkit.Waits{ReadyTimeout: 5 * time.Minute, Poll: 250 * time.Millisecond, CrashLimit: 3},
		// One fresh connection a request: the analysis measures what a new
		// client sees, and a pod that stopped answering is not hidden by a
		// pooled connection.
		http: &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}},
	}
	reg, err := registryclient.New(cfg.Registry)
	if err != nil {
		return nil, err
	}
	a.registry = reg
	for _, o := range opts {
		if err := o(a); err != nil {
			return nil, err
		}
	}
	clusters := cfg.Promotion.Clusters
	if len(clusters) == 0 && cfg.Kubernetes.Kubeconfig != "" {
		clusters = []config.Cluster{{Name: "eqiad", Kubeconfig: cfg.Kubernetes.Kubeconfig}}
		a.fallback = true
	}
	for i, c := range clusters {
		if c.Name == "" {
			return nil, fmt.Errorf("promotion.clusters[%d].name is empty: name each cluster as the plans do (eqiad, codfw)", i)
		}
		if _, dup := a.clusters[c.Name]; dup {
			return nil, fmt.Errorf("promotion.clusters[%d].name: %q is listed twice", i, c.Name)
		}
		cl, err := newCluster(c)
		if err != nil {
			return nil, fmt.Errorf("promotion.clusters[%d] (%s): %w", i, c.Name, err)
		}
		a.clusters[c.Name] = cl
		a.order = append(a.order, c.Name)
	}
	dir, err := charts.ExtractService(filepath.Join(cfg.StateDir, "charts"))
	if err != nil {
		return nil, err
	}
	a.chartDir = dir
	return a, nil
}

// clusterNames lists the clusters the activities reach, in configuration
// order, for messages.
func (a *Activities) clusterNames() string {
	if len(a.order) == 0 {
		return "none"
	}
	return strings.Join(a.order, ", ")
}

// clusterFor returns the cluster a release runs in; an unknown name is a
// configuration error that retrying cannot fix.
func (a *Activities) clusterFor(r contract.ServiceRelease) (*cluster, error) {
	c, ok := a.clusters[r.Cluster]
	if !ok {
		return nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("cluster %q is not one of this worker's clusters (%s): add it to promotion.clusters in the worker's configuration or fix the plan",
				r.Cluster, a.clusterNames()), contract.ErrPromotionConfig, nil)
	}
	return c, nil
}

// simulated says whether r's cluster has simulated nodes: the input may say so, and
// the worker's configuration does.
func (a *Activities) simulated(r contract.ServiceRelease, c *cluster) bool {
	return r.Simulated || c.simulated
}

// Progress is the heartbeat detail of the long activities: what they wait for.
type Progress = helmkit.Progress

// names of a service's objects in each cluster.
func stableRelease(service string) string    { return service }
func canaryRelease(service string) string    { return service + "-canary" }
func stableDeployment(service string) string { return service + "-stable" }
func canaryDeployment(service string) string { return service + "-canary" }

// trackSelector selects the serving pods of one track of a service.
func trackSelector(service, track string) string {
	release := stableRelease(service)
	if track == "canary" {
		release = canaryRelease(service)
	}
	return strings.Join([]string{
		"app.kubernetes.io/name=" + service,
		"app.kubernetes.io/instance=" + release,
		"track=" + track,
	}, ",")
}

// nonRetryable wraps a failure that retrying cannot fix.
func nonRetryable(kind, format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), kind, nil)
}

// sortedKeys returns m's keys in order, for messages that must not vary.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
