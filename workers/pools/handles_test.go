package pools_test

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/wikimedia/conveyor/workers/pools"
	"github.com/wikimedia/conveyor/workflows"
	"github.com/wikimedia/conveyor/workflows/all"
)

// handle is one contract.Activity value as the contract's source declares it.
type handle struct{ name, in, out string }

// contractHandles reads activities/contract for its contract.Activity[In, Out]
// values: the compiler checks each call against them, this test checks them
// against the implementations.
func contractHandles(t *testing.T) []handle {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "activities", "contract", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no contract sources: %v", err)
	}
	var hs []handle
	fset := token.NewFileSet()
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			idx, ok := lit.Type.(*ast.IndexListExpr)
			if !ok || len(idx.Indices) != 2 {
				return true
			}
			if id, ok := idx.X.(*ast.Ident); !ok || id.Name != "Activity" {
				return true
			}
			h := handle{in: idx.Indices[0].(*ast.Ident).Name, out: idx.Indices[1].(*ast.Ident).Name}
			for _, e := range lit.Elts {
				if kv, ok := e.(*ast.KeyValueExpr); ok && kv.Key.(*ast.Ident).Name == "Name" {
					h.name = strings.Trim(kv.Value.(*ast.BasicLit).Value, `"`)
				}
			}
			hs = append(hs, h)
			return true
		})
	}
	return hs
}

// TestEveryHandleMatchesItsImplementation: each activity handle names a method
// that some pool registers, taking the handle's input and returning its output
// (or only an error, for contract.Nothing).
func TestEveryHandleMatchesItsImplementation(t *testing.T) {
	methods := map[string]reflect.Type{}
	for _, p := range workflows.Pools {
		s, err := pools.For(context.Background(), p, deps(t, p))
		if err != nil {
			t.Fatalf("For(%s): %v", p, err)
		}
		defer s.Close()
		for _, a := range s.Activities {
			typ := reflect.TypeOf(a)
			for i := range typ.NumMethod() {
				methods[typ.Method(i).Name] = typ.Method(i).Type
			}
		}
	}
	hs := contractHandles(t)
	if len(hs) < 30 {
		t.Fatalf("found %d handles in the contract, want the thirty-odd activities", len(hs))
	}
	for _, h := range hs {
		m, ok := methods[h.name]
		if !ok {
			t.Errorf("contract handle %s: no pool registers an activity of that name", h.name)
			continue
		}
		// m's first argument is the receiver, then ctx and the input.
		if m.NumIn() != 3 || m.In(2).Name() != h.in {
			t.Errorf("activity %s takes %v, its handle says %s", h.name, m, h.in)
		}
		switch {
		case h.out == "Nothing" && m.NumOut() == 1:
		case m.NumOut() == 2 && m.Out(0).Name() == h.out:
		default:
			t.Errorf("activity %s returns %v, its handle says %s", h.name, m, h.out)
		}
	}
}

// TestWorkflowTypeNames: Temporal registers a workflow under its function's name,
// whatever package holds it; the recorded histories, the schedules and the running
// workflows know these names, so renaming one breaks them.
func TestWorkflowTypeNames(t *testing.T) {
	var got []string
	for _, w := range all.Workflows() {
		name := runtime.FuncForPC(reflect.ValueOf(w).Pointer()).Name()
		got = append(got, name[strings.LastIndex(name, ".")+1:])
	}
	slices.Sort(got)
	want := []string{"BaseImageCheck", "ChangeVerification", "Cleanup", "CloudMigration", "MergeBatcher", "MigrationStage",
		"Ping", "Pipeline", "ProjectMigration", "ProjectsMigration", "Promotion", "TestBattery", "VMMigration"}
	if !slices.Equal(got, want) {
		t.Errorf("workflow type names\n got %q\nwant %q", got, want)
	}
}
