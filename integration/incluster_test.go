package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"

	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/workflows"
	"github.com/wikimedia/conveyor/workflows/changes"
)

// TestPipelineOnInClusterWorkers is conveyor deployed the way it deploys its users'
// services: tools/images.sh builds conveyor's own images on the stack (conveyor
// builds conveyor), charts/conveyor installs them into the stack's Kubernetes with
// Helm, and a change pipeline runs end to end on those pods alone: the build pool's
// pod reaches buildkitd and the registry, the deploy pool's installs the candidate
// into a ci-… namespace through its ServiceAccount, whose only rights there are the
// ones it binds itself (kubernetes.releaseClusterRole). The build pool's pod is
// deleted during the build; the Deployment replaces it and the pipeline completes,
// publishing once.
//
// The stack's Temporal, buildkitd and registry listen on loopback only, so the pods
// run on the node's network (the chart's hostNetwork, ci/host-network.yaml): the
// test gives buildkitd's unix socket a loopback TCP address and serves the change's
// repository with git daemon. The Temporal namespace is the test's own, so no
// worker outside the cluster can take its tasks; the pollers' identities (PID 1, a
// container's entrypoint) say so too.
func TestPipelineOnInClusterWorkers(t *testing.T) {
	c := stacktest.Debian(t)
	ns := stacktest.Namespace(t, "conveyor-incluster-it")
	images := buildConveyorImages(t, c, c.Registry.Address+"/conveyor-test")
	prefix := c.Registry.Address + "/conveyor-test/"
	kube := kubeClient(t)

	buildkit := forwardTCP(t, "unix", strings.TrimPrefix(c.Buildkit.Address, "unix://"))
	image := uniqueImage(t, "incluster")

	release := "conveyor-" + randomHex(t)[:6]
	home := "conveyor-it-" + randomHex(t)[:6]
	createNamespace(t, kube, home)
	// The workers in the cluster decrypt what this test's client encrypts: the
	// stack's payload keys go in through secrets.payloadKeys, as in production.
	keys, err := os.ReadFile(c.Temporal.PayloadKeyFile)
	if err != nil {
		t.Fatalf("the stack's payload keys (temporal.payloadKeyFile, make up): %v", err)
	}
	for _, secret := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "registry", Namespace: home}, StringData: map[string]string{"password": c.Registry.Password}},
		{ObjectMeta: metav1.ObjectMeta{Name: "payload-keys", Namespace: home}, Data: map[string][]byte{"payload-keys": keys}},
	} {
		if _, err := kube.CoreV1().Secrets(home).Create(context.Background(), secret, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ports := freePorts(t, 2)
	small := map[string]any{"requests": map[string]any{"cpu": "50m", "memory": "64Mi"}, "limits": map[string]any{"memory": "1Gi"}}
	values := map[string]any{
		"hostNetwork": true,
		"images": map[string]any{
			"worker": map[string]any{"repository": prefix + "conveyor-worker", "digest": images[prefix+"conveyor-worker:test"]},
			"cli":    map[string]any{"repository": prefix + "conveyor", "digest": images[prefix+"conveyor:test"]},
		},
		"config": map[string]any{
			"temporal": map[string]any{"address": ns.Temporal.Address, "namespace": ns.Temporal.Namespace},
			"buildkit": map[string]any{"address": "tcp://" + buildkit},
			"registry": map[string]any{"address": c.Registry.Address, "username": c.Registry.Username},
		},
		"secrets": map[string]any{"registryPassword": map[string]any{"secretName": "registry"},
			"payloadKeys": map[string]any{"secretName": "payload-keys"}},
		"workerDefaults": map[string]any{"healthPort": ports[0], "shutdownTimeoutSeconds": 60, "logFormat": "text"},
		"pools": map[string]any{
			"build":   map[string]any{"resources": small},
			"deploy":  map[string]any{"resources": small, "healthPort": ports[1]},
			"migrate": map[string]any{"enabled": false},
		},
		"receiver": map[string]any{"enabled": false},
	}
	installChart(t, c.Kubernetes.Kubeconfig, home, release, values)
	buildPod := waitPoolReady(t, kube, home, release, workflows.PoolBuild, "")
	waitPoolReady(t, kube, home, release, workflows.PoolDeploy, "")
	tc := dialTemporal(t, ns.Temporal)
	for _, pool := range []string{workflows.PoolBuild, workflows.PoolDeploy} {
		wantContainerPollers(t, tc, ns.Temporal.Namespace, workflows.TaskQueue(pool))
	}

	var replaced string
	st, _, err := runPipelineCase(t, tc, pipelineCase{record: "in-cluster", image: image, change: 4701, publish: true, serve: gitDaemon(t),
		duringStep: changes.StepBuildProduction, during: func() {
			// The Deployment's own pod deleted as a node drain or a rollout does: its
			// worker gets SIGTERM and drains; the replacement takes over.
			if err := kube.CoreV1().Pods(home).Delete(context.Background(), buildPod, metav1.DeleteOptions{}); err != nil {
				t.Errorf("deleting the build pool's pod %s: %v", buildPod, err)
				return
			}
			replaced = waitPoolReady(t, kube, home, release, workflows.PoolBuild, buildPod)
		}})
	if err != nil {
		t.Fatalf("pipeline on the in-cluster workers failed: %v\n%+v\n%s", err, st, podLogs(t, kube, home))
	}
	if replaced == "" || replaced == buildPod {
		t.Fatalf("the build pool's pod %s was not replaced during the pipeline (now %q)", buildPod, replaced)
	}
	for _, step := range changes.PipelineSteps {
		if s := st.Step(step); s.State != changes.StepSucceeded {
			t.Errorf("step %s is %s (%s), want succeeded", step, s.State, s.Detail)
		}
	}
	wantPublished(t, image, st.Step(changes.StepDeploy).Digest)
	namespaceGone(t, st.Namespace)
	t.Logf("pipeline %s ran on pods %s (deleted mid-build), %s and the deploy pool's, in namespace %s", image, buildPod, replaced, home)
}

// createNamespace makes namespace ns; the test's cleanup deletes it and waits
// until it is gone.
func createNamespace(t *testing.T, kube *kubernetes.Clientset, ns string) {
	t.Helper()
	if _, err := kube.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(t, kube, ns) })
}

