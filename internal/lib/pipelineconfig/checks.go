package pipelineconfig

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/internal/lib/blubber"
	"github.com/wikimedia/conveyor/internal/lib/repofile"
)

// checker fills in the defaults of the decoded settings and checks them against
// the repository's files, adding a Problem to reader for each thing wrong.
type checker struct {
	*reader
	root *os.Root
	raw  *fileSettings
}

// addAt adds a problem of the settings file at field, with the field's line.
func (c *checker) addAt(field, format string, args ...any) {
	c.problems = append(c.problems, Problem{File: ConfigFile, Field: field, Line: c.raw.lines[field], Msg: fmt.Sprintf(format, args...)})
}

func (c *checker) blubberPath() string {
	if c.raw.blubber == nil {
		return DefaultBlubber
	}
	p, ok := localPath(*c.raw.blubber)
	if !ok {
		c.addAt("pipeline.blubber", "%q is not a path inside the repository; give a relative path such as %s", *c.raw.blubber, DefaultBlubber)
		return *c.raw.blubber
	}
	return p
}

func (c *checker) chartPath() string {
	if c.raw.chart == nil || *c.raw.chart == "" {
		return ""
	}
	const field = "pipeline.chart.path"
	p, ok := localPath(*c.raw.chart)
	if !ok {
		c.addAt(field, `%q is not a path inside the repository; give a relative path such as charts/myservice, or "" for conveyor's chart`, *c.raw.chart)
		return *c.raw.chart
	}
	if _, err := c.root.Stat(path.Join(p, "Chart.yaml")); err != nil {
		c.addAt(field, `%q holds no Chart.yaml; give the directory of a Helm chart, or "" for conveyor's chart`, p)
	}
	return p
}

// image returns pipeline.image, or the repository's last path element made a
// valid repository name.
func (c *checker) image(repo string) string {
	const field = "pipeline.image"
	if c.raw.image != nil {
		img := *c.raw.image
		if msg := checkImage(img); msg != "" {
			c.addAt(field, "%s", msg)
		}
		return img
	}
	img := DefaultImage(repo)
	if msg := checkImage(img); msg != "" {
		c.problems = append(c.problems, Problem{File: ConfigFile, Field: field,
			Msg: fmt.Sprintf("is unset and the name derived from the repository, %q, is not usable (%s); set pipeline.image", img, msg)})
	}
	return img
}

// checkImage says what is wrong with an image name, or "".
func checkImage(img string) string {
	switch {
	case img == "":
		return "is empty; name the image, e.g. hello"
	case strings.ContainsAny(img, ":@"):
		return fmt.Sprintf("%q must be a repository name without tag or digest; conveyor chooses the tags", img)
	case strings.HasPrefix(img, candidatesPrefix):
		return fmt.Sprintf("%q is under %s, where conveyor keeps unpublished candidates; choose another name", img, candidatesPrefix)
	}
	// A placeholder registry: the image is a repository relative to conveyor's.
	if _, err := name.NewRepository("registry.invalid/"+img, name.StrictValidation); err != nil {
		return fmt.Sprintf("%q is not a valid repository name (lower-case letters, digits and the separators . _ -, path components joined by /): %v", img, err)
	}
	return ""
}

