package devstack

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// The cluster's fixed addresses. The node gets an address of the project's own on a
// bridge it creates (the kubelet refuses a loopback node IP).
const (
	nodeName      = "conveyor-node"
	nodeIP        = "10.213.0.1"
	nodeBridge    = "conveyor0"
	podCIDR       = "10.244.0.0/24"
	clusterCIDR   = "10.244.0.0/16"
	serviceCIDR   = "10.96.0.0/16"
	apiServiceIP  = "10.96.0.1"
	apiServerAddr = "127.0.0.1:6443"
	etcdAddr      = "127.0.0.1:2379"
)

// identities are the token-authenticated users of the cluster: name -> user and groups.
type identity struct{ name, user, groups string }

var identities = []identity{
	{"admin", "conveyor-admin", "system:masters"},
	{"controller-manager", "system:kube-controller-manager", "system:masters"},
	{"scheduler", "system:kube-scheduler", ""},
	{"kubelet", "system:node:" + nodeName, "system:nodes"},
	{"proxy", "system:kube-proxy", ""},
}

func (s *stack) kubeconfigPath(who string) string {
	return s.path("kubernetes", who+".kubeconfig")
}

// clusterAuth writes, for the cluster whose state is in dir (CA in dir/pki), the
// token file its API server reads (dir/pki/tokens.csv) and dir/WHO.kubeconfig per
// identity; the tokens are the stack's secrets secretPrefix+WHO.
func (s *stack) clusterAuth(dir, cluster, server, secretPrefix string, ids []identity) error {
	ca, err := os.ReadFile(filepath.Join(dir, "pki", "ca.crt"))
	if err != nil {
		return err
	}
	var tokens strings.Builder
	for _, id := range ids {
		tok := s.secret(secretPrefix + id.name)
		fmt.Fprintf(&tokens, "%s,%s,%s,%q\n", tok, id.user, id.user, id.groups)
		cfg := clientcmdapi.NewConfig()
		cfg.Clusters[cluster] = &clientcmdapi.Cluster{Server: "https://" + server, CertificateAuthorityData: ca}
		cfg.AuthInfos[id.name] = &clientcmdapi.AuthInfo{Token: tok}
		cfg.Contexts[cluster] = &clientcmdapi.Context{Cluster: cluster, AuthInfo: id.name, Namespace: "default"}
		cfg.CurrentContext = cluster
		if err := clientcmd.WriteToFile(*cfg, filepath.Join(dir, id.name+".kubeconfig")); err != nil {
			return err
		}
	}
	return writeFile(filepath.Join(dir, "pki", "tokens.csv"), tokens.String(), 0o600)
}

// A controlPlane is one cluster's etcd, API server, controller manager and
// scheduler. The stack runs two: the real node's (eqiadPlane, below) and codfw's,
// whose nodes kwok simulates (codfw.go).
type controlPlane struct {
	prefix       string   // of the component names: "" or "codfw-"
	dir          string   // state subdirectory: pki/ and the kubeconfigs
	etcdData     []string // state path of etcd's data
	cluster      string   // the kubeconfigs' cluster name and --cluster-name
	caName       string   // the CA's common name
	etcdClient   string   // etcd's client, peer and metrics addresses (host:port)
	etcdPeer     string
	etcdMetrics  string
	bind         string // the API server's --bind-address and --secure-port
	port         string
	server       string // the API server's address in the kubeconfigs (host:port)
	advertise    string
	serviceCIDR  string
	apiServiceIP string // the first address of serviceCIDR: the kubernetes Service
	cmPort       string // the controller manager's and the scheduler's --secure-port
	schedPort    string
	secretPrefix string // of the identities' token secrets
	ids          []identity
}

var eqiadPlane = controlPlane{
	dir: "kubernetes", etcdData: []string{"etcd", "data"}, cluster: "conveyor", caName: "conveyor-dev-ca",
	etcdClient: etcdAddr, etcdPeer: "127.0.0.1:2380", etcdMetrics: "127.0.0.1:2381",
	bind: "0.0.0.0", port: "6443", server: apiServerAddr, advertise: nodeIP,
	serviceCIDR: serviceCIDR, apiServiceIP: apiServiceIP,
	cmPort: "10257", schedPort: "10259", secretPrefix: "token-", ids: identities,
}

