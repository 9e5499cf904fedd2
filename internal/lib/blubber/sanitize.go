package blubber

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// sanitized copies the document without the fields that passes one and two
// found fault with, so that pass three can still check the rest of the file and
// every problem is reported at once. A field is dropped whole: a top-level key,
// or a key of a variant (a variant that is not a mapping becomes empty, so that
// references to it stay valid).
func sanitized(root *yaml.Node, errs Errors) *yaml.Node {
	tainted := func(p string) bool {
		for _, e := range errs {
			if e.Path == p || strings.HasPrefix(e.Path, p+".") || strings.HasPrefix(e.Path, p+"[") {
				return true
			}
		}
		return false
	}
	exact := func(p string) bool {
		for _, e := range errs {
			if e.Path == p {
				return true
			}
		}
		return false
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: root.Line}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch {
		case k.Value == "variants" && v.Kind == yaml.MappingNode && !exact("variants"):
			out.Content = append(out.Content, k, sanitizedVariants(v, tainted, exact))
		case tainted(k.Value):
		default:
			out.Content = append(out.Content, k, v)
		}
	}
	return out
}

func sanitizedVariants(vs *yaml.Node, tainted, exact func(string) bool) *yaml.Node {
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: vs.Line}
	for i := 0; i+1 < len(vs.Content); i += 2 {
		k, v := vs.Content[i], vs.Content[i+1]
		p := field("variants", k.Value)
		clean := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: v.Line}
		if v.Kind == yaml.MappingNode && !exact(p) {
			for j := 0; j+1 < len(v.Content); j += 2 {
				if !tainted(field(p, v.Content[j].Value)) {
					clean.Content = append(clean.Content, v.Content[j], v.Content[j+1])
				}
			}
		}
		out.Content = append(out.Content, k, clean)
	}
	return out
}
