package pools_test

import (
	"context"
	"reflect"
	"runtime"
	"slices"
	"testing"

	"github.com/wikimedia/conveyor/activities/health"
	"github.com/wikimedia/conveyor/workers/pools"
	"github.com/wikimedia/conveyor/workflows"
)

func funcName(f any) string { return runtime.FuncForPC(reflect.ValueOf(f).Pointer()).Name() }

func TestEveryWorkflowRunsOnSomePool(t *testing.T) {
	var registered []string
	for _, e := range pools.Registry {
		for _, w := range e.Workflows {
			registered = append(registered, funcName(w))
		}
	}
	for _, w := range workflows.All() {
		if !slices.Contains(registered, funcName(w)) {
			t.Errorf("workflow %s is in workflows.All but on no pool: add it to pools.Registry", funcName(w))
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

func TestEveryPoolAnswersPings(t *testing.T) {
	for _, p := range workflows.Pools {
		s, err := pools.For(context.Background(), p, pools.Deps{Pool: p, Identity: "id-" + p})
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

func TestForRejectsAnUnknownPool(t *testing.T) {
	if _, err := pools.For(context.Background(), "nope", pools.Deps{}); err == nil {
		t.Fatal("For accepted an unknown pool")
	}
}
