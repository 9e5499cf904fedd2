package blubber

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/dlclark/regexp2"
)

// TestUpstreamConformance runs upstream Blubber's own tests, kept as data in
// shared/conformance/blubber-upstream/cases (see its README.md): each case is
// a config and an expect.txt saying what upstream does with it. Valid cases
// must lint clean, render every variant and pass every static check on the
// rendered Dockerfile; invalid cases must fail lint with a message matching
// every error regex. Image checks need a built image: they are parsed and
// listed here, and belong to the stack tests.
func TestUpstreamConformance(t *testing.T) {
	dir := filepath.Join(filepath.Dir(conformanceDir(t)), "blubber-upstream", "cases")
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("no upstream cases in %s (err %v)", dir, err)
	}
	var needBuild []string
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
		for _, ic := range ex.image {
			needBuild = append(needBuild, id+": image "+ic)
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
	sort.Strings(needBuild)
	t.Logf("%d image checks need a built image and are not run here (the stack tests cover them):\n%s",
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
		case "context", "context-from", "context-files", "run", "build-arg", "needs":
			// What a build of the scenario needs; the stack tests use them.
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

// dfStage is one stage of a rendered Dockerfile: its base and its
// instructions, each on one line (continuations and heredoc bodies joined
// with spaces), so that a regex's ^ and $ stand for an instruction's ends.
type dfStage struct {
	base         string
	instructions []string
}

func (s *dfStage) text() string { return strings.Join(s.instructions, "\n") }

func splitStages(df string) map[string]*dfStage {
	stages := map[string]*dfStage{}
	var cur *dfStage
	lines := strings.Split(df, "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := []string{line}
		for strings.HasSuffix(parts[len(parts)-1], "\\") && i+1 < len(lines) {
			parts[len(parts)-1] = strings.TrimSuffix(parts[len(parts)-1], "\\")
			i++
			parts = append(parts, strings.TrimSpace(lines[i]))
		}
		if delim := heredocDelim(line); delim != "" {
			for i+1 < len(lines) {
				i++
				parts = append(parts, lines[i])
				if lines[i] == delim {
					break
				}
			}
		}
		ins := strings.Join(parts, " ")
		if f := strings.Fields(ins); len(f) == 4 && f[0] == "FROM" && f[2] == "AS" {
			cur = &dfStage{base: f[1]}
			stages[f[3]] = cur
		}
		if cur != nil {
			cur.instructions = append(cur.instructions, ins)
		}
	}
	return stages
}

// heredocDelim returns the delimiter of a heredoc the line opens (<<'EOF' or
// <<EOF), or "".
func heredocDelim(line string) string {
	i := strings.Index(line, "<<")
	if i < 0 {
		return ""
	}
	rest := strings.TrimPrefix(line[i+2:], "-")
	rest = strings.Trim(strings.Fields(rest + " ")[0], `'"`)
	return rest
}

// pyRegex compiles an expect.txt regex: Python syntax, case-insensitive.
// regexp2 reads lookarounds, which RE2 (Go's regexp) lacks.
func pyRegex(expr string) (*regexp2.Regexp, error) {
	return regexp2.Compile(expr, regexp2.IgnoreCase|regexp2.Multiline)
}

// instructionMatches returns the indexes of the stage's instructions that
// the regex finds something in.
func instructionMatches(re *regexp2.Regexp, st *dfStage) []int {
	var out []int
	for i, ins := range st.instructions {
		if ok, _ := re.MatchString(ins); ok {
			out = append(out, i)
		}
	}
	return out
}

func runStatic(sc staticCheck, st *dfStage, stages map[string]*dfStage) error {
	last := func(instr string) (string, bool) {
		for i := len(st.instructions) - 1; i >= 0; i-- {
			if rest, ok := strings.CutPrefix(st.instructions[i], instr+" "); ok {
				return strings.TrimSpace(rest), true
			}
		}
		return "", false
	}
	switch sc.check {
	case "stage":
		if stages[sc.args] == nil {
			return fmt.Errorf("no stage %q in the render", sc.args)
		}
	case "from":
		if st.base != sc.args {
			return fmt.Errorf("FROM %s, want %s", st.base, sc.args)
		}
	case "user", "workdir":
		got, ok := last(strings.ToUpper(sc.check))
		if !ok || got != sc.args {
			return fmt.Errorf("last %s is %q, want %q", strings.ToUpper(sc.check), got, sc.args)
		}
	case "entrypoint":
		got, _ := last("ENTRYPOINT")
		var gotArgs, wantArgs []string
		if err := json.Unmarshal([]byte(sc.args), &wantArgs); err != nil {
			return fmt.Errorf("reading the expected entrypoint: %v", err)
		}
		if err := json.Unmarshal([]byte(got), &gotArgs); err != nil || !slices.Equal(gotArgs, wantArgs) {
			return fmt.Errorf("ENTRYPOINT %s, want %s", got, sc.args)
		}
	case "no-cmd":
		if got, ok := last("CMD"); ok {
			return fmt.Errorf("has CMD %s", got)
		}
	case "env", "label":
		name, value, hasValue := strings.Cut(sc.args, "=")
		instr := strings.ToUpper(sc.check)
		for _, ins := range st.instructions {
			rest, ok := strings.CutPrefix(ins, instr+" ")
			if !ok {
				continue
			}
			for _, kv := range splitAssignments(rest) {
				if kv[0] == name && (!hasValue || kv[1] == value) {
					return nil
				}
			}
		}
		return fmt.Errorf("no %s sets %s", instr, sc.args)
	case "has", "lacks":
		re, err := pyRegex(sc.args)
		if err != nil {
			return err
		}
		found := instructionMatches(re, st)
		if sc.check == "has" && len(found) == 0 {
			return errors.New("no instruction matches")
		}
		if sc.check == "lacks" && len(found) > 0 {
			return fmt.Errorf("instruction matches: %s", st.instructions[found[0]])
		}
	case "count":
		nStr, expr, _ := strings.Cut(sc.args, " ")
		n, err := strconv.Atoi(nStr)
		if err != nil {
			return fmt.Errorf("count %q: %v", nStr, err)
		}
		re, err := pyRegex(expr)
		if err != nil {
			return err
		}
		if got := len(instructionMatches(re, st)); got != n {
			return fmt.Errorf("%d instructions match, want %d", got, n)
		}
	case "order":
		return checkOrder(st.text(), strings.Split(sc.args, " >> "))
	default:
		return fmt.Errorf("unknown check %q", sc.check)
	}
	return nil
}

// checkOrder finds each regex after the end of the previous one's match in
// the stage's text (one instruction a line).
func checkOrder(text string, exprs []string) error {
	pos := 0
	for _, expr := range exprs {
		re, err := pyRegex(strings.TrimSpace(expr))
		if err != nil {
			return err
		}
		m, _ := re.FindStringMatch(text)
		for m != nil && runeToByte(text, m.Index) < pos {
			m, _ = re.FindNextMatch(m)
		}
		if m == nil {
			return fmt.Errorf("%q not found after the earlier ones", expr)
		}
		pos = runeToByte(text, m.Index+m.Length)
	}
	return nil
}

// runeToByte converts regexp2's rune offset into a byte offset.
func runeToByte(s string, runes int) int {
	for i := range s {
		if runes == 0 {
			return i
		}
		runes--
	}
	return len(s)
}

// splitAssignments reads the NAME=VALUE pairs of an ENV, LABEL or ARG line,
// with Dockerfile quoting.
func splitAssignments(s string) [][2]string {
	var out [][2]string
	i := 0
	for i < len(s) {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		start := i
		for i < len(s) && s[i] != '=' && s[i] != ' ' {
			i++
		}
		name := s[start:i]
		if i >= len(s) || s[i] != '=' {
			if name != "" {
				out = append(out, [2]string{name, ""})
			}
			continue
		}
		i++
		var v strings.Builder
		quote := byte(0)
		for ; i < len(s); i++ {
			ch := s[i]
			switch {
			case quote == 0 && ch == ' ':
				goto done
			case quote == 0 && (ch == '"' || ch == '\''):
				quote = ch
			case quote != 0 && ch == quote:
				quote = 0
			case ch == '\\' && quote != '\'' && i+1 < len(s):
				i++
				v.WriteByte(s[i])
			default:
				v.WriteByte(ch)
			}
		}
	done:
		out = append(out, [2]string{name, v.String()})
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
