package launch

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// gatewayMethods are the client.Client methods that reach a workflow: outside
// this package, the client side calls launch instead.
var gatewayMethods = []string{"ExecuteWorkflow", "SignalWorkflow", "SignalWithStartWorkflow", "UpdateWorkflow", "QueryWorkflow"}

// gatewayRoots are the client-side trees, relative to this package, that must
// go through launch.
var gatewayRoots = []string{"..", filepath.Join("..", "..", "..", "starter")}

// TestLaunchIsTheOneGateway fails when code of starter/ or internal/client/ other
// than this package (tests aside, which may drive a workflow directly to observe
// it) calls or takes one of gatewayMethods: workflow ids, id policies, task queues
// and search attributes are then defined here only.
func TestLaunchIsTheOneGateway(t *testing.T) {
	self, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	for _, root := range gatewayRoots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				abs, err := filepath.Abs(path)
				if err != nil {
					return err
				}
				if abs == self || d.Name() == "testdata" {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			files++
			for _, v := range gatewayViolations(t, path) {
				t.Errorf("%s: calls %s directly: go through internal/client/launch (a start function, Signal, Query or Update)", v.pos, v.method)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if files < 10 {
		t.Fatalf("read only %d files under %v: has the tree moved?", files, gatewayRoots)
	}
}

type violation struct {
	pos    token.Position
	method string
}

func gatewayViolations(t *testing.T, path string) []violation {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var out []violation
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok && slices.Contains(gatewayMethods, sel.Sel.Name) {
			out = append(out, violation{fset.Position(sel.Sel.Pos()), sel.Sel.Name})
		}
		return true
	})
	return out
}
