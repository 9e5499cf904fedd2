package workflows_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestActivitiesAreCalledThroughTheirHandles keeps every activity call typed: a
// workflow starts an activity with workflows.Execute and a contract.Activity handle,
// never with workflow.ExecuteActivity and a name, whose payloads the compiler
// cannot check.
func TestActivitiesAreCalledThroughTheirHandles(t *testing.T) {
	var files []string
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if f == "activity.go" {
			continue // Execute itself
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == "workflow" &&
				(sel.Sel.Name == "ExecuteActivity" || sel.Sel.Name == "ExecuteLocalActivity") {
				t.Errorf("%s: workflow.%s: call the activity through its contract handle with workflows.Execute", fset.Position(sel.Pos()), sel.Sel.Name)
			}
			return true
		})
	}
}

// TestContractImportsOnlyTheStandardLibrary keeps activities/contract the vocabulary
// that workflows, activities and libraries can all import without dragging in
// Temporal or a client library.
func TestContractImportsOnlyTheStandardLibrary(t *testing.T) {
	for _, p := range goList(t, module+"/activities/contract") {
		for _, i := range p.Imports {
			if first, _, _ := strings.Cut(i, "/"); strings.Contains(first, ".") {
				t.Errorf("%s imports %s: the contract may import only the standard library", p.ImportPath, i)
			}
		}
	}
}
