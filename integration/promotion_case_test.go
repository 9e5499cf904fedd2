package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wikimedia/conveyor/workflows/promotions"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wikimedia/conveyor/activities/buildkit"
	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/promote"
	"github.com/wikimedia/conveyor/internal/client/launch"
	"github.com/wikimedia/conveyor/internal/dev/gittest"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// The promotion tests drive promotions.Promotion on a real worker (its own Temporal
// namespace, its own configuration registry) against the stack's two production
// clusters: eqiad, whose pods run and answer the canary analysis' traffic, and the
// simulated codfw. Each test promotes a service of its own over a stable release
// of hello v1 installed beforehand.

// promotionNamespace is the Temporal namespace of the promotion tests: their
// workers serve the deploy pool there only.
const promotionNamespace = "conveyor-promotion-it"

// promotionReplicas is the plans' pods per production cluster: few, on 2 cores.
const promotionReplicas = 2

// promotionImages are the images the tests promote, built once per test binary.
type promotionImages struct{ v1, v2, broken string }

var (
	promoImagesOnce sync.Once
	promoImages     promotionImages
	promoImagesErr  error
)

// testImages builds hello (v1), hello with another greeting (v2) and
// hello-broken, with the pipeline's Blubber/BuildKit code, and pushes them.
func testImages(t *testing.T) promotionImages {
	t.Helper()
	promoImagesOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		bk, err := buildkit.New(ctx, cfg)
		if err != nil {
			promoImagesErr = err
			return
		}
		defer bk.Close()
		build := func(example, tag string, edit func(dir string) error) string {
			if promoImagesErr != nil {
				return ""
			}
			dir, err := os.MkdirTemp("", "promotion-image-")
			if err != nil {
				promoImagesErr = err
				return ""
			}
			defer os.RemoveAll(dir)
			if out, err := exec.Command("cp", "-a", filepath.Join(repoDir, "examples", example)+"/.", dir).CombinedOutput(); err != nil {
				promoImagesErr = fmt.Errorf("copying %s: %v: %s", example, err, out)
				return ""
			}
			if edit != nil {
				if promoImagesErr = edit(dir); promoImagesErr != nil {
					return ""
				}
			}
			commit, err := gittest.CommitAll(context.Background(), dir, "test")
			if err != nil {
				promoImagesErr = err
				return ""
			}
			out, err := bk.BuildVariant(ctx, contract.BuildVariantInput{
				Source: contract.Source{Repo: dir, Commit: commit}, Blubber: ".pipeline/blubber.yaml", Variant: "production",
				Push: "it-promotion/" + example + ":" + tag,
			})
			if err != nil {
				promoImagesErr = fmt.Errorf("building %s (%s): %w", example, tag, err)
				return ""
			}
			return out.Ref
		}
		promoImages.v1 = build("hello", "v1", nil)
		promoImages.v2 = build("hello", "v2", func(dir string) error {
			p := filepath.Join(dir, "www", "cgi-bin", "hello")
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(p, []byte(strings.Replace(string(b), "greeting=hello", "greeting=hi", 1)), 0o755)
		})
		promoImages.broken = build("hello-broken", "v1", nil)
	})
	if promoImagesErr != nil {
		t.Fatalf("building the promotion's images (buildkitd and the registry: make up): %v", promoImagesErr)
	}
	return promoImages
}

// promotionCase is one test's service, configuration registry, worker and
// clusters.
type promotionCase struct {
	t       *testing.T
	cfg     config.Config
	service string
	repo    string
	commit  string
	c       client.Client
	kube    map[string]kubernetes.Interface
	prod    []config.Cluster
	worker  *exec.Cmd
	out     *syncBuffer
	// runs are the promotions the case started; cleanup terminates those still
	// running, so that a failed test leaves no promotion for the next test's
	// worker (they share a task queue) to go on with.
	runs []client.WorkflowRun
	// images are testImages published for service, as the pipeline publishes:
	// in <registry>/<service> with a -production tag (only those are promoted).
	images promotionImages
}

// planOptions change the test plan.
type planOptions struct {
	steps        string
	pauseTimeout string
}

// newPromotionCase makes a configuration registry with a plan for a new service,
// starts a worker on it, and installs hello v1 as the service's stable release
// in every production cluster.
func newPromotionCase(t *testing.T, opts planOptions) *promotionCase {
	t.Helper()
	return newPromotionCaseOn(t, stacktest.Namespace(t, promotionNamespace), opts)
}

