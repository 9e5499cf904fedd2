package integration

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/kube"
	"helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wikimedia/conveyor/charts"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// codfwPodRange is where kwok hands codfw's pod addresses out (internal/dev/devstack/codfw.go).
var codfwPodRange = netip.MustParsePrefix("10.245.0.0/16")

// TestCodfwCluster checks production's second cluster: a control plane of its own
// whose nodes kwok simulates. A Deployment there becomes Ready through the real
// controllers and scheduler, its Service gets the pods as endpoints, a scale-down
// removes pods, a Helm install and upgrade with --wait succeed, and the first
// cluster (eqiad) sees none of it.
func TestCodfwCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	eqiadCfg, codfwCfg := promotionCluster(t, "eqiad"), promotionCluster(t, "codfw")
	if !codfwCfg.Simulated || eqiadCfg.Simulated {
		t.Errorf("promotion.clusters: codfw simulated = %v, eqiad simulated = %v; want true, false", codfwCfg.Simulated, eqiadCfg.Simulated)
	}
	eqiad, codfw := codfwClient(t, eqiadCfg), codfwClient(t, codfwCfg)

	// Two clusters, not two names for one: codfw's nodes are all kwok's, eqiad's none.
	codfwNodes := codfwNodeNames(ctx, t, codfw, true)
	eqiadNodes := codfwNodeNames(ctx, t, eqiad, false)
	if len(codfwNodes) == 0 {
		t.Fatal("codfw has no simulated node (`make up` registers them; see `conveyor dev status`)")
	}
	for _, n := range eqiadNodes {
		for _, c := range codfwNodes {
			if n == c {
				t.Fatalf("node %s is in both clusters", n)
			}
		}
	}
	eqiadDeployments := codfwDeploymentCount(ctx, t, eqiad)

	token := randomHex(t)[:8]
	ns := "it-codfw-" + token
	if _, err := codfw.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(t, codfw, ns) })

	const replicas = 6
	labels := map[string]string{"app": "sim"}
	dep := webDeployment("sim", replicas, corev1.Container{
		Name:  "web",
		Image: cfg.Registry.Address + "/conveyor/busybox:latest",
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
			HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromString("http")}}},
	})
	if _, err := codfw.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := codfw.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "sim"},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	stacktest.WaitFor(t, 3*time.Minute, "codfw deployment ready", func() error {
		return codfwDeploymentReady(ctx, codfw, ns, "sim", replicas)
	})

	// The controller manager made a ReplicaSet, the scheduler put the pods on the
	// simulated nodes, kwok made them Running and Ready with addresses of its range.
	rss, err := codfw.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(rss.Items) != 1 || rss.Items[0].OwnerReferences[0].Name != "sim" {
		t.Fatalf("ReplicaSets of the Deployment: %v %v", rss, err)
	}
	pods := codfwReadyPods(ctx, t, codfw, ns, replicas)
	ips := map[string]bool{}
	for _, p := range pods {
		if !codfwContains(codfwNodes, p.Spec.NodeName) {
			t.Errorf("pod %s is on node %q, not a simulated one %v", p.Name, p.Spec.NodeName, codfwNodes)
		}
		ip, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil || !codfwPodRange.Contains(ip) {
			t.Errorf("pod %s has address %q, want one of %s", p.Name, p.Status.PodIP, codfwPodRange)
		}
		ips[p.Status.PodIP] = true
	}
	if len(ips) != replicas {
		t.Errorf("%d distinct pod addresses for %d pods", len(ips), replicas)
	}

	// The Service's endpoints are exactly those pods, all ready.
	stacktest.WaitFor(t, time.Minute, "codfw service endpoints", func() error {
		return codfwServiceEndpoints(ctx, codfw, ns, "sim", ips)
	})

	// Scaling down removes pods: the deletion is played too.
	scale, err := codfw.AppsV1().Deployments(ns).GetScale(ctx, "sim", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scale.Spec.Replicas = 2
	if _, err := codfw.AppsV1().Deployments(ns).UpdateScale(ctx, "sim", scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	stacktest.WaitFor(t, 2*time.Minute, "codfw scaled down to 2 pods", func() error {
		ps, err := codfw.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(ps.Items) != 2 {
			return fmt.Errorf("%d pods", len(ps.Items))
		}
		return codfwDeploymentReady(ctx, codfw, ns, "sim", 2)
	})

	// eqiad is untouched: no such namespace, no new Deployment.
	if _, err := eqiad.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace %s in eqiad: err = %v, want not found", ns, err)
	}
	if got := codfwDeploymentCount(ctx, t, eqiad); got != eqiadDeployments {
		t.Errorf("eqiad has %d Deployments, had %d before", got, eqiadDeployments)
	}

	t.Run("helm", func(t *testing.T) { testCodfwHelm(ctx, t, codfwCfg, eqiadCfg, codfw, eqiad, token) })
}

