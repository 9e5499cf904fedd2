package workflows_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// module is conveyor's module path.
const module = "github.com/wikimedia/conveyor"

// clientLibraries are the outside systems' client libraries: activities may use them,
// workflows may not, not even through another package.
var clientLibraries = []string{
	"github.com/moby/buildkit",
	"helm.sh/helm",
	"k8s.io/client-go",
	"github.com/gophercloud/gophercloud",
	"github.com/google/go-containerregistry",
}

// sideEffectPackages are standard packages whose use means I/O that belongs in an
// activity. The Temporal SDK itself uses net/http, so only conveyor's own packages in
// the workflows' dependencies are checked for them.
var sideEffectPackages = []string{"net/http", "os/exec"}

// goPackage is the part of `go list -json` this test reads.
type goPackage struct {
	ImportPath string
	Name       string
	Imports    []string
	Deps       []string
	Error      *struct{ Err string }
}

// goList runs `go list -json` with args and decodes the packages it prints.
func goList(t *testing.T, args ...string) []goPackage {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-e", "-json=ImportPath,Name,Imports,Deps,Error"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var pkgs []goPackage
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p goPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// importChain returns how from reaches to through the import graph, e.g.
// "a -> b -> c", or "" if it does not.
func importChain(graph map[string][]string, from, to string) string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == to {
			chain := []string{p}
			for q := prev[p]; q != ""; q = prev[q] {
				chain = append([]string{q}, chain...)
			}
			return strings.Join(chain, " -> ")
		}
		for _, i := range graph[p] {
			if _, seen := prev[i]; !seen {
				prev[i] = p
				queue = append(queue, i)
			}
		}
	}
	return ""
}

func hasPathPrefix(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// TestWorkflowsImportNoClientLibrary keeps workflows pure orchestration: every side
// effect goes through an activity, so no workflow package may depend on an outside
// system's client library, nor use net/http or os/exec in conveyor's own code.
func TestWorkflowsImportNoClientLibrary(t *testing.T) {
	pkgs := goList(t, "-deps", module+"/workflows/...")
	graph := map[string][]string{}
	var roots []string
	for _, p := range pkgs {
		if p.Error != nil {
			t.Errorf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
		graph[p.ImportPath] = p.Imports
		if hasPathPrefix(p.ImportPath, module+"/workflows") {
			roots = append(roots, p.ImportPath)
		}
	}
	if len(roots) == 0 {
		t.Fatal("go list found no workflows packages")
	}
	for _, p := range pkgs {
		for _, lib := range clientLibraries {
			if !hasPathPrefix(p.ImportPath, lib) {
				continue
			}
			for _, r := range roots {
				if c := importChain(graph, r, p.ImportPath); c != "" {
					t.Errorf("workflows must not depend on the client library %s (move the call into an activity): %s", lib, c)
				}
			}
		}
		if !hasPathPrefix(p.ImportPath, module) {
			continue
		}
		for _, i := range p.Imports {
			for _, bad := range sideEffectPackages {
				if i == bad {
					for _, r := range roots {
						if c := importChain(graph, r, p.ImportPath); c != "" {
							t.Errorf("workflows must not depend on %s (move the I/O into an activity): %s -> %s", bad, c, bad)
						}
					}
				}
			}
		}
	}
}

// TestNothingImportsAMain keeps the mains (the conveyor CLI, the workers) at the top
// of the import graph: what they share belongs in a library package.
func TestNothingImportsAMain(t *testing.T) {
	pkgs := goList(t, module+"/...")
	mains := map[string]bool{}
	for _, p := range pkgs {
		if p.Name == "main" {
			mains[p.ImportPath] = true
		}
	}
	for _, p := range pkgs {
		for _, i := range p.Imports {
			if mains[i] {
				t.Errorf("%s imports %s, a main package: move what it needs into a library package", p.ImportPath, i)
			}
		}
	}
}

// floor is one rule of the house: the packages under from may not depend, even
// indirectly, on the packages under any of to (but for those under allowed).
type floor struct {
	// exact makes from name packages, not trees.
	exact   bool
	from    []string
	to      []string
	allowed []string
	why     string
}

// floors are the layers of docs/architecture.md, from the bottom: libraries that
// know no Temporal (internal/lib), the activities' contract, activities, workflows
// (a core and one package per domain), client-side orchestration (internal/client),
// the mains; the development and test rig (internal/dev) beside them, for the
// `conveyor dev` verbs, the tests and the benchmarks only.
var floors = []floor{
	{from: []string{"internal/lib"}, to: []string{"workflows", "activities", "internal/client", "internal/dev", "go.temporal.io"},
		allowed: []string{"activities/contract"},
		why:     "a library knows no Temporal and no workflow: pass it what it needs"},
	{from: []string{"activities"}, to: []string{"workflows", "internal/client", "internal/dev"},
		why: "an activity serves the workflows through the contract, it does not call them"},
	{from: []string{"workflows"}, to: []string{"activities", "internal/client", "internal/dev"},
		allowed: []string{"activities/contract"},
		why:     "workflows reach the activities through their contract only"},
	{exact: true, from: []string{"workflows"}, to: []string{"workflows/changes", "workflows/promotions", "workflows/migrations", "workflows/all"},
		why: "the core (package workflows) is below the domains"},
	{from: []string{"workflows/promotions", "workflows/migrations"}, to: []string{"workflows/changes"},
		why: "only the change domain starts workflows of another domain (a promotion after a merge)"},
	{from: []string{"workflows/promotions"}, to: []string{"workflows/migrations"}, why: "the domains are independent"},
	{from: []string{"workflows/migrations"}, to: []string{"workflows/promotions"}, why: "the domains are independent"},
	{from: []string{"internal/client", "workers", "charts"}, to: []string{"internal/dev"},
		why: "production code does not depend on the development rig"},
}

// TestFloors enforces the floors on every non-test package of the module.
func TestFloors(t *testing.T) {
	pkgs := goList(t, "-deps", module+"/...")
	graph := map[string][]string{}
	var own []string
	for _, p := range pkgs {
		graph[p.ImportPath] = p.Imports
		if hasPathPrefix(p.ImportPath, module) {
			own = append(own, p.ImportPath)
		}
	}
	under := func(path string, prefixes []string) bool {
		for _, pre := range prefixes {
			if !strings.Contains(pre, ".") {
				pre = module + "/" + pre
			}
			if hasPathPrefix(path, pre) {
				return true
			}
		}
		return false
	}
	checked := 0
	for _, f := range floors {
		for _, from := range own {
			if !under(from, f.from) || (f.exact && !slices.Contains(f.from, strings.TrimPrefix(from, module+"/"))) {
				continue
			}
			checked++
			for _, p := range pkgs {
				if !under(p.ImportPath, f.to) || under(p.ImportPath, f.allowed) {
					continue
				}
				if c := importChain(graph, from, p.ImportPath); c != "" {
					t.Errorf("%s must not depend on %s (%s): %s", from, p.ImportPath, f.why, c)
					break // one chain says enough
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no package was checked: are the floors' paths right?")
	}
}