// DefaultImage is the image name of a repository whose settings name none: the
// last path element of repo without .git, lower-cased, each run of characters a
// repository name cannot hold replaced with "-" ("mediawiki/services/Hello_World.git"
// gives "hello_world"; a name with nothing left gives "app").
func DefaultImage(repo string) string {
	repo = strings.TrimRight(repo, "/")
	if i := strings.LastIndexAny(repo, "/:"); i >= 0 {
		repo = repo[i+1:]
	}
	repo = strings.ToLower(strings.TrimSuffix(repo, ".git"))
	var b strings.Builder
	dash := false
	for _, r := range repo {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case (r == '.' || r == '_' || r == '-') && !dash && b.Len() > 0:
			b.WriteRune(r)
			dash = true
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	img := strings.TrimRight(b.String(), "._-")
	if img == "" {
		return fallbackImage
	}
	return img
}

// service returns the Service port and the chart values. With conveyor's chart
// (chart ""), the values get service.port when they do not set it, so the port the
// e2e checks call is the port the chart's Service listens on.
func (c *checker) service(chart string) (int, map[string]any) {
	values := c.raw.values
	if values == nil {
		values = map[string]any{}
	}
	const portField, valuesField = "pipeline.chart.servicePort", "pipeline.chart.values"
	fromValues, hasValuesPort := 0, false
	svc, isMap := values["service"].(map[string]any)
	if s, ok := values["service"]; ok && s != nil && !isMap {
		c.addAt(valuesField, "service: expected a mapping (with port), found %v", s)
	}
	if p, ok := svc["port"]; ok {
		n, isInt := p.(int)
		if !isInt || n < 1 || n > 65535 {
			c.addAt(valuesField, "service.port: expected a port number from 1 to 65535, found %v", p)
		}
		fromValues, hasValuesPort = n, true
	}
	port := DefaultServicePort
	switch {
	case c.raw.servicePort != nil:
		port = *c.raw.servicePort
		if port < 1 || port > 65535 {
			c.addAt(portField, "%d is not a port number; give one from 1 to 65535", port)
		}
		if chart == "" && hasValuesPort && fromValues != port {
			c.addAt(portField, "is %d but the values set service.port to %d, the port conveyor's chart gives the Service; drop one of them", port, fromValues)
		}
	case hasValuesPort:
		port = fromValues
	}
	if chart == "" && !hasValuesPort && (isMap || values["service"] == nil) {
		if svc == nil {
			svc = map[string]any{}
		}
		svc["port"] = port
		values["service"] = svc
	}
	return port, values
}

func (c *checker) e2e() []contract.Check {
	seen := map[string]int{}
	for i, chk := range c.raw.e2e {
		if chk.Name == "" {
			continue
		}
		if j, dup := seen[chk.Name]; dup {
			f := fmt.Sprintf("pipeline.e2e[%d].name", i)
			c.addAt(f, "%q is also the name of pipeline.e2e[%d]; give each check its own name", chk.Name, j)
			continue
		}
		seen[chk.Name] = i
	}
	return c.raw.e2e
}

// parseBlubber reads and checks the Blubber config at p. Its problems are the
// Blubber config's, except a missing file, which is the settings' (they name it).
func (c *checker) parseBlubber(p string) (*blubber.Config, []Problem) {
	if _, ok := localPath(p); !ok {
		return nil, nil // reported by blubberPath
	}
	data, err := repofile.ReadFileIn(c.root, p, repofile.BlubberConfig)
	if errors.Is(err, os.ErrNotExist) {
		if c.raw.blubber != nil {
			c.addAt("pipeline.blubber", "names %s, which does not exist in the repository", p)
			return nil, nil
		}
		return nil, []Problem{{File: p, Msg: "not found: conveyor builds the images from a Blubber config; add one, or name yours with pipeline.blubber in " + ConfigFile}}
	}
	if err != nil {
		return nil, []Problem{{File: p, Msg: readProblem(err), Blubber: true}}
	}
	cfg, err := blubber.Parse(data)
	if err == nil {
		return cfg, nil
	}
	var list blubber.Errors
	var version *blubber.VersionError
	switch {
	case errors.As(err, &list):
		problems := make([]Problem, len(list))
		for i, fe := range list {
			problems[i] = Problem{File: p, Field: fe.Path, Line: fe.Line, Msg: fe.Msg, Blubber: true}
		}
		return nil, problems
	case errors.As(err, &version):
		return nil, []Problem{{File: p, Field: "version", Msg: version.Error(), Blubber: true}}
	}
	return nil, []Problem{{File: p, Msg: err.Error(), Blubber: true}}
}

// variants checks the test and production variants against the Blubber config's
// and returns the test variant.
func (c *checker) variants(blubberFile string, variants []string, s *contract.Settings) string {
	known := quoteList(variants)
	test := ""
	switch {
	case c.raw.test == nil:
		if slices.Contains(variants, DefaultTestVariant) {
			test = DefaultTestVariant
		}
	case *c.raw.test == "":
		// Explicitly no tests.
	case !slices.Contains(variants, *c.raw.test):
		c.addAt("pipeline.test.variant", "names the variant %q, which %s does not define; it defines %s", *c.raw.test, blubberFile, known)
	default:
		test = *c.raw.test
	}
	prod := s.ProductionVariant
	switch {
	case c.raw.production != nil && prod == "":
		c.addAt("pipeline.production.variant", "is empty; name the Blubber variant to build, deploy and publish (%s defines %s)", blubberFile, known)
	case c.raw.production != nil && !slices.Contains(variants, prod):
		c.addAt("pipeline.production.variant", "names the variant %q, which %s does not define; it defines %s", prod, blubberFile, known)
	case c.raw.production == nil && !slices.Contains(variants, prod):
		c.problems = append(c.problems, Problem{File: blubberFile, Field: "variants",
			Msg: fmt.Sprintf("has no %q variant, the production variant by default; add it, or name the variant to deploy with pipeline.production.variant in %s (the file defines %s)", prod, ConfigFile, known)})
	}
	return test
}

func quoteList(names []string) string {
	if len(names) == 0 {
		return "no variants"
	}
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