// installChart installs charts/conveyor as release into namespace ns with values,
// through the Helm SDK, and uninstalls it when the test ends (before the namespace
// goes: cleanups run last first). The chart's cluster-wide objects (ClusterRoles,
// bindings, admission policies) go with the release.
func installChart(t *testing.T, kubeconfig, ns, release string, values map[string]any) {
	t.Helper()
	ch, err := loader.Load(filepath.Join(repoDir, "charts", "conveyor"))
	if err != nil {
		t.Fatal(err)
	}
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig, flags.Namespace = &kubeconfig, &ns
	var ac action.Configuration
	if err := ac.Init(flags, ns, "secret", func(format string, v ...any) { t.Logf("helm: "+format, v...) }); err != nil {
		t.Fatal(err)
	}
	in := action.NewInstall(&ac)
	in.ReleaseName, in.Namespace, in.Timeout = release, ns, 3*time.Minute
	if _, err := in.Run(ch, values); err != nil {
		t.Fatalf("helm install charts/conveyor: %v", err)
	}
	t.Cleanup(func() {
		un := action.NewUninstall(&ac)
		un.Wait, un.Timeout = true, 3*time.Minute
		if _, err := un.Run(release); err != nil {
			t.Errorf("helm uninstall %s: %v", release, err)
		}
	})
}

