package pipelineconfig

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/wikimedia/conveyor/internal/lib/suggest"
)

// reader decodes a YAML node tree strictly, one field at a time, collecting a
// Problem for each unknown field, duplicate key and wrong type instead of stopping
// at the first: the user fixes the file in one go.
type reader struct {
	file     string
	problems []Problem
	// budget bounds the nodes walked, aliases expanded, so an alias bomb in the
	// values is refused rather than expanded.
	budget int
}

func (r *reader) add(n *yaml.Node, field, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	r.problems = append(r.problems, Problem{File: r.file, Field: field, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.Tag {
	case "!!null":
		return "null"
	case "!!int", "!!float":
		return "a number (" + n.Value + ")"
	case "!!bool":
		return "a boolean (" + n.Value + ")"
	}
	return fmt.Sprintf("a string (%q)", n.Value)
}

// mapping calls each for every key of the mapping n, in file order. Keys not in
// known and keys given twice are problems; a null n is an empty mapping.
func (r *reader) mapping(n *yaml.Node, field string, known []string, each func(key string, v *yaml.Node, field string)) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		r.add(n, field, "expected a mapping with the keys %s, found %s", strings.Join(known, ", "), kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		kf := join(field, k.Value)
		switch {
		case k.Kind != yaml.ScalarNode:
			r.add(k, field, "keys must be strings, found %s", kindName(k))
		case k.Value == "<<":
			r.add(k, field, "merge keys (<<) are not supported; write the fields out")
		case !slices.Contains(known, k.Value):
			r.add(k, kf, "unknown field%s; the fields here are %s", didYouMean(k.Value, known), strings.Join(known, ", "))
		case seen[k.Value]:
			r.add(k, kf, "is given twice; keep one")
		default:
			seen[k.Value] = true
			each(k.Value, v, kf)
		}
	}
}

// list calls each for every item of the list n; a null n is an empty list.
func (r *reader) list(n *yaml.Node, field string, each func(i int, v *yaml.Node, field string)) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		r.add(n, field, "expected a list, found %s", kindName(n))
		return
	}
	for i, v := range n.Content {
		each(i, v, fmt.Sprintf("%s[%d]", field, i))
	}
}

// str reads a scalar as a string: strings, and numbers or booleans as written.
func (r *reader) str(n *yaml.Node, field string) (string, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		r.add(n, field, "expected a string, found %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

// integer reads an integer scalar.
func (r *reader) integer(n *yaml.Node, field string) (int, bool) {
	n = resolve(n)
	var v int
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&v) != nil {
		r.add(n, field, "expected an integer, found %s", kindName(n))
		return 0, false
	}
	return v, true
}

// value reads any YAML as the JSON-compatible value that Helm and Temporal's JSON
// payloads carry: map[string]any, []any, string, int, float64, bool or nil.
func (r *reader) value(n *yaml.Node, field string) (any, bool) {
	r.budget--
	if r.budget < 0 {
		if r.budget == -1 {
			r.add(n, field, "the values are too large once their aliases are expanded; write them out or use fewer aliases")
		}
		return nil, false
	}
	n = resolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		ok := true
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := resolve(n.Content[i])
			if k.Kind != yaml.ScalarNode || k.Tag == "!!null" || k.Value == "<<" {
				r.add(k, field, "keys must be strings, found %s", kindName(k))
				ok = false
				continue
			}
			if _, dup := m[k.Value]; dup {
				r.add(k, join(field, k.Value), "is given twice; keep one")
				ok = false
				continue
			}
			v, vok := r.value(n.Content[i+1], join(field, k.Value))
			m[k.Value] = v
			ok = ok && vok
		}
		return m, ok
	case yaml.SequenceNode:
		l := make([]any, 0, len(n.Content))
		ok := true
		for i, c := range n.Content {
			v, vok := r.value(c, fmt.Sprintf("%s[%d]", field, i))
			l = append(l, v)
			ok = ok && vok
		}
		return l, ok
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return nil, true
		case "!!bool":
			var b bool
			return b, n.Decode(&b) == nil
		case "!!int":
			var i int
			if n.Decode(&i) == nil {
				return i, true
			}
		case "!!float":
			var f float64
			if n.Decode(&f) == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
				return f, true
			}
			r.add(n, field, "%s cannot be written as JSON; quote it if it is a string", n.Value)
			return nil, false
		}
		return n.Value, true
	}
	r.add(n, field, "unexpected YAML node")
	return nil, false
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

// didYouMean returns ` (did you mean "x"?)` for a key one or two edits away from a
// known one.
func didYouMean(key string, known []string) string {
	best, dist := "", 3
	for _, k := range known {
		if d := suggest.Distance(strings.ToLower(key), strings.ToLower(k)); d < dist {
			best, dist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}
