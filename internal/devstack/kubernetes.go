package devstack

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
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
var identities = []struct{ name, user, groups string }{
	{"admin", "conveyor-admin", "system:masters"},
	{"controller-manager", "system:kube-controller-manager", "system:masters"},
	{"scheduler", "system:kube-scheduler", ""},
	{"kubelet", "system:node:" + nodeName, "system:nodes"},
	{"proxy", "system:kube-proxy", ""},
}

func (s *stack) kubeconfigPath(who string) string {
	return s.path("kubernetes", who+".kubeconfig")
}

// kubeAuth writes the token file the API server reads and a kubeconfig per identity.
func (s *stack) kubeAuth() error {
	ca, err := os.ReadFile(s.path("kubernetes", "pki", "ca.crt"))
	if err != nil {
		return err
	}
	var tokens strings.Builder
	for _, id := range identities {
		tok := s.secret("token-" + id.name)
		fmt.Fprintf(&tokens, "%s,%s,%s,%q\n", tok, id.user, id.user, id.groups)
		cfg := clientcmdapi.NewConfig()
		cfg.Clusters["conveyor"] = &clientcmdapi.Cluster{Server: "https://" + apiServerAddr, CertificateAuthorityData: ca}
		cfg.AuthInfos[id.name] = &clientcmdapi.AuthInfo{Token: tok}
		cfg.Contexts["conveyor"] = &clientcmdapi.Context{Cluster: "conveyor", AuthInfo: id.name, Namespace: "default"}
		cfg.CurrentContext = "conveyor"
		if err := clientcmd.WriteToFile(*cfg, s.kubeconfigPath(id.name)); err != nil {
			return err
		}
	}
	return writeFile(s.path("kubernetes", "pki", "tokens.csv"), tokens.String(), 0o600)
}

func etcdComponent() component {
	return component{
		name:    "etcd",
		tool:    "etcd",
		process: true,
		address: func(*stack) string { return "http://" + etcdAddr },
		timeout: 60 * time.Second,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			if err := os.MkdirAll(s.path("etcd"), 0o700); err != nil {
				return nil, err
			}
			return &process{name: "etcd", bin: s.tool("etcd", "etcd"), args: []string{
				"--name", "conveyor", "--data-dir", s.path("etcd", "data"),
				"--listen-client-urls", "http://" + etcdAddr, "--advertise-client-urls", "http://" + etcdAddr,
				"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
				"--initial-cluster", "conveyor=http://127.0.0.1:2380", "--listen-metrics-urls", "http://127.0.0.1:2381",
				"--log-level", "warn", "--quota-backend-bytes", "4294967296",
			}}, nil
		},
		ready: func(ctx context.Context, s *stack) error {
			return httpOK(ctx, nil, "http://127.0.0.1:2381/health")
		},
	}
}

func apiserverComponent() component {
	return component{
		name:    "kube-apiserver",
		tool:    "kubernetes",
		process: true,
		address: func(*stack) string { return "https://" + apiServerAddr },
		timeout: 2 * time.Minute,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			if err := s.pki(); err != nil {
				return nil, err
			}
			if err := s.kubeAuth(); err != nil {
				return nil, err
			}
			pki := func(f string) string { return s.path("kubernetes", "pki", f) }
			return &process{name: "kube-apiserver", bin: s.tool("kubernetes", "kube-apiserver"), args: []string{
				"--etcd-servers", "http://" + etcdAddr,
				"--bind-address", "0.0.0.0", "--secure-port", "6443", "--advertise-address", nodeIP,
				"--service-cluster-ip-range", serviceCIDR,
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
			c, err := s.adminHTTP()
			if err != nil {
				return err
			}
			return httpOK(ctx, c, "https://"+apiServerAddr+"/readyz")
		},
	}
}

func controllerManagerComponent() component {
	return component{
		name:    "kube-controller-manager",
		tool:    "kubernetes",
		process: true,
		address: func(*stack) string { return "https://127.0.0.1:10257" },
		timeout: time.Minute,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			kc := s.kubeconfigPath("controller-manager")
			return &process{name: "kube-controller-manager", bin: s.tool("kubernetes", "kube-controller-manager"), args: []string{
				"--kubeconfig", kc, "--authentication-kubeconfig", kc, "--authorization-kubeconfig", kc,
				"--service-account-private-key-file", s.path("kubernetes", "pki", "sa.key"),
				"--root-ca-file", s.path("kubernetes", "pki", "ca.crt"),
				"--leader-elect=false", "--bind-address", "127.0.0.1",
				"--cluster-name", "conveyor", "--profiling=false",
			}}, nil
		},
		ready: func(ctx context.Context, s *stack) error {
			return insecureHealthz(ctx, "https://127.0.0.1:10257/healthz")
		},
	}
}

func schedulerComponent() component {
	return component{
		name:    "kube-scheduler",
		tool:    "kubernetes",
		process: true,
		address: func(*stack) string { return "https://127.0.0.1:10259" },
		timeout: time.Minute,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			kc := s.kubeconfigPath("scheduler")
			return &process{name: "kube-scheduler", bin: s.tool("kubernetes", "kube-scheduler"), args: []string{
				"--kubeconfig", kc, "--authentication-kubeconfig", kc, "--authorization-kubeconfig", kc,
				"--leader-elect=false", "--bind-address", "127.0.0.1", "--profiling=false",
			}}, nil
		},
		ready: func(ctx context.Context, s *stack) error {
			return insecureHealthz(ctx, "https://127.0.0.1:10259/healthz")
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
	rc, err := clientcmd.BuildConfigFromFlags("", s.kubeconfigPath("admin"))
	if err != nil {
		return nil, err
	}
	rc.Timeout = 10 * time.Second
	return kubernetes.NewForConfig(rc)
}

// adminHTTP is an HTTP client that trusts the cluster CA and sends the admin token.
func (s *stack) adminHTTP() (*http.Client, error) {
	ca, err := os.ReadFile(s.path("kubernetes", "pki", "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, errors.New("cluster CA is not PEM")
	}
	tok := s.secret("token-admin")
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
