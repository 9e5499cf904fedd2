package pools_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"testing"

	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/workflows/all"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/health"
	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/workers/pools"
	"github.com/wikimedia/conveyor/workflows"
	"github.com/wikimedia/conveyor/workflows/changes"
	"github.com/wikimedia/conveyor/workflows/migrations"
	"github.com/wikimedia/conveyor/workflows/promotions"
)

func funcName(f any) string { return runtime.FuncForPC(reflect.ValueOf(f).Pointer()).Name() }

func TestEveryWorkflowRunsOnSomePool(t *testing.T) {
	var registered []string
	for _, e := range pools.Registry {
		for _, w := range e.Workflows {
			registered = append(registered, funcName(w))
		}
	}
	for _, w := range all.Workflows() {
		if !slices.Contains(registered, funcName(w)) {
			t.Errorf("workflow %s is in all.Workflows but on no pool: add it to pools.Registry", funcName(w))
		}
	}
}

func TestRegistryNamesOnlyKnownPools(t *testing.T) {
	for i, e := range pools.Registry {
		if len(e.Pools) == 0 {
			t.Errorf("Registry[%d] runs on no pool", i)
		}
		for _, p := range e.Pools {
			if workflows.TaskQueue(p) == "" {
				t.Errorf("Registry[%d] names unknown pool %q", i, p)
			}
		}
	}
}

// deps is what a worker of pool would pass; nothing here contacts the systems.
func deps(t *testing.T, pool string) pools.Deps {
	cfg := config.Defaults()
	cfg.StateDir = t.TempDir()
	cfg.Buildkit.Address = "unix://" + filepath.Join(cfg.StateDir, "buildkitd.sock")
	cfg.Kubernetes.Kubeconfig = filepath.Join(cfg.StateDir, "kubeconfig")
	kc := "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n" +
		"users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n"
	if err := os.WriteFile(cfg.Kubernetes.Kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return pools.Deps{Pool: pool, Identity: "id-" + pool, Config: cfg}
}

func TestEveryPoolAnswersPings(t *testing.T) {
	for _, p := range workflows.Pools {
		s, err := pools.For(context.Background(), p, deps(t, p))
		if err != nil {
			t.Fatalf("For(%s): %v", p, err)
		}
		var found bool
		for _, a := range s.Activities {
			if h, ok := a.(*health.Activities); ok {
				found = true
				if h.Pool != p || h.Identity != "id-"+p {
					t.Errorf("pool %s got %+v", p, h)
				}
			}
		}
		if !found {
			t.Errorf("pool %s registers no *health.Activities", p)
		}
	}
}

// TestPoolsServeTheContractActivities checks that each activity the workflows call
// by name is registered on the pool they call it on, by exactly one struct.
func TestPoolsServeTheContractActivities(t *testing.T) {
	want := map[string][]string{
		workflows.PoolBuild:  {contract.PrepareSource.Name, contract.BuildVariant.Name, contract.RunTests.Name, contract.PublishImage.Name},
		workflows.PoolDeploy: {contract.DeployCandidate.Name, contract.HelmTest.Name, contract.RunE2E.Name, contract.Teardown.Name},
	}
	for pool, names := range want {
		s, err := pools.For(context.Background(), pool, deps(t, pool))
		if err != nil {
			t.Fatalf("For(%s): %v", pool, err)
		}
		defer s.Close()
		count := map[string]int{}
		for _, a := range s.Activities {
			typ := reflect.TypeOf(a)
			for i := range typ.NumMethod() {
				count[typ.Method(i).Name]++
			}
		}
		for name, n := range count {
			if n > 1 && name != "Close" {
				t.Errorf("pool %s: activity %s is registered by %d structs", pool, name, n)
			}
		}
		for _, name := range names {
			if count[name] != 1 {
				t.Errorf("pool %s does not serve activity %s", pool, name)
			}
		}
	}
}

func TestForRejectsAnUnknownPool(t *testing.T) {
	if _, err := pools.For(context.Background(), "nope", pools.Deps{}); err == nil {
		t.Fatal("For accepted an unknown pool")
	}
}

// TestVersioningBehaviors: the months-long workflows upgrade with the worker
// build (their changes go behind GetVersion), every other one is pinned to the
// build it started on.
func TestVersioningBehaviors(t *testing.T) {
	upgrade := map[string]bool{}
	for _, w := range pools.AutoUpgrade {
		upgrade[funcName(w)] = true
	}
	for _, w := range all.Workflows() {
		want := workflow.VersioningBehaviorPinned
		if upgrade[funcName(w)] {
			want = workflow.VersioningBehaviorAutoUpgrade
		}
		if got := pools.Behavior(w); got != want {
			t.Errorf("%s: behavior %v, want %v", funcName(w), got, want)
		}
	}
	for _, w := range []any{changes.Pipeline, changes.ChangeVerification, promotions.Promotion, workflows.Ping} {
		if pools.Behavior(w) != workflow.VersioningBehaviorPinned {
			t.Errorf("%s is not Pinned: a new build would take it over half-way", funcName(w))
		}
	}
	for _, w := range []any{migrations.CloudMigration, migrations.VMMigration, changes.MergeBatcher} {
		if pools.Behavior(w) != workflow.VersioningBehaviorAutoUpgrade {
			t.Errorf("%s is not AutoUpgrade: it would keep its first build running for months", funcName(w))
		}
	}
}
