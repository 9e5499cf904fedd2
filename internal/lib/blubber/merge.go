package blubber

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Resolved is a variant with everything merged in, in this order: the defaults,
// the top level, the variant's includes (dependencies first) and the variant
// itself. The rules are upstream Blubber's: scalars override; APT packages,
// sources and proxies, the environment and the build arguments add up; copies
// keep one entry per source and destination, the latest; a builder's
// requirements, mounts and caches, and commands (entrypoint, a builder's
// command), are replaced whole by a later list, even an empty one; `builders`
// lists merge by type (see mergeBuilders).
type Resolved struct {
	Name string
	Variant
}

// Resolve merges the named variant. Parse has already checked that every
// variant resolves, so an error here means an unknown name.
func (c *Config) Resolve(name string) (*Resolved, error) {
	if _, ok := c.Variants[name]; !ok {
		return nil, Errors{{Msg: fmt.Sprintf("unknown variant %q; the file defines %s", name, quoteList(c.VariantNames()))}}
	}
	order, err := c.includeOrder(name)
	if err != nil {
		return nil, Errors{err}
	}
	r := &Resolved{Name: name}
	lives, runs := DefaultLivesUID, DefaultRunsUID
	livesG, runsG := DefaultLivesGID, DefaultRunsGID
	r.Lives = Lives{In: DefaultLivesIn, As: DefaultLivesAs, UID: &lives, GID: &livesG}
	r.Runs = Runs{As: DefaultRunsAs, UID: &runs, GID: &runsG}
	mergeCommon(&r.Common, c.Common)
	for _, n := range order {
		v := c.Variants[n]
		mergeCommon(&r.Common, v.Common)
		r.Copies = mergeCopies(r.Copies, v.Copies)
	}
	r.Includes = slices.Clone(c.Variants[name].Includes)
	return r, nil
}

// includeOrder returns the variants to merge for name, dependencies first and
// name last, each once.
func (c *Config) includeOrder(name string) ([]string, *FieldError) {
	var order []string
	done := map[string]bool{}
	var stack []string
	var visit func(n string) *FieldError
	visit = func(n string) *FieldError {
		if done[n] {
			return nil
		}
		if i := slices.Index(stack, n); i >= 0 {
			from := stack[len(stack)-1]
			cycle := append(slices.Clone(stack[i:]), n)
			path := field(field("variants", from), "includes")
			return &FieldError{Path: path, Line: c.lines[path], Msg: fmt.Sprintf(
				"includes form a cycle (%s); remove one of these includes", strings.Join(cycle, " -> "))}
		}
		stack = append(stack, n)
		v := c.Variants[n]
		for _, inc := range v.Includes {
			if _, ok := c.Variants[inc]; !ok {
				continue // reported by validate
			}
			if err := visit(inc); err != nil {
				return err
			}
		}
		stack = stack[:len(stack)-1]
		done[n] = true
		order = append(order, n)
		return nil
	}
	if err := visit(name); err != nil {
		return nil, err
	}
	return order, nil
}

func mergeCommon(dst *Common, src Common) {
	if src.Base != nil {
		b := *src.Base
		dst.Base = &b
	}
	mergeApt(&dst.Apt, src.Apt)
	if src.Builder != nil {
		if dst.Builder == nil {
			dst.Builder = &CustomBuilder{}
		}
		mergeCustom(dst.Builder, *src.Builder)
	}
	dst.Builders = mergeBuilders(dst.Builders, src.Builders)
	if src.Node != nil {
		if dst.Node == nil {
			dst.Node = &NodeBuilder{}
		}
		mergeNode(dst.Node, *src.Node)
	}
	if src.Python != nil {
		if dst.Python == nil {
			dst.Python = &PythonBuilder{}
		}
		mergePython(dst.Python, *src.Python)
	}
	if src.PHP != nil {
		if dst.PHP == nil {
			dst.PHP = &PHPBuilder{}
		}
		mergePHP(dst.PHP, *src.PHP)
	}
	setString(&dst.Lives.In, src.Lives.In)
	setString(&dst.Lives.As, src.Lives.As)
	setInt(&dst.Lives.UID, src.Lives.UID)
	setInt(&dst.Lives.GID, src.Lives.GID)
	setString(&dst.Runs.As, src.Runs.As)
	setString(&dst.Runs.In, src.Runs.In)
	setInt(&dst.Runs.UID, src.Runs.UID)
	setInt(&dst.Runs.GID, src.Runs.GID)
	setBool(&dst.Runs.Insecurely, src.Runs.Insecurely)
	if len(src.Runs.Environment) > 0 {
		if dst.Runs.Environment == nil {
			dst.Runs.Environment = map[string]string{}
		}
		maps.Copy(dst.Runs.Environment, src.Runs.Environment)
	}
	if src.Entrypoint != nil {
		dst.Entrypoint = slices.Clone(src.Entrypoint)
	}
	if len(src.Arguments) > 0 {
		if dst.Arguments == nil {
			dst.Arguments = map[string]string{}
		}
		maps.Copy(dst.Arguments, src.Arguments)
	}
}

