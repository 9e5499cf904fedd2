// Command promotion times the production part of a staged promotion — from the
// approval at the gate until the new image is the stable release, at 100 %, in
// both production clusters (eqiad with real pods, codfw simulated by kwok) —
// through workflows.Promotion on a real worker, and divides it by a plain
// `helm upgrade --wait` of the same release to the same image in the same
// clusters, one cluster after the other as the promotion goes. The target is
// promotion / helm ≤ 1.2.
//
//	make up && tools/build.sh helm && go run ./bench/promotion -runs 3
//
// It builds two images of examples/hello (v1 and v2) with the pipeline's BuildKit
// code, writes a configuration registry of its own with a plan for a fresh
// service (-steps, -replicas), and runs the deploy pool's worker in-process in a
// Temporal namespace of its own. Before each timed side the service's stable
// release is put back on v1 (untimed); each side then moves it to v2. The sides
// alternate which goes first.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wikimedia/conveyor/activities/buildkit"
	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/promote"
	"github.com/wikimedia/conveyor/charts"
	"github.com/wikimedia/conveyor/internal/client/launch"
	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/internal/dev/gittest"
	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/workers/pools"
	"github.com/wikimedia/conveyor/workflows"
)

// benchNamespace is the Temporal namespace the benchmark's worker serves, so that
// no other worker (with another configuration registry) takes its tasks.
const benchNamespace = "conveyor-promotion-bench"

type options struct {
	runs     int
	replicas int
	steps    string
	stateDir string
	keep     bool
	verbose  bool
}

func main() {
	var o options
	flag.IntVar(&o.runs, "runs", 3, "number of runs of each side")
	flag.IntVar(&o.replicas, "replicas", 4, "pods of the service in each production cluster (the plan's replicas)")
	flag.StringVar(&o.steps, "steps", "[{weight: 100}]",
		"the plan's canary steps (YAML), e.g. '[{weight: 25}, {weight: 50}, {weight: 100}]'; pauses are the plan's policy, not overhead, so leave them out")
	flag.StringVar(&o.stateDir, "state-dir", config.DefaultStateDir, "the local stack's state directory")
	flag.BoolVar(&o.keep, "keep", false, "keep the service's namespaces in the clusters afterwards")
	flag.BoolVar(&o.verbose, "v", false, "print where each side spends its time")
	flag.Parse()
	log.SetFlags(0)
	if err := run(o); err != nil {
		log.Fatalf("bench: %v", err)
	}
}

// bench is one benchmark's service, worker and clusters.
type bench struct {
	o        options
	cfg      config.Config
	service  string
	v1, v2   string
	helm     string
	chartDir string
	c        client.Client
	acts     *promote.Activities
	plan     contract.PromotionPlan
	kube     map[string]kubernetes.Interface
	kcfg     map[string]string // cluster -> kubeconfig
}

