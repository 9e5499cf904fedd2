package blubber

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestUpstreamConformance runs upstream Blubber's own tests, kept as data in
// shared/conformance/blubber-upstream/cases (see its README.md): each case is
// a config and an expect.txt saying what upstream does with it. Valid cases
// must lint clean, render every variant and pass every static check on the
// rendered Dockerfile; invalid cases must fail lint with a message matching
// every error regex. Image checks need an image built on buildkitd:
// TestUpstreamScenariosOnBuildkitd (upstream_stack_test.go) runs those it can;
// this one lists those it does not.
func TestUpstreamConformance(t *testing.T) {
	dir := filepath.Join(filepath.Dir(conformanceDir(t)), "blubber-upstream", "cases")
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("no upstream cases in %s (err %v)", dir, err)
	}
	var needBuild, early []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		id := e.Name()
		ex, err := readExpect(filepath.Join(dir, id, "expect.txt"))
		if err != nil {
			t.Errorf("%s: %v", id, err)
			continue
		}
		if !builtOnTheStack(ex) {
			for _, ic := range ex.image {
				needBuild = append(needBuild, id+": image "+ic)
			}
		}
		if ex.kind == "invalid-at-build" {
			early = append(early, id)
		}
		t.Run(id, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join(dir, id, "blubber.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			switch ex.kind {
			case "valid":
				checkValidCase(t, src, ex)
			case "invalid":
				_, err := Parse(src)
				if err == nil {
					t.Fatalf("lint passed; upstream refuses this config (want %q)", ex.errors)
				}
				matchErrors(t, lintOutput(err), ex.errors)
			case "invalid-at-build":
				// Upstream refuses it when the variant is expanded for a build;
				// refusing it at lint, or when rendering, is as good.
				c, err := Parse(src)
				if err == nil {
					_, err = c.Dockerfile(ex.build)
				}
				if err == nil {
					t.Fatalf("lint and render of %q passed; upstream refuses this config (want %q)", ex.build, ex.errors)
				}
				matchErrors(t, lintOutput(err), ex.errors)
			default:
				t.Fatalf("unknown kind %q", ex.kind)
			}
		})
	}
	t.Logf("invalid-at-build cases checked here, at lint or render time (upstream refuses them at build): %s", strings.Join(early, ", "))
	sort.Strings(needBuild)
	t.Logf("%d image checks need an image built on buildkitd with more than a Debian base (needs:); no stack test runs them yet:\n%s",
		len(needBuild), strings.Join(needBuild, "\n"))
}

// expectation is a parsed expect.txt.
type expectation struct {
	kind     string
	variants []string
	build    string
	static   []staticCheck
	image    []string
	errors   []string
	// needs is what a build needs beyond a Debian base image (none, apt,
	// golang, python3, node, net:HOST); run says upstream runs the entrypoint.
	needs []string
	run   bool
	// buildArgs are the build arguments upstream passes.
	buildArgs map[string]string
	// contextFrom is the upstream example app the scenario builds in,
	// contextFiles the files of it it uses (empty: all).
	contextFrom  string
	contextFiles []string
}

// staticCheck is `static V[@STAGE] CHECK ARGS`.
type staticCheck struct {
	line           int
	variant, stage string
	check, args    string
}

func (s staticCheck) String() string {
	target := s.variant
	if s.stage != "" {
		target += "@" + s.stage
	}
	return fmt.Sprintf("line %d: static %s %s %s", s.line, target, s.check, s.args)
}

func readExpect(path string) (*expectation, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ex := &expectation{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch key {
		case "static":
			target, rest, _ := strings.Cut(rest, " ")
			check, args, _ := strings.Cut(strings.TrimSpace(rest), " ")
			variant, stage, _ := strings.Cut(target, "@")
			ex.static = append(ex.static, staticCheck{line: n, variant: variant, stage: stage, check: check, args: strings.TrimSpace(args)})
			continue
		case "image":
			ex.image = append(ex.image, rest)
			continue
		case "error:":
			ex.errors = append(ex.errors, rest)
			continue
		}
		// The other keys may carry a trailing comment.
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: cannot read %q", n, line)
		}
		value = strings.TrimSpace(value)
		switch key {
		case "kind":
			ex.kind = value
		case "variants":
			ex.variants = strings.Fields(value)
		case "build":
			ex.build = value
		case "needs":
			ex.needs = strings.Fields(value)
		case "run":
			ex.run = value == "yes"
		case "build-arg":
			k, v, _ := strings.Cut(value, "=")
			if ex.buildArgs == nil {
				ex.buildArgs = map[string]string{}
			}
			ex.buildArgs[k] = v
		case "context-from":
			ex.contextFrom = value
		case "context-files":
			ex.contextFiles = strings.Fields(value)
		case "context":
			// context or none, as context-from says.
		default:
			return nil, fmt.Errorf("line %d: unknown key %q", n, key)
		}
	}
	return ex, sc.Err()
}

func checkValidCase(t *testing.T, src []byte, ex *expectation) {
	c, err := Parse(src)
	if err != nil {
		t.Fatalf("lint failed; upstream accepts this config:\n%s", lintOutput(err))
	}
	if got := c.VariantNames(); !slices.Equal(got, sortedCopy(ex.variants)) {
		t.Errorf("variants %q, want %q", got, sortedCopy(ex.variants))
	}
	rendered := map[string]string{}
	for _, v := range c.VariantNames() {
		df, err := c.Dockerfile(v)
		if err != nil {
			t.Errorf("Dockerfile(%s): %v", v, err)
			continue
		}
		rendered[v] = df
		if _, err := c.Compile(context.Background(), v); err != nil {
			t.Errorf("Compile(%s): %v", v, err)
		}
	}
	for _, sc := range ex.static {
		df, ok := rendered[sc.variant]
		if !ok {
			t.Errorf("%s: variant %q was not rendered", sc, sc.variant)
			continue
		}
		stages := splitStages(df)
		name := sc.variant
		if sc.stage != "" {
			name = sc.stage
		}
		st := stages[name]
		if st == nil && sc.check != "stage" {
			t.Errorf("%s: the render of %s has no stage %q:\n%s", sc, sc.variant, name, df)
			continue
		}
		if err := runStatic(sc, st, stages); err != nil {
			t.Errorf("%s: %v\nthe stage as rendered:\n%s", sc, err, st.text())
		}
	}
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	if out == nil {
		out = []string{}
	}
	return out
}

// lintOutput is what `conveyor blubber lint` prints for err, less the file
// name.
func lintOutput(err error) string {
	var errs Errors
	if !errors.As(err, &errs) {
		return err.Error()
	}
	lines := make([]string, len(errs))
	for i, e := range errs {
		lines[i] = fmt.Sprintf("%d: %s", e.Line, e)
	}
	return strings.Join(lines, "\n")
}

func matchErrors(t *testing.T, out string, exprs []string) {
	t.Helper()
	if len(exprs) == 0 {
		t.Fatal("the case has no error: line")
	}
	for _, expr := range exprs {
		re, err := pyRegex(expr)
		if err != nil {
			t.Fatalf("error regex %q: %v", expr, err)
		}
		if ok, _ := re.MatchString(out); !ok {
			t.Errorf("lint output does not match %q:\n%s", expr, out)
		}
	}
}
