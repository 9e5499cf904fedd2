// Package pipelineconfig reads a repository's .pipeline/config.yaml and checks it
// against the repository's Blubber configuration: every problem is reported with the
// file, line and field it concerns. It knows no Temporal; the PrepareSource activity,
// the base-image check and the benchmarks use it. The format is documented in
// docs/pipeline-config.md.
package pipelineconfig

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/internal/lib/blubber"
	"github.com/wikimedia/conveyor/internal/lib/repofile"
)

// ConfigFile is where a repository keeps its pipeline settings. The format is
// documented in docs/pipeline-config.md.
const ConfigFile = ".pipeline/config.yaml"

// The defaults of the pipeline settings.
const (
	// DefaultBlubber is the Blubber config's path when pipeline.blubber is unset.
	DefaultBlubber = ".pipeline/blubber.yaml"
	// DefaultTestVariant is the test variant when pipeline.test is unset, if the
	// Blubber config defines it; otherwise the pipeline runs no tests.
	DefaultTestVariant = "test"
	// DefaultProductionVariant is the production variant when pipeline.production
	// is unset.
	DefaultProductionVariant = "production"
	// DefaultServicePort is the Service port when neither pipeline.chart.servicePort
	// nor the values' service.port says otherwise.
	DefaultServicePort = 8080
	// DefaultMethod is an e2e check's method when it sets none.
	DefaultMethod = http.MethodGet
	// DefaultExpectStatus is an e2e check's expected status when it sets none.
	DefaultExpectStatus = http.StatusOK
	// fallbackImage names the image of a repository whose name has nothing left
	// once sanitised.
	fallbackImage = "app"
)

// candidatesPrefix is where the pipeline pushes unpublished candidates; a public
// image cannot live there.
const candidatesPrefix = "candidates/"

// maxValueNodes bounds the chart values' size with aliases expanded.
const maxValueNodes = 100_000

// methods are the methods an e2e check may use.
var methods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions}

// Parsed is a repository's pipeline settings, defaults filled in, with the Blubber
// config they name.
type Parsed struct {
	Settings contract.Settings
	// Variants are the Blubber config's variant names, sorted.
	Variants []string
	// Blubber is the parsed Blubber config.
	Blubber *blubber.Config
}

// fileSettings is .pipeline/config.yaml as written: nil or absent fields take
// their defaults.
type fileSettings struct {
	blubber, test, production, image, chart *string
	servicePort                             *int
	values                                  map[string]any
	e2e                                     []contract.Check
	// lines maps a field (pipeline.chart.path) to its line.
	lines map[string]int
}

// ParseSettings reads and checks the pipeline settings of the checkout in dir:
// .pipeline/config.yaml if it exists (every field is optional), the Blubber
// config it names, and the variants, image name, chart and e2e checks. repo names
// the repository (URL or path); the default image name is its last path element.
//
// Files are read through an os.Root: a symbolic link cannot make it read outside
// dir. When the settings or the Blubber config are wrong the error is an
// *InvalidError listing every problem; other errors are I/O failures.
func ParseSettings(dir, repo string) (*Parsed, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("opening the checkout %s: %w", dir, err)
	}
	defer root.Close()

	r := &reader{file: ConfigFile, budget: maxValueNodes}
	raw := readSettingsFile(root, r)
	c := &checker{reader: r, root: root, raw: raw}
	s := contract.Settings{
		Blubber:           c.blubberPath(),
		ProductionVariant: DefaultProductionVariant,
		Image:             c.image(repo),
		Chart:             c.chartPath(),
		E2E:               c.e2e(),
	}
	if raw.production != nil {
		s.ProductionVariant = *raw.production
	}
	s.ServicePort, s.Values = c.service(s.Chart)

	cfg, blubberProblems := c.parseBlubber(s.Blubber)
	var variants []string
	if cfg != nil {
		variants = cfg.VariantNames()
		s.TestVariant = c.variants(s.Blubber, variants, &s)
	}
	problems := append(r.problems, blubberProblems...)
	// The settings file first, then the Blubber config; each in line order.
	slices.SortStableFunc(problems, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(fileRank(a), fileRank(b)), cmp.Compare(lineKey(a), lineKey(b)))
	})
	if len(problems) > 0 {
		return nil, &InvalidError{Problems: problems}
	}
	return &Parsed{Settings: s, Variants: variants, Blubber: cfg}, nil
}

func fileRank(p Problem) int {
	if p.File == ConfigFile {
		return 0
	}
	return 1
}

// lineKey puts the problems without a line after the others.
func lineKey(p Problem) int {
	if p.Line == 0 {
		return math.MaxInt
	}
	return p.Line
}

// readSettingsFile decodes .pipeline/config.yaml; a missing file is all defaults.
func readSettingsFile(root *os.Root, r *reader) *fileSettings {
	raw := &fileSettings{lines: map[string]int{}}
	data, err := repofile.ReadFileIn(root, ConfigFile, repofile.PipelineSettings)
	if errors.Is(err, os.ErrNotExist) {
		return raw
	}
	if err != nil {
		r.add(nil, "", "%s", readProblem(err))
		return raw
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			r.problems = append(r.problems, Problem{File: ConfigFile, Line: yamlErrorLine(err), Msg: "is not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")})
		}
		return raw
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		r.add(&extra, "", "holds more than one YAML document; keep only the settings")
	}
	top := &doc
	if top.Kind == yaml.DocumentNode && len(top.Content) == 1 {
		top = top.Content[0]
	}
	r.mapping(top, "", []string{"pipeline"}, func(_ string, v *yaml.Node, field string) {
		raw.decodePipeline(r, v, field)
	})
	return raw
}

