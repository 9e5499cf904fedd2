package promote

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

	"github.com/wikimedia/conveyor/internal/config"
)

// cluster is one cluster's clients, built once: the kubeconfig, an in-memory
// discovery cache and REST mapper shared by every Helm action (so none writes a
// cache to ~/.kube), and a typed client.
type cluster struct {
	name      string
	simulated bool
	raw       clientcmdapi.Config
	rest      *rest.Config
	discovery discovery.CachedDiscoveryInterface
	mapper    meta.RESTMapper
	kube      kubernetes.Interface
}

func newCluster(c config.Cluster) (*cluster, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = c.Kubeconfig
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	raw, err := loader.RawConfig()
	if err != nil {
		return nil, fmt.Errorf("reading kubeconfig %q: %w", c.Kubeconfig, err)
	}
	rc, err := loader.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("reading kubeconfig %q: %w", c.Kubeconfig, err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("building a discovery client from kubeconfig %q: %w", c.Kubeconfig, err)
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("building a Kubernetes client from kubeconfig %q: %w", c.Kubeconfig, err)
	}
	cached := memory.NewMemCacheClient(dc)
	mapper := restmapper.NewShortcutExpander(restmapper.NewDeferredDiscoveryRESTMapper(cached), cached, nil)
	return &cluster{name: c.Name, simulated: c.Simulated, raw: raw, rest: rc, discovery: cached, mapper: mapper, kube: kube}, nil
}

// namespaced is the cluster seen from one namespace, as Helm's kube client wants it.
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
// Secrets (Helm's default driver).
func (c *cluster) actionConfig(namespace string, log log.Logger) (*action.Configuration, error) {
	cfg := new(action.Configuration)
	debug := func(format string, v ...any) {
		log.Debug(fmt.Sprintf(format, v...), "component", "helm", "cluster", c.name)
	}
	if err := cfg.Init(namespaced{cluster: c, namespace: namespace}, namespace, "secret", debug); err != nil {
		return nil, fmt.Errorf("configuring Helm for namespace %s of cluster %s: %w", namespace, c.name, err)
	}
	cfg.SetHookOutputFunc(func(_, _, _ string) io.Writer { return io.Discard })
	return cfg, nil
}
