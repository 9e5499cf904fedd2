package blubber

// The static checks of the upstream conformance cases (see
// TestUpstreamConformance) on a rendered Dockerfile.

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/dlclark/regexp2"
)

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
