package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/docker/cli/cli/config/types"
	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wikimedia/conveyor/internal/dev/devstack"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
)

// TestBuildPushDeployServe is the foundation's promise: an image built by buildkitd
// and pushed to the registry runs on the node, and its ClusterIP Service answers HTTP
// from the host.
func TestBuildPushDeployServe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	token := randomHex(t)

	// Build: the base image plus a page only this run knows, pushed with credentials.
	st := llb.Image(devstack.BaseImage).
		File(llb.Mkdir("/srv/www", 0o755, llb.WithParents(true))).
		File(llb.Mkfile("/srv/www/index.html", 0o644, []byte(token)))
	def, err := st.Marshal(ctx, llb.LinuxAmd64)
	if err != nil {
		t.Fatal(err)
	}
	bk, err := bkclient.New(ctx, cfg.Buildkit.Address)
	if err != nil {
		t.Fatalf("connecting to buildkitd (make up): %v", err)
	}
	defer bk.Close()
	ref := cfg.Registry.Address + "/integration/foundation:" + token[:8]
	resp, err := bk.Solve(ctx, def, bkclient.SolveOpt{
		Exports: []bkclient.ExportEntry{{Type: bkclient.ExporterImage, Attrs: map[string]string{"name": ref, "push": "true"}}},
		Session: []session.Attachable{registryAuth()},
	}, nil)
	if err != nil {
		t.Fatalf("building and pushing %s: %v", ref, err)
	}
	digest := resp.ExporterResponse["containerimage.digest"]
	if !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("no image digest in the exporter response: %v", resp.ExporterResponse)
	}
	image := cfg.Registry.Address + "/integration/foundation@" + digest

	// Deploy: a Deployment of that digest and a ClusterIP Service, in a namespace of its own.
	cs := kubeClient(t)
	ns := "it-foundation-" + token[:8]
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(t, cs, ns) })
	labels := map[string]string{"app": "foundation"}
	dep := webDeployment("foundation", 1, corev1.Container{
		Name:    "web",
		Image:   image,
		Command: []string{"/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/srv/www"},
		Ports:   []corev1.ContainerPort{{ContainerPort: 8080}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
			HTTPGet: &corev1.HTTPGetAction{Path: "/index.html", Port: intstr.FromInt32(8080)}},
			PeriodSeconds: 1},
	})
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "foundation"},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stacktest.WaitFor(t, 3*time.Minute, "deployment available", func() error {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "foundation", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if d.Status.AvailableReplicas < 1 {
			return fmt.Errorf("available %d; %s", d.Status.AvailableReplicas, podProblems(ctx, cs, ns))
		}
		return nil
	})

	// Serve: the Service's ClusterIP answers from the host, through kube-proxy.
	url := fmt.Sprintf("http://%s/index.html", svc.Spec.ClusterIP)
	var body string
	stacktest.WaitFor(t, time.Minute, "GET "+url, func() error {
		body, err = httpGet(ctx, url)
		return err
	})
	if body != token {
		t.Fatalf("GET %s = %q, want the page this run built (%q)", url, body, token)
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods: %v %v", pods, err)
	}
	if got := pods.Items[0].Status.ContainerStatuses[0].ImageID; !strings.HasSuffix(got, digest) {
		t.Errorf("pod runs image %s, want digest %s", got, digest)
	}
}

// registryAuth gives buildkitd the registry credentials from the configuration.
func registryAuth() session.Attachable {
	return authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
		AuthConfigProvider: func(_ context.Context, host string, _ []string, _ authprovider.ExpireCachedAuthCheck) (types.AuthConfig, error) {
			if host == cfg.Registry.Address {
				return types.AuthConfig{Username: cfg.Registry.Username, Password: cfg.Registry.Password}, nil
			}
			return types.AuthConfig{}, nil
		},
	})
}

func kubeClient(t *testing.T) *kubernetes.Clientset {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubernetes.Kubeconfig)
	if err != nil {
		t.Fatalf("kubeconfig %s (make up): %v", cfg.Kubernetes.Kubeconfig, err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// deleteNamespace removes ns and waits until it is gone.
func deleteNamespace(t *testing.T, cs *kubernetes.Clientset, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("deleting namespace %s: %v", ns, err)
		return
	}
	stacktest.WaitFor(t, 2*time.Minute, "namespace "+ns+" deleted", func() error {
		_, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (%v)", err)
	})
}

// podProblems summarises why a namespace's pods are not ready, for failure messages.
func podProblems(ctx context.Context, cs *kubernetes.Clientset, ns string) string {
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, p := range pods.Items {
		s := p.Name + ": " + string(p.Status.Phase)
		for _, c := range p.Status.ContainerStatuses {
			if c.State.Waiting != nil {
				s += " waiting " + c.State.Waiting.Reason + " " + c.State.Waiting.Message
			}
		}
		for _, c := range p.Status.Conditions {
			if c.Status != corev1.ConditionTrue && c.Message != "" {
				s += " " + string(c.Type) + ": " + c.Message
			}
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}

func httpGet(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	// A fresh connection each time: a kept-alive one would outlive a Service change.
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, b)
	}
	return string(b), nil
}

func randomHex(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// webDeployment is a Deployment of replicas pods of one container, its pods
// labelled app=name.
func webDeployment(name string, replicas int32, c corev1.Container) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{c}},
			},
		},
	}
}