// newPromotionCaseOn is newPromotionCase on the Temporal and namespace of cfg.
func newPromotionCaseOn(t *testing.T, cfg config.Config, opts planOptions) *promotionCase {
	t.Helper()
	pc := &promotionCase{t: t, cfg: cfg, service: "pr-" + randomHex(t)[:8], kube: map[string]kubernetes.Interface{}}
	pc.prod = pc.cfg.Promotion.Clusters
	if len(pc.prod) < 2 || !slices.ContainsFunc(pc.prod, func(c config.Cluster) bool { return c.Simulated }) {
		t.Fatalf("the promotion tests need two production clusters in promotion.clusters, eqiad and the simulated codfw (make up starts both); the stack has %+v", pc.prod)
	}
	for _, cl := range pc.prod {
		rc, err := clientcmd.BuildConfigFromFlags("", cl.Kubeconfig)
		if err != nil {
			t.Fatalf("cluster %s: %v", cl.Name, err)
		}
		if pc.kube[cl.Name], err = kubernetes.NewForConfig(rc); err != nil {
			t.Fatal(err)
		}
	}
	pc.writeRegistry(opts)
	pc.cfg.Promotion.ConfigRepo = pc.repo
	pc.c = pc.dial()
	pc.startWorker()
	t.Cleanup(pc.cleanup)

	// The stable release the promotions replace: hello v1 in each cluster.
	pc.images = pc.publish(testImages(t))
	imgs := pc.images
	acts, err := promote.New(pc.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cfgOut, err := acts.PromotionConfig(ctx, contract.PromotionConfigInput{Service: pc.service})
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range cfgOut.Plan.Production {
		_, err := acts.PromotionDeploy(ctx, contract.PromotionDeployInput{
			ServiceRelease: contract.ServiceRelease{Target: target, Service: pc.service},
			Image:          imgs.v1, Replicas: promotionReplicas, HistoryMax: cfgOut.Plan.HistoryMax,
		})
		if err != nil {
			t.Fatalf("installing the stable release in %s: %v", target.Cluster, err)
		}
	}
	return pc
}

// publish copies each image into the service's repository under a -production
// tag, digest unchanged, as the pipeline's publish step does.
func (pc *promotionCase) publish(imgs promotionImages) promotionImages {
	t := pc.t
	auth := remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: pc.cfg.Registry.Username, Password: pc.cfg.Registry.Password}))
	copyTo := func(ref, tag string) string {
		src, err := name.NewDigest(ref)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(src, auth)
		if err != nil {
			t.Fatalf("reading %s: %v", ref, err)
		}
		dst, err := name.NewTag(pc.cfg.Registry.Address + "/" + pc.service + ":" + tag + "-production")
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(dst, img, auth); err != nil {
			t.Fatalf("publishing %s as %s: %v", ref, dst, err)
		}
		return dst.Context().Name() + "@" + src.DigestStr()
	}
	return promotionImages{v1: copyTo(imgs.v1, "v1"), v2: copyTo(imgs.v2, "v2"), broken: copyTo(imgs.broken, "broken")}
}

