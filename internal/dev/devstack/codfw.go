package devstack

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// codfw is production's second data centre: a Kubernetes control plane of its own
// (etcd, API server, controller manager, scheduler: real Deployments, ReplicaSets,
// Services, EndpointSlices, Helm releases) whose nodes kwok simulates. Pods are
// scheduled onto the simulated nodes and kwok plays what a kubelet would report:
// they get an address from a range nothing routes to and become Running and Ready,
// but no container runs. Its addresses stay on loopback; the node and pod
// addresses are fakes that nothing connects to.
const (
	codfwAPIServerAddr = "127.0.0.1:6444"
	codfwServiceCIDR   = "10.97.0.0/16"
	codfwKwokAddr      = "127.0.0.1:10347"
	// codfwPodCIDR is what kwok hands pod addresses out of: a /24 per node.
	codfwPodCIDR = "10.245.0.0/16"
	// codfwNodeCount simulated nodes, codfw-node-1..N, each with codfwNodeCPU
	// CPUs, codfwNodeMemory and room for codfwNodePods pods.
	codfwNodeCount  = 2
	codfwNodeCPU    = "16"
	codfwNodeMemory = "64Gi"
	codfwNodePods   = "110"
)

var codfwPlane = controlPlane{
	prefix: "codfw-", dir: "codfw", etcdData: []string{"codfw", "etcd"}, cluster: "codfw", caName: "conveyor-codfw-ca",
	etcdClient: "127.0.0.1:2389", etcdPeer: "127.0.0.1:2390", etcdMetrics: "127.0.0.1:2391",
	bind: "127.0.0.1", port: "6444", server: codfwAPIServerAddr,
	// Where the kubernetes Service's endpoints point; nothing in codfw dials it
	// (no kube-proxy), and the API server listens on loopback only.
	advertise:   "10.214.0.254",
	serviceCIDR: codfwServiceCIDR, apiServiceIP: "10.97.0.1",
	cmPort: "10357", schedPort: "10359", secretPrefix: "codfw-token-",
	ids: []identity{
		{"admin", "conveyor-admin", "system:masters"},
		{"controller-manager", "system:kube-controller-manager", "system:masters"},
		{"scheduler", "system:kube-scheduler", ""},
		// kwok plays the kubelet of every simulated node at once, which the Node
		// authorizer (one identity per node) cannot express.
		{"kwok", "system:kwok-controller", "system:masters"},
	},
}

// codfwKubeconfig is the admin kubeconfig of the codfw cluster.
func (s *stack) codfwKubeconfig() string { return codfwPlane.kubeconfig(s, "admin") }

func codfwKwokComponent() component {
	return component{
		name:    "codfw-kwok",
		tool:    "kwok",
		process: true,
		address: func(*stack) string { return "http://" + codfwKwokAddr },
		timeout: time.Minute,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			stages := s.path("codfw", "kwok-stages.yaml")
			if err := writeFile(stages, kwokStages, 0o644); err != nil {
				return nil, err
			}
			return &process{Name: "codfw-kwok", Bin: s.tool("kwok", "kwok"), Args: []string{
				"--kubeconfig", codfwPlane.kubeconfig(s, "kwok"),
				"--config", stages,
				"--manage-all-nodes=true",
				"--cidr", codfwPodCIDR,
				"--node-ip", codfwNodeIP(1),
				"--server-address", codfwKwokAddr,
				"--node-lease-duration-seconds", "40",
			}}, nil
		},
		ready: func(ctx context.Context, s *stack) error {
			return httpOK(ctx, nil, "http://"+codfwKwokAddr+"/healthz")
		},
	}
}

