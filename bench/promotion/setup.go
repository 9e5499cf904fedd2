package main

// What the benchmark prepares and removes: the images, its configuration registry,
// the in-process worker and the service's release.

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"go.temporal.io/sdk/worker"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wikimedia/conveyor/activities/buildkit"
	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/internal/dev/gittest"
	"github.com/wikimedia/conveyor/workers/pools"
	"github.com/wikimedia/conveyor/workflows"
)

// buildImages builds and pushes hello v1 and v2 (another greeting) as the
// service's published images.
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
			// The service's own repository with a -production tag, as the
			// pipeline publishes: only such an image is promoted.
			Push: b.service + ":" + tag + "-production",
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
  limits: {cpu: 500m, memory: 256Mi}
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
	set.Register(w, false)
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