func (pc *promotionCase) writeRegistry(opts planOptions) {
	t := pc.t
	if opts.steps == "" {
		opts.steps = "[{weight: 50}, {weight: 100}]"
	}
	var prod strings.Builder
	for _, cl := range pc.prod {
		fmt.Fprintf(&prod, "  - {cluster: %s, namespace: %s}\n", cl.Name, pc.service)
	}
	timeout := ""
	if opts.pauseTimeout != "" {
		timeout = "pauseTimeout: " + opts.pauseTimeout + "\n"
	}
	svc := "services/" + pc.service + "/"
	files := map[string]string{
		svc + "promotion.yaml": fmt.Sprintf(`staging: {cluster: %s, namespace: %s-staging}
production:
%sreplicas: %d
steps: %s
analysis:
  requests: 20
  path: /cgi-bin/hello?name=canary
  maxErrorRatio: 0.05
  maxLatencyP95: 2s
smokePath: /cgi-bin/healthz
approvers: [alice, bob]
reminderEvery: 1h
historyMax: 3
%s`, pc.prod[0].Name, pc.service, prod.String(), promotionReplicas, opts.steps, timeout),
		svc + "values.yaml": `containerPort: 8080
service: {port: 8080}
probes:
  readiness: {path: /cgi-bin/healthz, periodSeconds: 1}
  liveness: {path: /cgi-bin/healthz}
test: {enabled: false}
# Small requests, so that the tests' releases fit the node beside each other;
# limits as the chart's defaults.
resources:
  requests: {cpu: 10m, memory: 16Mi}
  limits: {cpu: 500m, memory: 256Mi}
`,
		svc + "production/values.yaml": "env: {ENVIRONMENT: production}\n",
	}
	pc.repo = t.TempDir()
	for name, content := range files {
		p := filepath.Join(pc.repo, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if pc.commit, err = gittest.CommitAll(context.Background(), pc.repo, "test"); err != nil {
		t.Fatal(err)
	}
}

func (pc *promotionCase) dial() client.Client { return dialTemporal(pc.t, pc.cfg.Temporal) }

// startWorker runs conveyor-worker's deploy pool in the tests' namespace, reading
// the test's configuration registry.
func (pc *promotionCase) startWorker() {
	pc.out = &syncBuffer{}
	cmd := exec.Command(filepath.Join(binDir, "conveyor-worker"), "--config", stackConfigPath(), "--pools", "deploy")
	cmd.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+pc.cfg.Temporal.Address,
		"TEMPORAL_NAMESPACE="+pc.cfg.Temporal.Namespace, "CONVEYOR_CONFIG_REPO="+pc.repo)
	cmd.Stdout, cmd.Stderr = pc.out, pc.out
	if err := cmd.Start(); err != nil {
		pc.t.Fatal(err)
	}
	pc.worker = cmd
}

func (pc *promotionCase) stopWorker(sig syscall.Signal) {
	if pc.worker == nil || pc.worker.ProcessState != nil {
		return
	}
	_ = pc.worker.Process.Signal(sig)
	_, _ = pc.worker.Process.Wait()
}

func (pc *promotionCase) cleanup() {
	pc.stopWorker(syscall.SIGKILL)
	for _, run := range pc.runs {
		err := pc.c.TerminateWorkflow(context.Background(), run.GetID(), run.GetRunID(), "the test that started it ended")
		var done *serviceerror.NotFound
		if err != nil && !errors.As(err, &done) {
			pc.t.Logf("terminating %s: %v", run.GetID(), err)
		}
	}
	if pc.t.Failed() {
		out := pc.out.String()
		if len(out) > 20000 {
			out = "..." + out[len(out)-20000:]
		}
		pc.t.Logf("worker output:\n%s", out)
	}
	for name, kube := range pc.kube {
		for _, ns := range []string{pc.service, pc.service + "-staging"} {
			err := kube.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				pc.t.Logf("deleting namespace %s in %s: %v", ns, name, err)
			}
		}
	}
}

// start starts the promotion of image.
func (pc *promotionCase) start(image string) client.WorkflowRun {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := launch.Promotion(ctx, pc.c, promotions.PromotionInput{Service: pc.service, Image: image})
	if err != nil {
		pc.t.Fatal(err)
	}
	pc.runs = append(pc.runs, run)
	return run
}

// startApproved starts the promotion of image, waits for its gate and has
// approver approve it.
func (pc *promotionCase) startApproved(image, approver string) client.WorkflowRun {
	pc.t.Helper()
	run := pc.start(image)
	pc.waitStatus(run, 5*time.Minute, "the promotion reaching its gate", atGate)
	if _, err := pc.decide(run, promotions.PromoteApprove, approver); err != nil {
		pc.t.Fatalf("%s's approve: %v", approver, err)
	}
	return run
}

// waitStatus polls the promotion's status until cond accepts it.
func (pc *promotionCase) waitStatus(run client.WorkflowRun, timeout time.Duration, what string, cond func(promotions.PromotionStatus) error) promotions.PromotionStatus {
	pc.t.Helper()
	var st promotions.PromotionStatus
	stacktest.WaitFor(pc.t, timeout, what, func() error {
		var err error
		if st, err = launch.PromotionStatus(context.Background(), pc.c, run.GetID(), run.GetRunID()); err != nil {
			return err
		}
		if err := cond(st); err != nil && !st.Finished.IsZero() {
			pc.t.Fatalf("%s: the promotion ended instead, at stage %s: %s", what, st.Stage, st.Error)
		}
		return cond(st)
	})
	return st
}

func atGate(st promotions.PromotionStatus) error {
	if st.Stage != promotions.PromotionStageGate {
		return fmt.Errorf("stage %s (%s)", st.Stage, st.Error)
	}
	return nil
}

// result waits for the promotion to end and returns its status and error.
func (pc *promotionCase) result(run client.WorkflowRun, timeout time.Duration) (promotions.PromotionStatus, error) {
	pc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var st promotions.PromotionStatus
	werr := run.Get(ctx, &st)
	if ctx.Err() != nil {
		pc.t.Fatalf("the promotion did not end within %s: %v", timeout, werr)
	}
	if werr != nil {
		var err error
		if st, err = launch.PromotionStatus(context.Background(), pc.c, run.GetID(), run.GetRunID()); err != nil {
			pc.t.Fatal(err)
		}
	}
	return st, werr
}

