package helm

import (
	"fmt"
	"io"

	"go.temporal.io/sdk/log"
	"helm.sh/helm/v3/pkg/action"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// cluster is what every namespace's Helm configuration shares: the kubeconfig, read
// once, and one in-memory discovery cache and REST mapper, so that no action writes
// a discovery cache to disk (~/.kube/cache) or reads the kubeconfig again.
type cluster struct {
	raw       clientcmdapi.Config
	rest      *rest.Config
	discovery discovery.CachedDiscoveryInterface
	mapper    meta.RESTMapper
}

// newCluster reads the kubeconfig at path; an empty path follows kubectl's rules
// ($KUBECONFIG, then ~/.kube/config).
func newCluster(path string) (*cluster, error) {
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
	cached := memory.NewMemCacheClient(dc)
	mapper := restmapper.NewShortcutExpander(restmapper.NewDeferredDiscoveryRESTMapper(cached), cached, nil)
	return &cluster{raw: raw, rest: rc, discovery: cached, mapper: mapper}, nil
}

// namespaced is the cluster seen from one namespace: Helm's kube client takes the
// namespace of the objects it builds from ToRawKubeConfigLoader.
type namespaced struct {
	*cluster
	namespace string
}

var _ genericclioptions.RESTClientGetter = namespaced{}

// ToRESTConfig returns a copy: kubectl's factory adjusts the configs it is given.
func (n namespaced) ToRESTConfig() (*rest.Config, error) { return rest.CopyConfig(n.rest), nil }

// ToDiscoveryClient returns the shared in-memory discovery cache.
func (n namespaced) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	return n.discovery, nil
}

// ToRESTMapper returns the shared REST mapper.
func (n namespaced) ToRESTMapper() (meta.RESTMapper, error) { return n.mapper, nil }

// ToRawKubeConfigLoader returns the kubeconfig with the namespace overridden.
func (n namespaced) ToRawKubeConfigLoader() clientcmd.ClientConfig {
	return clientcmd.NewDefaultClientConfig(n.raw, &clientcmd.ConfigOverrides{Context: clientcmdapi.Context{Namespace: n.namespace}})
}

// actionConfig is a Helm action configuration for releases in namespace, stored as
// Secrets (Helm's default driver). Helm's debug lines go to log at debug level.
func (c *cluster) actionConfig(namespace string, log log.Logger) (*action.Configuration, error) {
	cfg := new(action.Configuration)
	debug := func(format string, v ...any) { log.Debug(fmt.Sprintf(format, v...), "component", "helm") }
	if err := cfg.Init(namespaced{cluster: c, namespace: namespace}, namespace, "secret", debug); err != nil {
		return nil, fmt.Errorf("configuring Helm for namespace %s: %w", namespace, err)
	}
	cfg.SetHookOutputFunc(func(_, _, _ string) io.Writer { return io.Discard })
	return cfg, nil
}