// waitPoolReady waits until the pool's Deployment has one pod that is Ready and is
// not old (the pod it replaces), and returns its name.
func waitPoolReady(t *testing.T, kube *kubernetes.Clientset, ns, release, pool, old string) string {
	t.Helper()
	var name string
	stacktest.WaitFor(t, 5*time.Minute, "a ready pod of pool "+pool, func() error {
		pods, err := kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{
			LabelSelector: "app.kubernetes.io/instance=" + release + ",conveyor.wikimedia.org/pool=" + pool,
		})
		if err != nil {
			return err
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && p.Name != old && podReady(p) {
				name = p.Name
				return nil
			}
		}
		return fmt.Errorf("pods: %s", podProblems(context.Background(), kube, ns))
	})
	return name
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// wantContainerPollers checks that the task queue's pollers are container
// entrypoints: a worker identity is PID@HOST@conveyor-worker/POOL, and only a
// container's first process has PID 1.
func wantContainerPollers(t *testing.T, c client.Client, namespace, queue string) {
	t.Helper()
	stacktest.WaitFor(t, time.Minute, "pollers on "+queue, func() error {
		resp, err := c.WorkflowService().DescribeTaskQueue(context.Background(), &workflowservice.DescribeTaskQueueRequest{
			Namespace: namespace, TaskQueue: &taskqueuepb.TaskQueue{Name: queue}, TaskQueueType: enumspb.TASK_QUEUE_TYPE_ACTIVITY,
		})
		if err != nil {
			return err
		}
		var ids []string
		for _, p := range resp.GetPollers() {
			ids = append(ids, p.GetIdentity())
		}
		if len(ids) == 0 {
			return errors.New("no pollers")
		}
		for _, id := range ids {
			if !strings.HasPrefix(id, "1@") {
				return fmt.Errorf("poller %q of %v is not a container's entrypoint", id, ids)
			}
		}
		return nil
	})
}

// podLogs is every container's log in namespace ns, for a failure's message.
func podLogs(t *testing.T, kube *kubernetes.Clientset, ns string) string {
	t.Helper()
	pods, err := kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, p := range pods.Items {
		rc, err := kube.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{}).Stream(context.Background())
		if err != nil {
			fmt.Fprintf(&b, "== %s: %v\n", p.Name, err)
			continue
		}
		out, _ := io.ReadAll(io.LimitReader(rc, 64<<10))
		rc.Close()
		fmt.Fprintf(&b, "== %s:\n%s\n", p.Name, out)
	}
	return b.String()
}

// forwardTCP listens on a loopback port and relays each connection to network/addr
// until the test ends; it returns the listening address.
func forwardTCP(t *testing.T, network, addr string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial(network, addr)
			if err != nil {
				slog.Warn("forwarding", "to", addr, "error", err)
				in.Close()
				continue
			}
			relay := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				if c, ok := dst.(interface{ CloseWrite() error }); ok {
					_ = c.CloseWrite()
				}
			}
			go func() {
				done := make(chan struct{})
				go func() { relay(out, in); close(done) }()
				relay(in, out)
				<-done
				in.Close()
				out.Close()
			}()
		}
	}()
	return l.Addr().String()
}

// gitDaemon returns a pipelineCase.serve that serves the repository in dir,
// read-only, over git:// on a loopback port until the test ends.
func gitDaemon(t *testing.T) func(dir string) string {
	return func(dir string) string { return serveGit(t, dir) }
}

func serveGit(t *testing.T, dir string) string {
	t.Helper()
	port := freePorts(t, 1)[0]
	cmd := exec.Command("git", "daemon", "--reuseaddr", "--export-all", "--informative-errors",
		"--listen=127.0.0.1", "--port="+strconv.Itoa(port), "--base-path="+filepath.Dir(dir), filepath.Dir(dir))
	// Its own process group, killed whole: git daemon forks a child per
	// connection, and a child left holding the test binary's output would keep
	// `go test` waiting. Its log is the test's only on failure.
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("git daemon: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("git daemon:\n%s", out.String())
		}
	})
	url := fmt.Sprintf("git://127.0.0.1:%d/%s", port, filepath.Base(dir))
	stacktest.WaitFor(t, 30*time.Second, "git daemon serving "+url, func() error {
		return exec.Command("git", "ls-remote", url).Run()
	})
	return url
}

// freePorts returns n loopback ports that nothing listens on now.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}