// mergeBuilders merges a later `builders` list over an earlier one as upstream
// does: a predefined builder (node, python, php) present in both is merged, the
// later fields winning, and takes the later list's position; the earlier
// list's other entries keep their order, before the later list's. Custom
// builders may repeat, so they are never merged.
func mergeBuilders(dst, src []BuilderEntry) []BuilderEntry {
	if len(src) == 0 {
		return dst
	}
	inSrc := map[string]bool{}
	for _, b := range src {
		if k := b.Kind(); k != "custom" {
			inSrc[k] = true
		}
	}
	var out []BuilderEntry
	earlier := map[string]BuilderEntry{}
	for _, b := range dst {
		if inSrc[b.Kind()] {
			earlier[b.Kind()] = b
			continue
		}
		out = append(out, b)
	}
	for _, b := range src {
		prev, ok := earlier[b.Kind()]
		if !ok {
			out = append(out, b)
			continue
		}
		switch b.Kind() {
		case "node":
			n := *prev.Node
			mergeNode(&n, *b.Node)
			out = append(out, BuilderEntry{Node: &n})
		case "python":
			p := *prev.Python
			mergePython(&p, *b.Python)
			out = append(out, BuilderEntry{Python: &p})
		case "php":
			p := *prev.PHP
			mergePHP(&p, *b.PHP)
			out = append(out, BuilderEntry{PHP: &p})
		}
	}
	return out
}

func mergeApt(dst *Apt, src Apt) {
	for release, pkgs := range src.Packages {
		if dst.Packages == nil {
			dst.Packages = map[string][]string{}
		}
		dst.Packages[release] = appendUnique(dst.Packages[release], pkgs)
	}
	dst.Sources = appendUniqueFunc(dst.Sources, src.Sources, func(a, b AptSource) bool {
		return a.URL == b.URL && a.Distribution == b.Distribution && slices.Equal(a.Components, b.Components) && a.SignedBy == b.SignedBy
	})
	dst.Proxies = appendUnique(dst.Proxies, src.Proxies)
}

func mergeCustom(dst *CustomBuilder, src CustomBuilder) {
	// A command and a script are alternatives: the later one wins outright.
	if !src.Command.IsZero() {
		dst.Command, dst.Script = src.Command, ""
	}
	if src.Script != "" {
		dst.Script, dst.Command = src.Script, Command{}
	}
	replaceList(&dst.Requirements, src.Requirements)
	replaceList(&dst.Mounts, src.Mounts)
	replaceList(&dst.Caches, src.Caches)
}

func mergeNode(dst *NodeBuilder, src NodeBuilder) {
	setString(&dst.Env, src.Env)
	replaceList(&dst.Requirements, src.Requirements)
	setBool(&dst.UseNpmCI, src.UseNpmCI)
	setBool(&dst.AllowDedupeFailure, src.AllowDedupeFailure)
}

func mergePython(dst *PythonBuilder, src PythonBuilder) {
	setString(&dst.Version, src.Version)
	replaceList(&dst.Requirements, src.Requirements)
	if src.Poetry != nil {
		if dst.Poetry == nil {
			dst.Poetry = &Poetry{}
		}
		setString(&dst.Poetry.Version, src.Poetry.Version)
		setBool(&dst.Poetry.Devel, src.Poetry.Devel)
		setString(&dst.Poetry.Only, src.Poetry.Only)
		setString(&dst.Poetry.Without, src.Poetry.Without)
	}
	setBool(&dst.UseSystemSitePackages, src.UseSystemSitePackages)
	setBool(&dst.NoDeps, src.NoDeps)
	setString(&dst.Venv, src.Venv)
	setString(&dst.PipVersion, src.PipVersion)
	setString(&dst.SetuptoolsVersion, src.SetuptoolsVersion)
	setString(&dst.WheelVersion, src.WheelVersion)
	setString(&dst.ToxVersion, src.ToxVersion)
}

func mergePHP(dst *PHPBuilder, src PHPBuilder) {
	replaceList(&dst.Requirements, src.Requirements)
	setBool(&dst.Production, src.Production)
}

// replaceList replaces *dst with src when src was written, even as an empty
// list: `requirements: []` in a variant drops the inherited requirements.
func replaceList[T any](dst *[]T, src []T) {
	if src != nil {
		*dst = slices.Clone(src)
		if *dst == nil {
			*dst = []T{}
		}
	}
}

// mergeCopies appends src to dst; an entry equal to an earlier one replaces it,
// moving to the later position.
func mergeCopies(dst, src []Copy) []Copy {
	out := slices.Clone(dst)
	for _, c := range src {
		out = slices.DeleteFunc(out, func(o Copy) bool { return copyKey(o) == copyKey(c) })
		out = append(out, c)
	}
	return out
}

func copyKey(c Copy) string {
	return fmt.Sprintf("%t\x00%s\x00%s\x00%s", c.Shorthand, c.From, c.Source, c.Destination)
}

func appendUnique[T comparable](dst, src []T) []T {
	return appendUniqueFunc(dst, src, func(a, b T) bool { return a == b })
}

// appendUniqueFunc appends the items of src that dst does not hold yet.
func appendUniqueFunc[T any](dst, src []T, eq func(a, b T) bool) []T {
	for _, s := range src {
		if !slices.ContainsFunc(dst, func(d T) bool { return eq(d, s) }) {
			dst = append(dst, s)
		}
	}
	return dst
}

func setString(dst *string, src string) {
	if src != "" {
		*dst = src
	}
}

func setInt(dst **int, src *int) {
	if src != nil {
		v := *src
		*dst = &v
	}
}

func setBool(dst **bool, src *bool) {
	if src != nil {
		v := *src
		*dst = &v
	}
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	if len(q) == 0 {
		return "no variants"
	}
	return strings.Join(q, ", ")
}
