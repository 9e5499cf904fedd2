package blubber

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/wikimedia/conveyor/internal/lib/suggest"

	"gopkg.in/yaml.v3"
)

// kind is the YAML type a shape accepts.
type kind int

const (
	kString kind = iota
	kInt
	kBool
	kObject // fixed fields
	kDict   // any keys, every value of shape elem
	kList   // every item of shape elem
	kOneOf  // the first alternative whose kind fits the node
	kScalar // any string, number or boolean
)

// shape describes what a node of the configuration may hold. Pass one (checkSchema)
// checks types, enums, patterns and required fields; pass two (checkFields)
// rejects fields no shape declares.
type shape struct {
	kind     kind
	nullable bool
	fields   map[string]*shape
	required []string
	elem     *shape
	alts     []*shape
	enum     []string
	pattern  *regexp.Regexp
	hint     string // what a wrong value should look like
}

var httpURL = regexp.MustCompile(`^https?://\S+$`)

func str() *shape                 { return &shape{kind: kString} }
func listOf(s *shape) *shape      { return &shape{kind: kList, elem: s} }
func oneOf(alts ...*shape) *shape { return &shape{kind: kOneOf, alts: alts} }
func object(fields map[string]*shape, required ...string) *shape {
	return &shape{kind: kObject, fields: fields, required: required}
}

var schema = func() *shape {
	boolean := &shape{kind: kBool}
	integer := &shape{kind: kInt}
	strs := listOf(str())
	url := &shape{kind: kString, pattern: httpURL, hint: "an http:// or https:// URL"}
	artifact := object(map[string]*shape{
		"from": {kind: kString, nullable: true}, "source": str(), "destination": str(), "exclude": strs,
	})
	requirements := listOf(oneOf(str(), artifact))
	custom := object(map[string]*shape{
		"command":      oneOf(strs, str()),
		"script":       str(),
		"requirements": requirements,
		"mounts":       listOf(oneOf(str(), object(map[string]*shape{"from": str(), "source": str(), "destination": str()}))),
		"caches": listOf(oneOf(str(), object(map[string]*shape{
			"destination": str(), "id": str(),
			"access": {kind: kString, enum: []string{"shared", "private", "locked"}},
		}, "destination"))),
	})
	node := object(map[string]*shape{
		"env": str(), "requirements": requirements, "use-npm-ci": boolean, "allow-dedupe-failure": boolean,
	})
	python := object(map[string]*shape{
		"version": str(), "requirements": requirements, "use-system-site-packages": boolean, "no-deps": boolean,
		"venv": str(), "pip-version": str(), "setuptools-version": str(), "wheel-version": str(), "tox-version": str(),
		"poetry": object(map[string]*shape{"version": str(), "devel": boolean, "only": str(), "without": str()}),
	})
	php := object(map[string]*shape{"requirements": requirements, "production": boolean})
	common := map[string]*shape{
		"base": {kind: kString, nullable: true},
		"apt": object(map[string]*shape{
			"packages": oneOf(strs, &shape{kind: kDict, elem: strs}),
			"sources": listOf(object(map[string]*shape{
				"url": url, "distribution": str(), "components": strs, "signed-by": str(),
			}, "url")),
			"proxies": listOf(oneOf(url, object(map[string]*shape{"url": url, "source": url}, "url"))),
		}),
		"builder": custom,
		"builders": listOf(object(map[string]*shape{
			"custom": custom, "node": node, "python": python, "php": php,
		})),
		"node":   node,
		"python": python,
		"php":    php,
		"lives":  object(map[string]*shape{"in": str(), "as": str(), "uid": integer, "gid": integer}),
		"runs": object(map[string]*shape{
			"as": str(), "uid": integer, "gid": integer, "in": str(), "insecurely": boolean,
			"environment": {kind: kDict, elem: &shape{kind: kScalar}},
		}),
		"entrypoint": strs,
		"arguments": {kind: kDict, elem: &shape{kind: kScalar},
			hint: "a mapping of build-argument names to default values, e.g. {VERSION: \"1.0\"} (arguments for the program belong in entrypoint)"},
	}
	variant := map[string]*shape{
		"includes": strs,
		"copies":   listOf(oneOf(str(), artifact)),
	}
	for k, v := range common {
		variant[k] = v
	}
	top := map[string]*shape{
		"version":  str(),
		"variants": {kind: kDict, elem: &shape{kind: kObject, fields: variant, nullable: true}},
	}
	for k, v := range common {
		top[k] = v
	}
	return object(top, "version")
}()

func nodeKindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.ShortTag() {
	case "!!null":
		return "null"
	case "!!int":
		return "an integer (" + n.Value + ")"
	case "!!bool":
		return "a boolean (" + n.Value + ")"
	case "!!float":
		return "a number (" + n.Value + ")"
	}
	return fmt.Sprintf("a string (%q)", n.Value)
}