func (raw *fileSettings) decodePipeline(r *reader, n *yaml.Node, field string) {
	str := func(v *yaml.Node, f string) *string {
		raw.lines[f] = resolve(v).Line
		if s, ok := r.str(v, f); ok {
			return &s
		}
		return nil
	}
	variant := func(v *yaml.Node, f string) (out *string) {
		r.mapping(v, f, []string{"variant"}, func(_ string, v *yaml.Node, f string) { out = str(v, f) })
		return out
	}
	r.mapping(n, field, []string{"blubber", "test", "production", "image", "chart", "e2e"}, func(key string, v *yaml.Node, f string) {
		switch key {
		case "blubber":
			raw.blubber = str(v, f)
		case "test":
			raw.test = variant(v, f)
		case "production":
			raw.production = variant(v, f)
		case "image":
			raw.image = str(v, f)
		case "chart":
			r.mapping(v, f, []string{"path", "values", "servicePort"}, func(key string, v *yaml.Node, f string) {
				raw.lines[f] = resolve(v).Line
				switch key {
				case "path":
					raw.chart = str(v, f)
				case "servicePort":
					if p, ok := r.integer(v, f); ok {
						raw.servicePort = &p
					}
				case "values":
					raw.decodeValues(r, v, f)
				}
			})
		case "e2e":
			r.list(v, f, func(_ int, v *yaml.Node, f string) { raw.decodeCheck(r, v, f) })
		}
	})
}

func (raw *fileSettings) decodeValues(r *reader, n *yaml.Node, field string) {
	if isNull(n) {
		return
	}
	if resolve(n).Kind != yaml.MappingNode {
		r.add(n, field, "expected a mapping of chart values, found %s", kindName(resolve(n)))
		return
	}
	if v, ok := r.value(n, field); ok {
		raw.values = v.(map[string]any)
	}
}

func (raw *fileSettings) decodeCheck(r *reader, n *yaml.Node, field string) {
	c := contract.Check{Method: DefaultMethod, ExpectStatus: DefaultExpectStatus}
	raw.lines[field] = resolve(n).Line
	r.mapping(n, field, []string{"name", "method", "path", "expectStatus", "expectBodyContains"}, func(key string, v *yaml.Node, f string) {
		raw.lines[f] = resolve(v).Line
		switch key {
		case "name":
			c.Name, _ = r.str(v, f)
		case "method":
			if m, ok := r.str(v, f); ok {
				c.Method = m
				if !slices.Contains(methods, m) {
					r.add(v, f, "%q is not a method conveyor sends; use one of %s (upper case)", m, strings.Join(methods, ", "))
				}
			}
		case "path":
			if p, ok := r.str(v, f); ok {
				c.Path = p
				checkRequestPath(r, v, f, p)
			}
		case "expectStatus":
			if s, ok := r.integer(v, f); ok {
				c.ExpectStatus = s
				if s < 100 || s > 599 {
					r.add(v, f, "%d is not an HTTP status; give one from 100 to 599", s)
				}
			}
		case "expectBodyContains":
			c.ExpectBodyContains, _ = r.str(v, f)
		}
	})
	if resolve(n).Kind == yaml.MappingNode {
		if strings.TrimSpace(c.Name) == "" {
			r.add(n, join(field, "name"), "is required: name the check so its report can say which one failed")
		}
		if c.Path == "" && !hasKey(n, "path") {
			r.add(n, join(field, "path"), `is required: the path to request, starting with "/" (e.g. /healthz)`)
		}
	}
	raw.e2e = append(raw.e2e, c)
}

func checkRequestPath(r *reader, n *yaml.Node, field, p string) {
	switch {
	case !strings.HasPrefix(p, "/"):
		r.add(n, field, `must start with "/" (found %q); the check requests it from the Service's base URL`, p)
	case strings.IndexFunc(p, func(c rune) bool { return c <= ' ' || c == 0x7f }) >= 0:
		r.add(n, field, "must not contain spaces or control characters; percent-encode them (a space is %%20)")
	case strings.Contains(p, "#"):
		r.add(n, field, "must not contain a fragment (#...): it is never sent to the server")
	default:
		if _, err := url.ParseRequestURI(p); err != nil {
			r.add(n, field, "is not a valid request path: %v", err)
		}
	}
}

func hasKey(n *yaml.Node, key string) bool {
	n = resolve(n)
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

func yamlErrorLine(err error) int {
	var line int
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		fmt.Sscan(m[1], &line)
	}
	return line
}

// localPath checks that p is a path inside the repository and returns it cleaned.
func localPath(p string) (string, bool) {
	if p == "" || !filepath.IsLocal(p) || strings.Contains(p, `\`) {
		return "", false
	}
	return path.Clean(p), true
}