func etcdComponent() component              { return eqiadPlane.etcd() }
func apiserverComponent() component         { return eqiadPlane.apiserver() }
func controllerManagerComponent() component { return eqiadPlane.controllerManager() }
func schedulerComponent() component         { return eqiadPlane.scheduler() }

func (cp controlPlane) kubeconfig(s *stack, who string) string {
	return s.path(cp.dir, who+".kubeconfig")
}

func (cp controlPlane) pki(s *stack, f string) string { return s.path(cp.dir, "pki", f) }

func (cp controlPlane) etcd() component {
	return component{
		name:    cp.prefix + "etcd",
		tool:    "etcd",
		process: true,
		address: func(*stack) string { return "http://" + cp.etcdClient },
		timeout: 60 * time.Second,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			if err := os.MkdirAll(filepath.Dir(s.path(cp.etcdData...)), 0o700); err != nil {
				return nil, err
			}
			return &process{Name: cp.prefix + "etcd", Bin: s.tool("etcd", "etcd"), Args: []string{
				"--name", cp.cluster, "--data-dir", s.path(cp.etcdData...),
				"--listen-client-urls", "http://" + cp.etcdClient, "--advertise-client-urls", "http://" + cp.etcdClient,
				"--listen-peer-urls", "http://" + cp.etcdPeer, "--initial-advertise-peer-urls", "http://" + cp.etcdPeer,
				"--initial-cluster", cp.cluster + "=http://" + cp.etcdPeer, "--listen-metrics-urls", "http://" + cp.etcdMetrics,
				"--log-level", "warn", "--quota-backend-bytes", "4294967296",
			}}, nil
		},
		ready: func(ctx context.Context, s *stack) error {
			return httpOK(ctx, nil, "http://"+cp.etcdMetrics+"/health")
		},
	}
}

func (cp controlPlane) apiserver() component {
	return component{
		name:    cp.prefix + "kube-apiserver",
		tool:    "kubernetes",
		process: true,
		address: func(*stack) string { return "https://" + cp.server },
		timeout: 2 * time.Minute,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(cp.advertise), net.ParseIP(cp.apiServiceIP)}
			if err := s.clusterPKI(s.path(cp.dir, "pki"), cp.caName, ips); err != nil {
				return nil, err
			}
			if err := s.clusterAuth(s.path(cp.dir), cp.cluster, cp.server, cp.secretPrefix, cp.ids); err != nil {
				return nil, err
			}
			pki := func(f string) string { return cp.pki(s, f) }
			return &process{Name: cp.prefix + "kube-apiserver", Bin: s.tool("kubernetes", "kube-apiserver"), Args: []string{
				"--etcd-servers", "http://" + cp.etcdClient,
				"--bind-address", cp.bind, "--secure-port", cp.port, "--advertise-address", cp.advertise,
				"--service-cluster-ip-range", cp.serviceCIDR,
				"--tls-cert-file", pki("apiserver.crt"), "--tls-private-key-file", pki("apiserver.key"),
				"--client-ca-file", pki("ca.crt"),
				"--token-auth-file", pki("tokens.csv"),
				"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
				"--service-account-key-file", pki("sa.pub"), "--service-account-signing-key-file", pki("sa.key"),
				"--authorization-mode", "Node,RBAC",
				"--allow-privileged=true",
				"--kubelet-preferred-address-types", "InternalIP",
				"--profiling=false",
			}}, nil
		},
		ready: func(ctx context.Context, s *stack) error {
			c, err := s.clusterHTTP(cp.pki(s, "ca.crt"), cp.secretPrefix+"admin")
			if err != nil {
				return err
			}
			return httpOK(ctx, c, "https://"+cp.server+"/readyz")
		},
	}
}

