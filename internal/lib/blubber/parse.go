package blubber

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/wikimedia/conveyor/internal/lib/repofile"
)

// maxNodes bounds the size of a document with its aliases expanded, so that an
// alias bomb is refused instead of walked.
const maxNodes = 200_000

// ParseFile reads and checks the configuration at path. See Parse. A file larger
// than repofile.BlubberConfig is refused unread with a *repofile.TooLargeError.
func ParseFile(path string) (*Config, error) {
	b, err := repofile.ReadFile(path, repofile.BlubberConfig)
	if err != nil {
		return nil, fmt.Errorf("reading blubber config: %w", err)
	}
	return Parse(b)
}

// Parse reads and checks a Blubber v4 configuration. A file whose version is not
// v4 fails with a *VersionError. Otherwise the file goes through three passes:
// the schema (types, enums, required fields), the strict decode (unknown fields)
// and the semantic checks (references, names, paths, merge rules of every
// variant). Every problem is reported, in file order, as an Errors list: when
// the first two passes find some, the third still checks the fields they did not
// fault, though not the merged variants, which would be built from a partial
// file.
func Parse(data []byte) (*Config, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errors{{Msg: "the file is empty; a Blubber config starts with `version: v4`"}}
		}
		return nil, Errors{{Msg: "reading YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, Errors{{Msg: "the file holds more than one YAML document; keep only the Blubber config"}}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	budget := maxNodes
	if !withinBudget(root, &budget, 0) {
		return nil, Errors{{Msg: "the document is too large once its aliases are expanded; write the values out or use fewer aliases"}}
	}
	if root.Kind != yaml.MappingNode {
		return nil, Errors{{Line: root.Line, Msg: "expected a mapping at the top level, found " + nodeKindName(root) + "; a Blubber config starts with `version: v4`"}}
	}
	v := mapValue(root, "version")
	if v == nil {
		return nil, Errors{{Path: "version", Line: root.Line, Msg: "is required; add `version: v4` at the top of the file"}}
	}
	if v.Kind != yaml.ScalarNode || v.Value != ConfigVersion {
		return nil, &VersionError{Version: v.Value}
	}

	lines := map[string]int{}
	recordLines(root, "", lines)
	errs := &errorList{lines: lines}
	checkSchema(schema, root, "", errs)
	checkFields(schema, root, "", errs)
	if err := errs.result(); err != nil {
		// Check what is left, field by field; the merged variants are not
		// checked, since dropped fields would make them wrong.
		c := &Config{lines: lines}
		clean := sanitized(root, err.(Errors))
		if clean.Decode(c) == nil {
			fixNullBases(clean, c)
			checkFieldsSemantics(c, errs)
		}
		return nil, errs.result()
	}

	c := &Config{lines: lines}
	if err := root.Decode(c); err != nil {
		// The passes above should leave nothing for the decoder to refuse.
		return nil, Errors{{Msg: "decoding: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	fixNullBases(root, c)
	if err := validate(c); err != nil {
		return nil, err
	}
	return c, nil
}

func withinBudget(n *yaml.Node, budget *int, depth int) bool {
	*budget--
	if *budget < 0 || depth > 100 {
		return false
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return true
		}
		return withinBudget(n.Alias, budget, depth+1)
	}
	for _, c := range n.Content {
		if !withinBudget(c, budget, depth+1) {
			return false
		}
	}
	return true
}

// VariantNames returns the names of the variants, sorted.
func (c *Config) VariantNames() []string {
	names := make([]string, 0, len(c.Variants))
	for name := range c.Variants {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Line returns the line of the field at path (e.g. variants.test.copies[0]), or 0.
func (c *Config) Line(path string) int { return c.lines[path] }