func (s *shape) describe() string {
	switch s.kind {
	case kString:
		if s.hint != "" {
			return s.hint
		}
		return "a string"
	case kInt:
		return "an integer"
	case kBool:
		return "a boolean (true or false)"
	case kObject, kDict:
		if s.hint != "" {
			return s.hint
		}
		return "a mapping"
	case kList:
		return "a list"
	case kScalar:
		return "a string, number or boolean"
	}
	names := make([]string, len(s.alts))
	for i, a := range s.alts {
		names[i] = a.describe()
		if a.kind == kList && a.elem.kind == kString {
			names[i] = "a list of strings"
		}
	}
	return strings.Join(names, " or ")
}

// fits reports whether n has the YAML kind that s wants (not whether its content
// is valid): it picks the alternative of a oneOf.
func (s *shape) fits(n *yaml.Node) bool {
	if n.ShortTag() == "!!null" {
		return s.nullable
	}
	switch s.kind {
	case kObject, kDict:
		return n.Kind == yaml.MappingNode
	case kList:
		return n.Kind == yaml.SequenceNode
	case kInt:
		return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int"
	case kBool:
		return n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!bool" || isYAML11Bool(n.Value))
	case kString:
		return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str"
	case kScalar:
		return n.Kind == yaml.ScalarNode
	}
	for _, a := range s.alts {
		if a.fits(n) {
			return true
		}
	}
	return false
}

// isYAML11Bool accepts the YAML 1.1 spellings that yaml.v3 decodes into a bool.
func isYAML11Bool(v string) bool {
	switch strings.ToLower(v) {
	case "yes", "no", "on", "off", "y", "n":
		return true
	}
	return false
}

// checkSchema is pass one: types, enums, patterns and required fields.
func checkSchema(s *shape, n *yaml.Node, path string, errs *errorList) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.ShortTag() == "!!null" && s.nullable {
		return
	}
	if s.kind == kOneOf {
		for _, a := range s.alts {
			if a.fits(n) {
				checkSchema(a, n, path, errs)
				return
			}
		}
	}
	if !s.fits(n) {
		errs.addLine(path, n.Line, "expected %s, found %s", s.describe(), nodeKindName(n))
		return
	}
	switch s.kind {
	case kString:
		if len(s.enum) > 0 && !contains(s.enum, n.Value) {
			errs.addLine(path, n.Line, "must be one of %s, found %q", strings.Join(s.enum, ", "), n.Value)
		}
		if s.pattern != nil && !s.pattern.MatchString(n.Value) {
			errs.addLine(path, n.Line, "expected %s, found %q", s.hint, n.Value)
		}
	case kList:
		for i, item := range n.Content {
			checkSchema(s.elem, item, index(path, i), errs)
		}
	case kDict:
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkSchema(s.elem, n.Content[i+1], field(path, n.Content[i].Value), errs)
		}
	case kObject:
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if seen[key] {
				errs.addLine(field(path, key), n.Content[i].Line, "is declared twice; keep one")
			}
			seen[key] = true
			if fs, ok := s.fields[key]; ok {
				checkSchema(fs, n.Content[i+1], field(path, key), errs)
			}
		}
		for _, r := range s.required {
			if !seen[r] {
				errs.addLine(field(path, r), n.Line, "is required")
			}
		}
	}
}

// checkFields is pass two, the strict decode: every key must be one the schema
// declares for its place. Type mismatches were pass one's business; here a node
// that does not fit is skipped.
func checkFields(s *shape, n *yaml.Node, path string, errs *errorList) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if s.kind == kOneOf {
		for _, a := range s.alts {
			if a.fits(n) {
				checkFields(a, n, path, errs)
				return
			}
		}
		return
	}
	if !s.fits(n) {
		return
	}
	switch s.kind {
	case kList:
		for i, item := range n.Content {
			checkFields(s.elem, item, index(path, i), errs)
		}
	case kDict:
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkFields(s.elem, n.Content[i+1], field(path, n.Content[i].Value), errs)
		}
	case kObject:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			fs, ok := s.fields[key]
			if !ok {
				errs.addLine(field(path, key), n.Content[i].Line, "is not a known field%s", suggestField(key, s.fields))
				continue
			}
			checkFields(fs, n.Content[i+1], field(path, key), errs)
		}
	}
}

// suggestField names the declared fields, leading with a likely intended one.
func suggestField(key string, fields map[string]*shape) string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	best, bestDist := "", 3
	for _, k := range names {
		if d := suggest.Distance(strings.ToLower(key), k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf("; did you mean %q?", best)
	}
	return "; expected one of " + strings.Join(names, ", ")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