// codfwClusterComponent registers the simulated nodes (once; kwok then keeps them
// Ready) and waits until they are Ready without taints and pods can be admitted.
func codfwClusterComponent() component {
	return component{
		name: "codfw",
		address: func(s *stack) string {
			return fmt.Sprintf("%d simulated nodes (kwok), kubeconfig %s", codfwNodeCount, s.codfwKubeconfig())
		},
		timeout: 2 * time.Minute,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			cs, err := kubeClientFor(s.codfwKubeconfig())
			if err != nil {
				return nil, err
			}
			for i := 1; i <= codfwNodeCount; i++ {
				_, err := cs.CoreV1().Nodes().Create(ctx, codfwNode(i), metav1.CreateOptions{})
				if err != nil && !apierrors.IsAlreadyExists(err) {
					return nil, fmt.Errorf("registering the simulated node %s: %w", codfwNodeName(i), err)
				}
			}
			return nil, nil
		},
		ready: func(ctx context.Context, s *stack) error {
			if _, err := os.Stat(s.codfwKubeconfig()); err != nil {
				return err
			}
			cs, err := kubeClientFor(s.codfwKubeconfig())
			if err != nil {
				return err
			}
			for i := 1; i <= codfwNodeCount; i++ {
				name := codfwNodeName(i)
				n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					return fmt.Errorf("node %s: %w", name, err)
				}
				if err := nodeReady(n); err != nil {
					return err
				}
			}
			if _, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
				return fmt.Errorf("default service account: %w", err)
			}
			return nil
		},
	}
}

// nodeReady says why a node cannot take pods yet, or nil.
func nodeReady(n *corev1.Node) error {
	ready := false
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status != corev1.ConditionTrue {
				return fmt.Errorf("node %s not ready: %s", n.Name, c.Message)
			}
			ready = true
		}
	}
	if !ready {
		return fmt.Errorf("node %s has no Ready condition yet", n.Name)
	}
	for _, t := range n.Spec.Taints {
		return fmt.Errorf("node %s still has taint %s", n.Name, t.Key)
	}
	return nil
}

func codfwNodeName(i int) string { return fmt.Sprintf("codfw-node-%d", i) }

// codfwNodeIP is the simulated node i's address (and the pods' host IP).
func codfwNodeIP(i int) string { return fmt.Sprintf("10.214.0.%d", i) }

// codfwNode is simulated node i (from 1): its pods get addresses from the i-th /24
// of codfwPodCIDR; the annotation and label say it is a kwok node.
func codfwNode(i int) *corev1.Node {
	name := codfwNodeName(i)
	_, pods, _ := net.ParseCIDR(codfwPodCIDR)
	podCIDR := fmt.Sprintf("%d.%d.%d.0/24", pods.IP[0], pods.IP[1], i)
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(codfwNodeCPU),
		corev1.ResourceMemory: resource.MustParse(codfwNodeMemory),
		corev1.ResourcePods:   resource.MustParse(codfwNodePods),
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				"kubernetes.io/hostname":        name,
				"kubernetes.io/os":              "linux",
				"kubernetes.io/arch":            "amd64",
				"topology.kubernetes.io/region": "codfw",
				"topology.kubernetes.io/zone":   "codfw-" + string(rune('a'+i-1)),
				"type":                          "kwok",
			},
			Annotations: map[string]string{
				"kwok.x-k8s.io/node":           "fake",
				"node.alpha.kubernetes.io/ttl": "0",
			},
		},
		Spec: corev1.NodeSpec{PodCIDR: podCIDR, PodCIDRs: []string{podCIDR}},
		Status: corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: capacity,
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: codfwNodeIP(i)},
				{Type: corev1.NodeHostName, Address: name},
			},
		},
	}
}

// kwokStages is what kwok plays on codfw's nodes and pods (kwok refuses to start
// without stages). Nodes: become Ready with their registered capacity, then
// heartbeat (kwok also renews their leases). Pods: get an address within a
// fraction of a second, become Running and Ready about a second later (roughly
// what a small image on the real node takes), Jobs' pods complete, and a
// deleted pod goes away at once, as a container that exits on SIGTERM would.
//
// The stages are the files of kwok/, one Stage each, in the order of their names.
var kwokStages = mustJoinStages(kwokFiles)

//go:embed kwok/*.yaml
var kwokFiles embed.FS

// mustJoinStages joins the stage files into one YAML stream; the files are
// embedded, so a failure is a build mistake.
func mustJoinStages(fsys embed.FS) string {
	names, err := fs.Glob(fsys, "kwok/*.yaml")
	if err != nil || len(names) == 0 {
		panic(fmt.Sprintf("no kwok stages embedded: %v", err))
	}
	docs := make([]string, 0, len(names))
	for _, n := range names {
		b, err := fsys.ReadFile(n)
		if err != nil {
			panic(err)
		}
		docs = append(docs, string(b))
	}
	return strings.Join(docs, "---\n")
}