func run(o options) error {
	if o.runs < 1 || o.replicas < 1 {
		return fmt.Errorf("-runs %d and -replicas %d must be at least 1", o.runs, o.replicas)
	}
	cfg, err := config.Load(filepath.Join(o.stateDir, config.FileName), true)
	if err != nil {
		return fmt.Errorf("%v (run `make up` first)", err)
	}
	b := &bench{o: o, cfg: cfg, service: "bench-" + randomHex(3), kube: map[string]kubernetes.Interface{}, kcfg: map[string]string{}}
	if len(cfg.Promotion.Clusters) < 2 {
		return fmt.Errorf("promotion.clusters in %s lists %d clusters; the benchmark wants eqiad and codfw (`make up` starts both)", o.stateDir, len(cfg.Promotion.Clusters))
	}
	for _, cl := range cfg.Promotion.Clusters {
		rc, err := clientcmd.BuildConfigFromFlags("", cl.Kubeconfig)
		if err != nil {
			return fmt.Errorf("cluster %s: %v", cl.Name, err)
		}
		if b.kube[cl.Name], err = kubernetes.NewForConfig(rc); err != nil {
			return err
		}
		b.kcfg[cl.Name] = cl.Kubeconfig
	}
	out, err := exec.Command("tools/build.sh", "--print-dir", "helm").Output()
	if err != nil {
		return fmt.Errorf("tools/build.sh --print-dir helm (run from the source tree): %v", err)
	}
	b.helm = filepath.Join(strings.TrimSpace(string(out)), "helm")
	if _, err := os.Stat(b.helm); err != nil {
		return fmt.Errorf("%s missing: run `tools/build.sh helm`", b.helm)
	}
	tmp, err := os.MkdirTemp("", "bench-promotion-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// The raw side upgrades with the chart the activities use.
	if b.chartDir, err = charts.ExtractService(filepath.Join(tmp, "charts")); err != nil {
		return err
	}

	ctx := context.Background()
	log.Printf("building hello v1 and v2")
	if err := b.buildImages(ctx); err != nil {
		return err
	}
	repo := filepath.Join(tmp, "registry")
	if err := b.writeRegistry(repo); err != nil {
		return err
	}
	b.cfg.Promotion.ConfigRepo = repo
	b.cfg.Temporal.Namespace = benchNamespace
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := ensureNamespace(ctx, b.cfg.Temporal, logger); err != nil {
		return err
	}
	if b.c, err = temporalclient.Dial(ctx, b.cfg.Temporal, logger); err != nil {
		return fmt.Errorf("Temporal (make up): %w", err)
	}
	defer b.c.Close()
	stop, err := b.startWorker(ctx, logger)
	if err != nil {
		return err
	}
	defer stop()
	if !o.keep {
		defer b.cleanup()
	}
	if b.acts, err = promote.New(b.cfg); err != nil {
		return err
	}
	cfgOut, err := b.acts.PromotionConfig(ctx, contract.PromotionConfigInput{Service: b.service})
	if err != nil {
		return err
	}
	b.plan = cfgOut.Plan

	var conv, raw []timing
	for i := range o.runs {
		sides := []struct {
			name string
			f    func(context.Context) (timing, error)
		}{{"promotion", b.promotion}, {"helm", b.helmUpgrade}}
		if i%2 == 1 {
			slices.Reverse(sides)
		}
		var d [2]timing
		for j, side := range sides {
			if err := b.reset(ctx); err != nil {
				return fmt.Errorf("run %d: putting the stable release back on v1: %w", i+1, err)
			}
			if d[j], err = b.timed(ctx, side.f); err != nil {
				return fmt.Errorf("run %d, %s: %w", i+1, side.name, err)
			}
			if err := b.check(ctx, b.v2); err != nil {
				return fmt.Errorf("run %d, %s: %w", i+1, side.name, err)
			}
			log.Printf("run %d: %-9s all traffic on v2 after %5.1fs, done after %5.1fs", i+1, side.name, d[j].serving.Seconds(), d[j].done.Seconds())
		}
		if sides[0].name == "helm" {
			d[0], d[1] = d[1], d[0]
		}
		conv, raw = append(conv, d[0]), append(raw, d[1])
	}
	fmt.Printf("\npromotion of %s to v2 in %s, %d replicas each, steps %s; times from the approval (promotion) or the start (helm):\n",
		b.service, strings.Join(clusterNames(b.plan.Production), " then "), o.replicas, o.steps)
	fmt.Printf("%-6s | %10s %10s | %10s %10s | %14s %10s\n", "run", "promo 100%", "promo done", "helm 100%", "helm done", "100%/helm done", "done/done")
	row := func(name string, c, r timing) float64 {
		ratio := c.serving.Seconds() / r.done.Seconds()
		fmt.Printf("%-6s | %9.1fs %9.1fs | %9.1fs %9.1fs | %14.2f %10.2f\n", name, c.serving.Seconds(), c.done.Seconds(),
			r.serving.Seconds(), r.done.Seconds(), ratio, c.done.Seconds()/r.done.Seconds())
		return ratio
	}
	for i := range conv {
		row(fmt.Sprint(i+1), conv[i], raw[i])
	}
	ratio := row("median", medianTiming(conv), medianTiming(raw))
	fmt.Printf("approval -> 100 %% of production traffic on the new image, divided by helm upgrade --wait: %.2f (target <= 1.2: %s)\n",
		ratio, map[bool]string{true: "met", false: "NOT met"}[ratio <= 1.2])
	return nil
}

// timing is one side's run: when every pod serving the Service in every
// production cluster ran the new image (serving), and when the side finished
// (done): the promotion completed, or the last helm upgrade --wait returned.
type timing struct {
	serving, done time.Duration
	start         time.Time
}

// timed runs a side while watching the clusters for the moment all production
// traffic goes to v2; the side returns its own start and end.
func (b *bench) timed(ctx context.Context, side func(context.Context) (timing, error)) (timing, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	at := make(chan time.Time, 1)
	go func() {
		for wctx.Err() == nil {
			if ok, err := b.allServing(wctx, b.v2); err == nil && ok {
				at <- time.Now()
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	t, err := side(ctx)
	if err != nil {
		return t, err
	}
	select {
	case when := <-at:
		t.serving = when.Sub(t.start)
	case <-time.After(2 * time.Minute):
		return t, fmt.Errorf("not all production traffic went to %s within 2m of the side's end", b.v2)
	}
	return t, nil
}

// buildImages builds and pushes hello v1 and v2 (another greeting).
func (b *bench) buildImages(ctx context.Context) error {
	bk, err := buildkit.New(ctx, b.cfg)
	if err != nil {
		return fmt.Errorf("buildkitd (make up): %w", err)
	}
	defer bk.Close()
	build := func(tag, greeting string) (string, error) {
		dir, err := os.MkdirTemp("", "bench-promotion-hello-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(dir)
		if out, err := exec.Command("cp", "-a", "examples/hello/.", dir).CombinedOutput(); err != nil {
			return "", fmt.Errorf("copying examples/hello (run from the source tree): %v: %s", err, out)
		}
		p := filepath.Join(dir, "www", "cgi-bin", "hello")
		src, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(p, []byte(strings.Replace(string(src), "greeting=hello", "greeting="+greeting, 1)), 0o755); err != nil {
			return "", err
		}
		commit, err := gittest.CommitAll(context.Background(), dir, "bench")
		if err != nil {
			return "", err
		}
		out, err := bk.BuildVariant(ctx, contract.BuildVariantInput{
			Source: contract.Source{Repo: dir, Commit: commit}, Blubber: ".pipeline/blubber.yaml", Variant: "production",
			Push: "bench-promotion/hello:" + tag,
		})
		if err != nil {
			return "", fmt.Errorf("building hello %s: %w", tag, err)
		}
		return out.Ref, nil
	}
	if b.v1, err = build("v1", "hello"); err != nil {
		return err
	}
	b.v2, err = build("v2", "hi")
	return err
}

// writeRegistry makes a configuration registry with the benchmark's plan.
func (b *bench) writeRegistry(dir string) error {
	var prod strings.Builder
	for _, cl := range b.cfg.Promotion.Clusters {
		fmt.Fprintf(&prod, "  - {cluster: %s, namespace: %s}\n", cl.Name, b.service)
	}
	svc := filepath.Join(dir, "services", b.service)
	files := map[string]string{
		"promotion.yaml": fmt.Sprintf(`staging: {cluster: %s, namespace: %s-staging}
production:
%sreplicas: %d
steps: %s
analysis:
  requests: 20
  path: /cgi-bin/hello?name=canary
  maxErrorRatio: 0.05
  maxLatencyP95: 2s
smokePath: /cgi-bin/hello?name=staging
approvers: [bench]
reminderEvery: 1h
historyMax: 3
`, b.cfg.Promotion.Clusters[0].Name, b.service, prod.String(), b.o.replicas, b.o.steps),
		"values.yaml": `containerPort: 8080
service: {port: 8080}
probes:
  readiness: {path: /cgi-bin/healthz, periodSeconds: 1}
  liveness: {path: /cgi-bin/healthz}
test: {enabled: false}
resources:
  requests: {cpu: 10m, memory: 16Mi}
  limits: {cpu: 200m, memory: 64Mi}
`,
	}
	if err := os.MkdirAll(svc, 0o755); err != nil {
		return err
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(svc, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	_, err := gittest.CommitAll(context.Background(), dir, "bench")
	return err
}

// startWorker runs the deploy pool's worker (the Promotion workflow and its
// activities) in this process, in the benchmark's namespace.
func (b *bench) startWorker(ctx context.Context, logger *slog.Logger) (func(), error) {
	set, err := pools.For(ctx, workflows.PoolDeploy, pools.Deps{Pool: workflows.PoolDeploy, Identity: "bench-promotion", Config: b.cfg, Logger: logger})
	if err != nil {
		return nil, err
	}
	w := worker.New(b.c, workflows.TaskQueue(workflows.PoolDeploy), worker.Options{})
	set.Register(w)
	if err := w.Start(); err != nil {
		_ = set.Close()
		return nil, fmt.Errorf("starting the worker: %w", err)
	}
	return func() { w.Stop(); _ = set.Close() }, nil
}

// reset puts the stable release back on v1 with the plan's replicas and no
// canary, in every production cluster, and waits until it is ready (untimed).
func (b *bench) reset(ctx context.Context) error {
	for _, t := range b.plan.Production {
		rel := contract.ServiceRelease{Target: t, Service: b.service}
		if _, err := b.acts.PromotionDeploy(ctx, contract.PromotionDeployInput{ServiceRelease: rel, Image: b.v1, Replicas: b.o.replicas, HistoryMax: b.plan.HistoryMax}); err != nil {
			return err
		}
		if err := b.acts.CanaryRemove(ctx, contract.CanaryRemoveInput{ServiceRelease: rel, StableReplicas: b.o.replicas}); err != nil {
			return err
		}
	}
	return b.check(ctx, b.v1)
}

// promotion starts a promotion of v2, lets it pass staging, and times it from the
// approval until it completes: the new image is the stable release with every pod
// ready, and the canary removed, in every production cluster.
func (b *bench) promotion(ctx context.Context) (timing, error) {
	run, err := launch.Promotion(ctx, b.c, workflows.PromotionInput{Service: b.service, Image: b.v2})
	if err != nil {
		return timing{}, err
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		st, err := launch.PromotionStatus(ctx, b.c, run.GetID(), run.GetRunID())
		if err == nil && st.Stage == workflows.PromotionStageGate {
			break
		}
		if err == nil && st.Error != "" {
			return timing{}, fmt.Errorf("the promotion failed before its gate: %s", st.Error)
		}
		if time.Now().After(deadline) {
			return timing{}, fmt.Errorf("the promotion is not at its gate after 5m (stage %q, %v)", st.Stage, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	start := time.Now()
	if _, err := launch.PromotionDecide(ctx, b.c, run.GetID(), workflows.PromoteApprove, workflows.PromotionDecision{Approver: "bench", Reason: "benchmark"}); err != nil {
		return timing{}, err
	}
	var st workflows.PromotionStatus
	if err := run.Get(ctx, &st); err != nil {
		return timing{}, fmt.Errorf("the promotion failed: %w", err)
	}
	d := time.Since(start)
	if st.Stage != workflows.PromotionStagePromoted {
		return timing{}, fmt.Errorf("the promotion ended at stage %q, want %q", st.Stage, workflows.PromotionStagePromoted)
	}
	if b.o.verbose {
		for _, e := range st.Events {
			if !e.At.Before(start.Add(-time.Second)) {
				log.Printf("  promotion %+6.1fs %s", e.At.Sub(start).Seconds(), e.Message)
			}
		}
	}
	return timing{done: d, start: start}, nil
}

// helmUpgrade times `helm upgrade --wait` of the stable release to v2 in each
// production cluster, one after the other, with the release's own values (only
// the image changes).
func (b *bench) helmUpgrade(ctx context.Context) (timing, error) {
	repo, digest, ok := strings.Cut(b.v2, "@")
	if !ok {
		return timing{}, fmt.Errorf("image %s has no digest", b.v2)
	}
	start := time.Now()
	for _, t := range b.plan.Production {
		cmd := exec.CommandContext(ctx, b.helm, "upgrade", b.service, b.chartDir,
			"--kubeconfig", b.kcfg[t.Cluster], "--namespace", t.Namespace,
			"--reuse-values", "--set", "image.repository="+repo, "--set", "image.digest="+digest,
			"--history-max", fmt.Sprint(b.plan.HistoryMax), "--wait", "--timeout", "5m")
		if out, err := cmd.CombinedOutput(); err != nil {
			return timing{}, fmt.Errorf("helm upgrade in %s: %v: %s", t.Cluster, err, out)
		}
		if b.o.verbose {
			log.Printf("  helm      %+6.1fs %s upgraded", time.Since(start).Seconds(), t.Cluster)
		}
	}
	return timing{done: time.Since(start), start: start}, nil
}

// allServing says whether, in every production cluster, the pods behind the
// service's ready endpoints are at least the plan's replicas and all run image.
func (b *bench) allServing(ctx context.Context, image string) (bool, error) {
	for _, t := range b.plan.Production {
		kube := b.kube[t.Cluster]
		eps, err := kube.DiscoveryV1().EndpointSlices(t.Namespace).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + b.service})
		if err != nil {
			return false, err
		}
		pods, err := kube.CoreV1().Pods(t.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		images := map[string]string{}
		for _, p := range pods.Items {
			images[p.Name] = p.Spec.Containers[0].Image
		}
		n := 0
		for _, s := range eps.Items {
			for _, e := range s.Endpoints {
				if e.Conditions.Ready == nil || !*e.Conditions.Ready {
					continue
				}
				if e.TargetRef == nil || images[e.TargetRef.Name] != image {
					return false, nil
				}
				n++
			}
		}
		if n < b.o.replicas {
			return false, nil
		}
	}
	return true, nil
}

// check waits until every production cluster's stable Deployment runs image with
// all its replicas ready and no other pod is left: what both sides must end at,
// and the settled state each starts from.
func (b *bench) check(ctx context.Context, image string) error {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		err := b.checkOnce(ctx, image)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (b *bench) checkOnce(ctx context.Context, image string) error {
	for _, t := range b.plan.Production {
		kube := b.kube[t.Cluster]
		d, err := kube.AppsV1().Deployments(t.Namespace).Get(ctx, b.service+"-stable", metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("%s: %w", t.Cluster, err)
		}
		st, want := d.Status, int32(b.o.replicas)
		if got := d.Spec.Template.Spec.Containers[0].Image; got != image {
			return fmt.Errorf("%s: the stable Deployment runs %s, want %s", t.Cluster, got, image)
		}
		if st.ObservedGeneration < d.Generation || st.UpdatedReplicas != want || st.ReadyReplicas != want || st.Replicas != want {
			return fmt.Errorf("%s: %d updated, %d ready of %d pods, want %d", t.Cluster, st.UpdatedReplicas, st.ReadyReplicas, st.Replicas, want)
		}
		pods, err := kube.CoreV1().Pods(t.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		// Settled: no canary, and no pod of an earlier rollout still terminating
		// (busybox's httpd ignores SIGTERM), which a side would otherwise wait for.
		for _, p := range pods.Items {
			if p.Labels["track"] == "canary" || p.DeletionTimestamp != nil || p.Spec.Containers[0].Image != image {
				return fmt.Errorf("%s: pod %s (track %s, image %s) is left over", t.Cluster, p.Name, p.Labels["track"], p.Spec.Containers[0].Image)
			}
		}
	}
	return nil
}

// cleanup deletes the service's namespaces.
func (b *bench) cleanup() {
	for name, kube := range b.kube {
		for _, ns := range []string{b.service, b.service + "-staging"} {
			if err := kube.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}); err != nil && !strings.Contains(err.Error(), "not found") {
				log.Printf("deleting namespace %s in %s: %v", ns, name, err)
			}
		}
	}
}

// ensureNamespace registers the benchmark's Temporal namespace with conveyor's
// search attributes, once.
func ensureNamespace(ctx context.Context, t config.Temporal, logger *slog.Logger) error {
	t.Namespace = "default"
	c, err := temporalclient.Dial(ctx, t, logger)
	if err != nil {
		return fmt.Errorf("Temporal (make up): %w", err)
	}
	defer c.Close()
	return temporalclient.EnsureNamespace(ctx, c, benchNamespace, "conveyor's promotion benchmark")
}

func clusterNames(ts []contract.Target) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Cluster)
	}
	return out
}

func medianTiming(ts []timing) timing {
	var s, d []time.Duration
	for _, t := range ts {
		s, d = append(s, t.serving), append(d, t.done)
	}
	return timing{serving: median(s), done: median(d)}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