func (pc *promotionCase) decide(run client.WorkflowRun, verb, who string) (promotions.PromotionStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return launch.PromotionDecide(ctx, pc.c, run.GetID(), verb, promotions.PromotionDecision{Approver: who, Reason: "integration test"})
}

// production is what runs in one cluster's namespace.
type production struct {
	image          string
	replicas       int32
	ready          int32
	canary         bool
	canaryPods     int
	revisions      []int
	deployedRevNum int
}

// inspect reads a cluster's stable Deployment, canary and Helm history.
func (pc *promotionCase) inspect(cluster, ns string) production {
	pc.t.Helper()
	ctx := context.Background()
	kube := pc.kube[cluster]
	var p production
	d, err := kube.AppsV1().Deployments(ns).Get(ctx, pc.service+"-stable", metav1.GetOptions{})
	if err != nil {
		pc.t.Fatalf("%s: the stable Deployment: %v", cluster, err)
	}
	p.image = d.Spec.Template.Spec.Containers[0].Image
	p.replicas, p.ready = *d.Spec.Replicas, d.Status.ReadyReplicas
	_, err = kube.AppsV1().Deployments(ns).Get(ctx, pc.service+"-canary", metav1.GetOptions{})
	p.canary = err == nil
	pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "track=canary"})
	if err != nil {
		pc.t.Fatal(err)
	}
	// A canary pod that is terminating is no longer an endpoint of the Service:
	// only the others count as canary pods still there.
	for _, pod := range pods.Items {
		if pod.DeletionTimestamp == nil {
			p.canaryPods++
		}
	}
	secrets, err := kube.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,name=" + pc.service})
	if err != nil {
		pc.t.Fatal(err)
	}
	for _, s := range secrets.Items {
		v, _ := strconv.Atoi(s.Labels["version"])
		p.revisions = append(p.revisions, v)
		if s.Labels["status"] == "deployed" {
			p.deployedRevNum = v
		}
	}
	slices.Sort(p.revisions)
	return p
}

// wantStable checks that a cluster runs image as its stable release, with every
// replica and no canary.
func (pc *promotionCase) wantStable(cluster, image string, revisions []int) {
	pc.t.Helper()
	p := pc.inspect(cluster, pc.service)
	if p.image != image || p.replicas != promotionReplicas {
		pc.t.Errorf("%s: stable Deployment runs %s with %d replicas, want %s with %d", cluster, p.image, p.replicas, image, promotionReplicas)
	}
	if p.ready != promotionReplicas {
		pc.t.Errorf("%s: %d stable pods ready, want %d", cluster, p.ready, promotionReplicas)
	}
	if p.canary || p.canaryPods != 0 {
		pc.t.Errorf("%s: canary Deployment present %v, %d canary pods: want none", cluster, p.canary, p.canaryPods)
	}
	if !slices.Equal(p.revisions, revisions) || p.deployedRevNum != revisions[len(revisions)-1] {
		pc.t.Errorf("%s: Helm revisions %v (deployed %d), want %v with the last deployed", cluster, p.revisions, p.deployedRevNum, revisions)
	}
}

// wantAborted waits for run's result: a failure of type typ that says contains,
// the promotion in stage, and every production cluster still on stable at its
// first revision.
func (pc *promotionCase) wantAborted(run client.WorkflowRun, timeout time.Duration, stage, stable, typ string, contains ...string) {
	pc.t.Helper()
	st, err := pc.result(run, timeout)
	wantFailure(pc.t, err, typ, contains...)
	if st.Stage != stage {
		pc.t.Errorf("stage %s, want %s", st.Stage, stage)
	}
	for _, cl := range pc.prod {
		pc.wantStable(cl.Name, stable, []int{1})
	}
}

func wantFailure(t *testing.T, err error, typ string, contains ...string) {
	t.Helper()
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != typ {
		t.Fatalf("promotion error %v, want an application error %s", err, typ)
	}
	for _, s := range contains {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("promotion error does not say %q:\n%v", s, err)
		}
	}
}

func clusterState(st promotions.PromotionStatus, name string) promotions.ClusterProgress {
	for _, c := range st.Clusters {
		if c.Name == name {
			return c
		}
	}
	return promotions.ClusterProgress{}
}
