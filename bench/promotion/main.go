// Command promotion times the production part of a staged promotion — from the
// approval at the gate until the new image is the stable release, at 100 %, in
// both production clusters (eqiad with real pods, codfw simulated by kwok) —
// through promotions.Promotion on a real worker, and divides it by a plain
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
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/promote"
	"github.com/wikimedia/conveyor/charts"
	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/internal/client/temporalsetup"
	"github.com/wikimedia/conveyor/internal/lib/config"
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

// ensureNamespace registers the benchmark's Temporal namespace with conveyor's
// search attributes, once.
func ensureNamespace(ctx context.Context, t config.Temporal, logger *slog.Logger) error {
	t.Namespace = "default"
	c, err := temporalclient.Dial(ctx, t, logger)
	if err != nil {
		return fmt.Errorf("Temporal (make up): %w", err)
	}
	defer c.Close()
	return temporalsetup.Register(ctx, c, temporalsetup.RegisterOptions{Namespace: benchNamespace, Description: "conveyor's promotion benchmark", Retention: 24 * time.Hour})
}