func (cp controlPlane) controllerManager() component {
	return component{
		name:    cp.prefix + "kube-controller-manager",
		tool:    "kubernetes",
		process: true,
		address: func(*stack) string { return "https://127.0.0.1:" + cp.cmPort },
		timeout: time.Minute,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			kc := cp.kubeconfig(s, "controller-manager")
			return &process{Name: cp.prefix + "kube-controller-manager", Bin: s.tool("kubernetes", "kube-controller-manager"), Args: []string{
				"--kubeconfig", kc, "--authentication-kubeconfig", kc, "--authorization-kubeconfig", kc,
				"--service-account-private-key-file", cp.pki(s, "sa.key"),
				"--root-ca-file", cp.pki(s, "ca.crt"),
				"--leader-elect=false", "--bind-address", "127.0.0.1", "--secure-port", cp.cmPort,
				"--cluster-name", cp.cluster, "--profiling=false",
			}}, nil
		},
		ready: func(ctx context.Context, s *stack) error {
			return insecureHealthz(ctx, "https://127.0.0.1:"+cp.cmPort+"/healthz")
		},
	}
}

func (cp controlPlane) scheduler() component {
	return component{
		name:    cp.prefix + "kube-scheduler",
		tool:    "kubernetes",
		process: true,
		address: func(*stack) string { return "https://127.0.0.1:" + cp.schedPort },
		timeout: time.Minute,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			kc := cp.kubeconfig(s, "scheduler")
			return &process{Name: cp.prefix + "kube-scheduler", Bin: s.tool("kubernetes", "kube-scheduler"), Args: []string{
				"--kubeconfig", kc, "--authentication-kubeconfig", kc, "--authorization-kubeconfig", kc,
				"--leader-elect=false", "--bind-address", "127.0.0.1", "--secure-port", cp.schedPort, "--profiling=false",
			}}, nil
		},
		ready: func(ctx context.Context, s *stack) error {
			return insecureHealthz(ctx, "https://127.0.0.1:"+cp.schedPort+"/healthz")
		},
	}
}

// clusterComponent waits until the node is Ready without taints and pods can be
// admitted (the default service account exists).
func clusterComponent() component {
	return component{
		name:    "cluster",
		address: func(*stack) string { return "node " + nodeName + " " + nodeIP },
		timeout: 3 * time.Minute,
		prepare: func(context.Context, *stack) (*process, error) { return nil, nil },
		ready: func(ctx context.Context, s *stack) error {
			cs, err := s.kubeClient()
			if err != nil {
				return err
			}
			n, err := cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("node %s: %w", nodeName, err)
			}
			ready := false
			for _, c := range n.Status.Conditions {
				if c.Type == "Ready" {
					ready = c.Status == "True"
					if !ready {
						return fmt.Errorf("node %s not ready: %s", nodeName, c.Message)
					}
				}
			}
			if !ready {
				return fmt.Errorf("node %s has no Ready condition yet", nodeName)
			}
			for _, t := range n.Spec.Taints {
				return fmt.Errorf("node %s still has taint %s", nodeName, t.Key)
			}
			if _, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
				return fmt.Errorf("default service account: %w", err)
			}
			return nil
		},
	}
}

func (s *stack) kubeClient() (*kubernetes.Clientset, error) {
	return kubeClientFor(s.kubeconfigPath("admin"))
}

func kubeClientFor(kubeconfig string) (*kubernetes.Clientset, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	rc.Timeout = 10 * time.Second
	return kubernetes.NewForConfig(rc)
}

// clusterHTTP is an HTTP client that trusts the CA in caFile and sends the token
// kept as the stack's secret tokenSecret.
func (s *stack) clusterHTTP(caFile, tokenSecret string) (*http.Client, error) {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, errors.New("cluster CA is not PEM")
	}
	tok := s.secret(tokenSecret)
	return &http.Client{Transport: bearer{tok, &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}, nil
}

type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// insecureHealthz checks a component's self-signed local healthz endpoint.
func insecureHealthz(ctx context.Context, url string) error {
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	return httpOK(ctx, c, url)
}
