// Package helmkit is what the activities that deploy with Helm share (activities/helm
// for the pipeline's candidates, activities/promote for the staged promotion): one
// cluster's clients read once from a kubeconfig, Helm action configurations built on
// them, installing or upgrading a release that an earlier attempt may have left
// half-done, explaining pods that are not ready, and the activity helpers their long
// waits use (the heartbeat detail Progress, a timeout that ends before the
// activity's own; the heartbeats themselves are package heartbeat's).
//
// It holds no Temporal activity itself; the activity packages keep their names,
// inputs, outputs and error types.
package helmkit

import (
	"fmt"
	"io"

	"go.temporal.io/sdk/log"
	"helm.sh/helm/v3/pkg/action"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Cluster is one cluster's clients, built once: the kubeconfig, an in-memory
// discovery cache and REST mapper shared by every Helm action (so that none writes a
// discovery cache to ~/.kube/cache or reads the kubeconfig again), and a typed client.
type Cluster struct {
	// Name names the cluster in messages and Helm's debug log; "" for a worker's
	// only cluster, which messages then do not name.
	Name string
	// Kube is the typed client.
	Kube kubernetes.Interface
	// Discovery is the shared in-memory discovery cache.
	Discovery discovery.CachedDiscoveryInterface

	raw    clientcmdapi.Config
	rest   *rest.Config
	mapper meta.RESTMapper
}

// NewCluster reads the kubeconfig at path and builds the cluster's clients; an empty
// path follows kubectl's rules ($KUBECONFIG, then ~/.kube/config). It does not
// contact the cluster. name is the Cluster's Name.
func NewCluster(name, path string) (*Cluster, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	raw, err := loader.RawConfig()
	if err != nil {
		return nil, fmt.Errorf("reading kubeconfig %q: %w", path, err)
	}
	rc, err := loader.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("reading kubeconfig %q: %w", path, err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("building a discovery client from kubeconfig %q: %w", path, err)
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("building a Kubernetes client from kubeconfig %q: %w", path, err)
	}
	cached := memory.NewMemCacheClient(dc)
	mapper := restmapper.NewShortcutExpander(restmapper.NewDeferredDiscoveryRESTMapper(cached), cached, nil)
	return &Cluster{Name: name, Kube: kube, Discovery: cached, raw: raw, rest: rc, mapper: mapper}, nil
}

// namespaced is the cluster seen from one namespace: Helm's kube client takes the
// namespace of the objects it builds from ToRawKubeConfigLoader.
type namespaced struct {
	*Cluster
	namespace string
}

var _ genericclioptions.RESTClientGetter = namespaced{}

// ToRESTConfig returns a copy: kubectl's factory adjusts the configs it is given.
func (n namespaced) ToRESTConfig() (*rest.Config, error) { return rest.CopyConfig(n.rest), nil }

// ToDiscoveryClient returns the shared in-memory discovery cache.
func (n namespaced) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	return n.Discovery, nil
}

// ToRESTMapper returns the shared REST mapper.
func (n namespaced) ToRESTMapper() (meta.RESTMapper, error) { return n.mapper, nil }

// ToRawKubeConfigLoader returns the kubeconfig with the namespace overridden.
func (n namespaced) ToRawKubeConfigLoader() clientcmd.ClientConfig {
	return clientcmd.NewDefaultClientConfig(n.raw, &clientcmd.ConfigOverrides{Context: clientcmdapi.Context{Namespace: n.namespace}})
}

// ActionConfig is a Helm action configuration for releases in namespace, stored as
// Secrets (Helm's default driver). Helm's debug lines go to logger at debug level,
// with the cluster's name when it has one; hook output is discarded.
func (c *Cluster) ActionConfig(namespace string, logger log.Logger) (*action.Configuration, error) {
	cfg := new(action.Configuration)
	keys := []any{"component", "helm"}
	where := namespace
	if c.Name != "" {
		keys = append(keys, "cluster", c.Name)
		where += " of cluster " + c.Name
	}
	debug := func(format string, v ...any) { logger.Debug(fmt.Sprintf(format, v...), keys...) }
	if err := cfg.Init(namespaced{Cluster: c, namespace: namespace}, namespace, "secret", debug); err != nil {
		return nil, fmt.Errorf("configuring Helm for namespace %s: %w", where, err)
	}
	cfg.SetHookOutputFunc(func(_, _, _ string) io.Writer { return io.Discard })
	return cfg, nil
}
