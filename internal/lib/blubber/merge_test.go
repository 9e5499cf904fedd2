package blubber

import (
	"errors"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	bkclient "github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

func TestResolveMergeOrder(t *testing.T) {
	c := mustParse(t, `version: v4
base: debian:bookworm
apt: { packages: [top] }
runs: { environment: { A: top, B: top } }
entrypoint: [top]
variants:
  lower:
    apt: { packages: [lower, top] }
    runs: { environment: { A: lower }, insecurely: true }
    entrypoint: [lower]
    copies: [local, {from: local, source: a, destination: b}]
  upper:
    includes: [lower]
    base: debian:trixie
    apt: { packages: { "": [upper], bookworm-backports: [bp] } }
    runs: { environment: { C: upper }, insecurely: false }
    copies: [{from: local, source: x}, local]
`)
	r, err := c.Resolve("upper")
	if err != nil {
		t.Fatal(err)
	}
	if r.Base == nil || *r.Base != "debian:trixie" {
		t.Errorf("the variant's base must override the top level's, got %v", r.Base)
	}
	scratch := mustParse(t, "version: v4\nbase: debian:bookworm\nvariants:\n  files:\n    base: ~\n")
	if r, _ := scratch.Resolve("files"); r.Base == nil || *r.Base != "" {
		t.Errorf("base: ~ in a variant must override the top level's base with scratch, got %v", r.Base)
	}
	if got := r.Apt.Packages[""]; !slices.Equal(got, []string{"top", "lower", "upper"}) {
		t.Errorf("packages %q, want the top level's, then the include's, then the variant's, each once", got)
	}
	if got := r.Apt.Packages["bookworm-backports"]; !slices.Equal(got, []string{"bp"}) {
		t.Errorf("backports %q", got)
	}
	env := r.Runs.Environment
	if env["A"] != "lower" || env["B"] != "top" || env["C"] != "upper" {
		t.Errorf("environment %v", env)
	}
	if boolValue(r.Runs.Insecurely) {
		t.Error("insecurely: false in the variant must override the include's true")
	}
	if !slices.Equal(r.Entrypoint, []string{"lower"}) {
		t.Errorf("entrypoint %q: a command is replaced whole", r.Entrypoint)
	}
	var copies []string
	for _, cp := range r.Copies {
		copies = append(copies, cp.From+":"+cp.Source)
	}
	if want := []string{"local:a", "local:x", "local:"}; !slices.Equal(copies, want) {
		t.Errorf("copies %q, want %q (one local, at its latest position)", copies, want)
	}
	if r.Lives.In != DefaultLivesIn || *r.Lives.UID != DefaultLivesUID || r.Runs.As != DefaultRunsAs || *r.Runs.GID != DefaultRunsGID {
		t.Errorf("defaults not applied: lives %+v runs %+v", r.Lives, r.Runs)
	}
}

func TestEnvironmentScalars(t *testing.T) {
	c := mustParse(t, "version: v4\nruns:\n  environment: { N: 1, F: 1.5, B: true, S: \"x\" }\n")
	want := map[string]string{"N": "1", "F": "1.5", "B": "true", "S": "x"}
	for k, v := range want {
		if got := c.Runs.Environment[k]; got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	_, err := Parse([]byte("version: v4\nruns:\n  environment: { N: ~, L: [a] }\n"))
	if got := strings.Join(fieldErrors(t, err), "\n"); got != "runs.environment.N: expected a string, number or boolean, found null\nruns.environment.L: expected a string, number or boolean, found a list" {
		t.Errorf("errors %q", got)
	}
}

func TestIncludesInDependencyOrder(t *testing.T) {
	c, err := ParseFile("testdata/includes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	order, ferr := c.includeOrder("development")
	if ferr != nil {
		t.Fatal(ferr)
	}
	if want := []string{"base-tools", "dev-tools", "development"}; !slices.Equal(order, want) {
		t.Errorf("order %q, want %q", order, want)
	}
	r, _ := c.Resolve("development")
	if r.Runs.Environment["LEVEL"] != "dev-tools" {
		t.Errorf("LEVEL = %q: dev-tools is merged after base-tools, which it includes", r.Runs.Environment["LEVEL"])
	}
}

func TestResolveUnknownVariant(t *testing.T) {
	c := mustParse(t, "version: v4\nvariants:\n  one: {}\n  two: {}\n")
	_, err := c.Resolve("three")
	if err == nil || err.Error() != `unknown variant "three"; the file defines "one", "two"` {
		t.Errorf("got %v", err)
	}
}

func TestStatusTrackerKeepsFailedOutput(t *testing.T) {
	var reports []Progress
	tr := newStatusTracker(func(p Progress) { reports = append(reports, p) })
	now := time.Now()
	ok, bad := digest.FromString("ok"), digest.FromString("bad")
	tr.update(&bkclient.SolveStatus{Vertexes: []*bkclient.Vertex{
		{Digest: ok, Name: "COPY", Started: &now, Completed: &now},
		{Digest: bad, Name: TestVertexPrefix + "test: npm test", Started: &now},
	}})
	tr.update(&bkclient.SolveStatus{Logs: []*bkclient.VertexLog{{Vertex: bad, Data: []byte("1 failing\n")}}})
	tr.update(&bkclient.SolveStatus{Vertexes: []*bkclient.Vertex{
		{Digest: bad, Name: TestVertexPrefix + "test: npm test", Started: &now, Completed: &now, Error: "exit code: 1"},
	}})
	last := reports[len(reports)-1]
	if last.Completed != 2 || last.Total != 2 {
		t.Errorf("progress %d/%d, want 2/2", last.Completed, last.Total)
	}
	se := tr.failure("test", errors.New("exit code: 1"))
	if se == nil || !se.Test || se.Output != "1 failing" || se.Step != TestVertexPrefix+"test: npm test" {
		t.Fatalf("StepError %+v", se)
	}
	want := "variant test: test \"blubber test test: npm test\" failed: exit code: 1\noutput:\n1 failing"
	if se.Error() != want {
		t.Errorf("message %q, want %q", se.Error(), want)
	}
	if newStatusTracker(nil).failure("test", errors.New("connection refused")) != nil {
		t.Error("an error with no failed step must not become a StepError")
	}
}

// TestNoTemporal keeps the package a plain library: the CLI and the activities
// both use it, and only the activities know Temporal.
func TestNoTemporal(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range parsed.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "go.temporal.io/") {
				t.Errorf("%s imports %s; keep Temporal in the activities", f, p)
			}
		}
	}
}