// testCodfwHelm installs the scaffold chart into codfw with Helm's SDK and waits
// for it, then upgrades it to another image and waits again.
func testCodfwHelm(ctx context.Context, t *testing.T, codfwCfg, eqiadCfg config.Cluster, codfw, eqiad *kubernetes.Clientset, token string) {
	ns := "it-codfw-helm-" + token
	t.Cleanup(func() { deleteNamespace(t, codfw, ns) })
	dir, err := charts.ExtractService(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ch, err := loader.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	hc := codfwHelmConfig(t, codfwCfg.Kubeconfig, ns)
	in := action.NewInstall(hc)
	in.ReleaseName, in.Namespace, in.CreateNamespace = "hello", ns, true
	in.Wait, in.Timeout = true, 3*time.Minute
	vals := map[string]any{
		"replicaCount": 4,
		"image":        map[string]any{"repository": cfg.Registry.Address + "/conveyor/busybox", "tag": "latest"},
	}
	rel, err := in.RunWithContext(ctx, ch, vals)
	if err != nil {
		t.Fatalf("helm install into codfw: %v", err)
	}
	if rel.Info.Status != release.StatusDeployed {
		t.Fatalf("release status %s, want deployed", rel.Info.Status)
	}
	stacktest.WaitFor(t, time.Minute, "codfw deployment complete after the install", func() error {
		return codfwDeploymentReady(ctx, codfw, ns, "hello-stable", 4)
	})

	up := action.NewUpgrade(hc)
	up.Namespace, up.Wait, up.Timeout = ns, true, 3*time.Minute
	vals["image"] = map[string]any{"repository": cfg.Registry.Address + "/conveyor/busybox", "tag": "v2-" + token}
	rel, err = up.RunWithContext(ctx, "hello", ch, vals)
	if err != nil {
		t.Fatalf("helm upgrade --wait in codfw: %v", err)
	}
	if rel.Version != 2 || rel.Info.Status != release.StatusDeployed {
		t.Fatalf("after upgrade: revision %d %s, want 2 deployed", rel.Version, rel.Info.Status)
	}
	d, err := codfw.AppsV1().Deployments(ns).Get(ctx, "hello-stable", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; !strings.HasSuffix(img, ":v2-"+token) {
		t.Errorf("Deployment runs %s after the upgrade", img)
	}
	// Helm's wait counts a Deployment ready with up to maxUnavailable pods still
	// missing; the last of them follows.
	stacktest.WaitFor(t, time.Minute, "codfw deployment complete after the upgrade", func() error {
		return codfwDeploymentReady(ctx, codfw, ns, "hello-stable", 4)
	})

	// The release exists in codfw only.
	list := action.NewList(codfwHelmConfig(t, eqiadCfg.Kubeconfig, ns))
	list.All = true
	rels, err := list.Run()
	if err != nil {
		t.Fatal(err)
	}
	if len(rels) != 0 {
		t.Errorf("eqiad has %d Helm releases in %s, want none", len(rels), ns)
	}
	if _, err := eqiad.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace %s in eqiad: err = %v, want not found", ns, err)
	}
}

// promotionCluster is the named cluster of the stack's configuration.
func promotionCluster(t *testing.T, name string) config.Cluster {
	t.Helper()
	var names []string
	for _, c := range cfg.Promotion.Clusters {
		if c.Name == name {
			return c
		}
		names = append(names, c.Name)
	}
	t.Fatalf("promotion.clusters has no %s (it has %v): `make up` writes both eqiad and codfw into .local/conveyor.yaml", name, names)
	return config.Cluster{}
}

func codfwClient(t *testing.T, c config.Cluster) *kubernetes.Clientset {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		t.Fatalf("kubeconfig of %s, %s (make up): %v", c.Name, c.Kubeconfig, err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// helmConfig is a Helm action configuration for namespace, with its discovery
// cache in the test's temporary directory.
func codfwHelmConfig(t *testing.T, kubeconfig, namespace string) *action.Configuration {
	t.Helper()
	flags := kube.GetConfig(kubeconfig, "", namespace)
	cache := t.TempDir()
	flags.CacheDir = &cache
	hc := new(action.Configuration)
	if err := hc.Init(flags, namespace, "secret", t.Logf); err != nil {
		t.Fatal(err)
	}
	return hc
}

// nodeNames lists a cluster's nodes and checks that all (simulated) or none of
// them are kwok's.
func codfwNodeNames(ctx context.Context, t *testing.T, cs *kubernetes.Clientset, simulated bool) []string {
	t.Helper()
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nodes.Items {
		if got := n.Annotations["kwok.x-k8s.io/node"] == "fake"; got != simulated {
			t.Errorf("node %s: simulated by kwok = %v, want %v", n.Name, got, simulated)
		}
		names = append(names, n.Name)
	}
	return names
}

func codfwDeploymentCount(ctx context.Context, t *testing.T, cs *kubernetes.Clientset) int {
	t.Helper()
	ds, err := cs.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return len(ds.Items)
}

// deploymentReady says why a Deployment does not have exactly want up-to-date,
// ready and available replicas of its latest generation, or nil.
func codfwDeploymentReady(ctx context.Context, cs *kubernetes.Clientset, ns, name string, want int32) error {
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	st := d.Status
	if st.ObservedGeneration < d.Generation || st.Replicas != want || st.UpdatedReplicas != want || st.ReadyReplicas != want || st.AvailableReplicas != want {
		return fmt.Errorf("deployment %s/%s: generation %d observed %d, replicas %d updated %d ready %d available %d, want %d",
			ns, name, d.Generation, st.ObservedGeneration, st.Replicas, st.UpdatedReplicas, st.ReadyReplicas, st.AvailableReplicas, want)
	}
	return nil
}

// readyPods returns the namespace's pods, which must be want, all Running and Ready.
func codfwReadyPods(ctx context.Context, t *testing.T, cs *kubernetes.Clientset, ns string, want int) []corev1.Pod {
	t.Helper()
	ps, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ps.Items) != want {
		t.Fatalf("%d pods in %s, want %d", len(ps.Items), ns, want)
	}
	for _, p := range ps.Items {
		ready := false
		for _, c := range p.Status.Conditions {
			ready = ready || (c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue)
		}
		if p.Status.Phase != corev1.PodRunning || !ready {
			t.Errorf("pod %s: phase %s, ready %v", p.Name, p.Status.Phase, ready)
		}
	}
	return ps.Items
}

// serviceEndpoints says how the ready endpoints of a Service differ from ips, or nil.
func codfwServiceEndpoints(ctx context.Context, cs *kubernetes.Clientset, ns, svc string, ips map[string]bool) error {
	slices, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	if err != nil {
		return err
	}
	got := map[string]bool{}
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				for _, a := range e.Addresses {
					got[a] = true
				}
			}
		}
	}
	if len(got) != len(ips) {
		return fmt.Errorf("service %s/%s has ready endpoints %v, want %v", ns, svc, codfwKeys(got), codfwKeys(ips))
	}
	for a := range ips {
		if !got[a] {
			return fmt.Errorf("service %s/%s has ready endpoints %v, want %v", ns, svc, codfwKeys(got), codfwKeys(ips))
		}
	}
	return nil
}

func codfwKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func codfwContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
