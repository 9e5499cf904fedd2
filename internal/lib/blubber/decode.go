package blubber

import (
	"gopkg.in/yaml.v3"
)

// The UnmarshalYAML methods below accept the shorthand forms of the language.
// Pass one has already checked every node's kind, so they only branch on it.

// UnmarshalYAML reads packages as a list (the default release) or as a map of
// release to list.
func (a *Apt) UnmarshalYAML(n *yaml.Node) error {
	var raw struct {
		Packages yaml.Node   `yaml:"packages"`
		Sources  []AptSource `yaml:"sources"`
		Proxies  []AptProxy  `yaml:"proxies"`
	}
	if err := n.Decode(&raw); err != nil {
		return err
	}
	a.Sources, a.Proxies = raw.Sources, raw.Proxies
	switch raw.Packages.Kind {
	case yaml.SequenceNode:
		var list []string
		if err := raw.Packages.Decode(&list); err != nil {
			return err
		}
		a.Packages = map[string][]string{"": list}
	case yaml.MappingNode:
		if err := raw.Packages.Decode(&a.Packages); err != nil {
			return err
		}
		// `default` names the default release, as the list form does.
		if pkgs, ok := a.Packages[aptDefaultRelease]; ok {
			delete(a.Packages, aptDefaultRelease)
			a.Packages[""] = append(a.Packages[""], pkgs...)
		}
	}
	return nil
}

// aptDefaultRelease is the key of the packages map that stands for the base
// image's default release (no -t).
const aptDefaultRelease = "default"

// UnmarshalYAML reads a proxy URL or a {url, source} mapping.
func (p *AptProxy) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		p.URL = n.Value
		return nil
	}
	type plain AptProxy
	return n.Decode((*plain)(p))
}

// UnmarshalYAML reads a command string (run by the shell) or an argv list.
func (c *Command) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		c.Shell = n.Value
		return nil
	}
	return n.Decode(&c.Args)
}

// UnmarshalYAML reads a requirement: a bare path (copied from the build context to
// the same relative path) or the {from, source, destination, exclude} longhand,
// whose from is required (validate says so when it is missing).
func (a *Artifact) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*a = Artifact{From: LocalContext, Source: n.Value}
		return nil
	}
	type plain Artifact
	return n.Decode((*plain)(a))
}

// UnmarshalYAML reads a copies entry: `local`, a variant name, or the longhand.
func (c *Copy) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*c = Copy{Artifact: Artifact{From: n.Value}, Shorthand: true}
		return nil
	}
	type plain Artifact
	return n.Decode((*plain)(&c.Artifact))
}

// UnmarshalYAML reads a mount: a bare variant, image or `local`, or the longhand.
func (m *Mount) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*m = Mount{From: n.Value}
		return nil
	}
	type plain Mount
	return n.Decode((*plain)(m))
}

// UnmarshalYAML reads a cache: a bare destination path, or the longhand.
func (c *Cache) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*c = Cache{Destination: n.Value}
		return nil
	}
	type plain Cache
	return n.Decode((*plain)(c))
}

// LocalContext is the name that stands for the build context in copies,
// requirements and mounts.
const LocalContext = "local"

// fixNullBases marks `base: ~` (scratch) apart from an absent base: yaml.v3 leaves
// a pointer nil for both.
func fixNullBases(root *yaml.Node, c *Config) {
	scratch := func() *string { s := ""; return &s }
	if v := mapValue(root, "base"); v != nil && v.ShortTag() == "!!null" {
		c.Base = scratch()
	}
	variants := mapValue(root, "variants")
	if variants == nil || variants.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(variants.Content); i += 2 {
		vn := variants.Content[i+1]
		v := c.Variants[variants.Content[i].Value]
		if v == nil {
			continue
		}
		if b := mapValue(vn, "base"); b != nil && b.ShortTag() == "!!null" {
			v.Base = scratch()
		}
	}
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// recordLines maps every field path to its line, so that semantic errors can
// point into the file.
func recordLines(n *yaml.Node, path string, lines map[string]int) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := field(path, n.Content[i].Value)
			lines[p] = n.Content[i].Line
			recordLines(n.Content[i+1], p, lines)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			p := index(path, i)
			lines[p] = item.Line
			recordLines(item, p, lines)
		}
	}
}
