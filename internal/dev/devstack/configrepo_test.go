package devstack

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/promote"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// TestSampleConfigRepoIsValidAndKept makes the sample configuration registry,
// reads hello's plan from it with the PromotionConfig activity, and checks that a
// second `dev up` keeps a local edit.
func TestSampleConfigRepoIsValidAndKept(t *testing.T) {
	ctx := context.Background()
	s, err := newStack(Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	// The sample promotes to the stack's clusters, in its configuration's order.
	clusters := s.productionClusters()
	if err := s.makeConfigRepo(ctx); err != nil {
		t.Fatal(err)
	}
	if err := configRepoComponent().ready(ctx, s); err != nil {
		t.Fatal(err)
	}

	// The activity needs kubeconfigs to read, not clusters to reach.
	var cfg config.Config
	cfg.StateDir = t.TempDir()
	cfg.Promotion.ConfigRepo = s.configRepoPath()
	for _, name := range clusters {
		kc := clientcmdapi.NewConfig()
		kc.Clusters[name] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:1"}
		kc.Contexts[name] = &clientcmdapi.Context{Cluster: name}
		kc.CurrentContext = name
		path := filepath.Join(cfg.StateDir, name+".kubeconfig")
		if err := clientcmd.WriteToFile(*kc, path); err != nil {
			t.Fatal(err)
		}
		cfg.Promotion.Clusters = append(cfg.Promotion.Clusters, config.Cluster{Name: name, Kubeconfig: path, Simulated: name == "codfw"})
	}
	acts, err := promote.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out, err := acts.PromotionConfig(ctx, contract.PromotionConfigInput{Service: "hello"})
	if err != nil {
		t.Fatalf("the sample plan of hello is invalid: %v", err)
	}
	if len(out.Plan.Production) != len(clusters) || out.Plan.Replicas != 4 || len(out.Plan.Approvers) == 0 {
		t.Errorf("plan %+v, want every cluster of %v, 4 replicas and approvers", out.Plan, clusters)
	}
	if !strings.Contains(out.Plan.Staging.Values, "ENVIRONMENT: staging") || !strings.Contains(out.Plan.Production[0].Values, "ENVIRONMENT: production") {
		t.Errorf("staging values:\n%s\nproduction values:\n%s", out.Plan.Staging.Values, out.Plan.Production[0].Values)
	}

	edited := filepath.Join(s.configRepoPath(), "services", "hello", "values.yaml")
	if err := os.WriteFile(edited, []byte("# mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.makeConfigRepo(ctx); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(edited); string(b) != "# mine\n" {
		t.Errorf("a second dev up changed an edited file: %q", b)
	}
}
