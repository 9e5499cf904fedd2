package pipelineconfig

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/wikimedia/conveyor/activities/contract"
)

const blubberTestAndProduction = `version: v4
base: localhost:5000/conveyor/busybox:latest
variants:
  test:
    copies: [local]
    entrypoint: [/bin/sh, test/run.sh]
  production:
    copies: [local]
    entrypoint: [/bin/busybox, httpd, -f, -p, "8080"]
`

const blubberProductionOnly = `version: v4
base: localhost:5000/conveyor/busybox:latest
variants:
  production:
    copies: [local]
    entrypoint: [/bin/busybox, httpd, -f, -p, "8080"]
`

// repoWith writes files (path → content) into a new directory.
func repoWith(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func invalid(t *testing.T, err error) *InvalidError {
	t.Helper()
	var inv *InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("error %v (%T) is not an *InvalidError", err, err)
	}
	return inv
}

func TestHelloExampleSettings(t *testing.T) {
	p, err := ParseSettings(filepath.Join("..", "..", "..", "examples", "hello"), "mediawiki/services/hello")
	if err != nil {
		t.Fatal(err)
	}
	s := p.Settings
	if s.Blubber != DefaultBlubber || s.TestVariant != "test" || s.ProductionVariant != "production" ||
		s.Image != "hello" || s.Chart != "" || s.ServicePort != 8080 {
		t.Errorf("settings = %+v", s)
	}
	if !reflect.DeepEqual(p.Variants, []string{"production", "test"}) {
		t.Errorf("variants = %v", p.Variants)
	}
	if got := s.Values["containerPort"]; got != 8080 {
		t.Errorf("values.containerPort = %#v, want 8080", got)
	}
	if got := s.Values["probes"].(map[string]any)["readiness"].(map[string]any)["path"]; got != "/cgi-bin/healthz" {
		t.Errorf("values.probes.readiness.path = %#v", got)
	}
	want := []contract.Check{
		{Name: "health", Method: "GET", Path: "/cgi-bin/healthz", ExpectStatus: 200},
		{Name: "hello", Method: "GET", Path: "/cgi-bin/hello?name=e2e", ExpectStatus: 200, ExpectBodyContains: `"greeting":"hello, e2e"`},
		{Name: "bad name is refused", Method: "GET", Path: "/cgi-bin/hello?name=a%20b", ExpectStatus: 400},
	}
	if !reflect.DeepEqual(s.E2E, want) {
		t.Errorf("e2e = %+v\nwant %+v", s.E2E, want)
	}
}

func TestDefaultsWithOnlyABlubberConfig(t *testing.T) {
	dir := repoWith(t, map[string]string{DefaultBlubber: blubberTestAndProduction})
	p, err := ParseSettings(dir, "https://gerrit.example.org/r/mediawiki/services/My_Service.git")
	if err != nil {
		t.Fatal(err)
	}
	want := contract.Settings{
		Blubber: DefaultBlubber, TestVariant: "test", ProductionVariant: "production", Image: "my_service",
		Values: map[string]any{"service": map[string]any{"port": 8080}}, ServicePort: 8080,
	}
	if !reflect.DeepEqual(p.Settings, want) {
		t.Errorf("settings = %+v\nwant %+v", p.Settings, want)
	}

	dir = repoWith(t, map[string]string{DefaultBlubber: blubberProductionOnly})
	p, err = ParseSettings(dir, dir)
	if err != nil {
		t.Fatal(err)
	}
	if p.Settings.TestVariant != "" {
		t.Errorf("test variant = %q, want none: the Blubber config has no test variant", p.Settings.TestVariant)
	}
}

func TestExplicitSettings(t *testing.T) {
	dir := repoWith(t, map[string]string{
		"build/blubber.yaml":    blubberTestAndProduction,
		"charts/svc/Chart.yaml": "apiVersion: v2\nname: svc\nversion: 0.1.0\n",
		".pipeline/config.yaml": `pipeline:
  blubber: ./build/blubber.yaml
  test: {variant: ""}
  production: {variant: test}
  image: services/hello
  chart:
    path: charts/svc/
    servicePort: 9000
    values: {service: {port: 80}, list: [1, 2.5, true, null, x]}
  e2e:
    - {name: post, method: POST, path: /x, expectStatus: 201}
`,
	})
	p, err := ParseSettings(dir, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := contract.Settings{
		Blubber: "build/blubber.yaml", TestVariant: "", ProductionVariant: "test", Image: "services/hello",
		Chart: "charts/svc", ServicePort: 9000,
		Values: map[string]any{"service": map[string]any{"port": 80}, "list": []any{1, 2.5, true, nil, "x"}},
		E2E:    []contract.Check{{Name: "post", Method: "POST", Path: "/x", ExpectStatus: 201}},
	}
	if !reflect.DeepEqual(p.Settings, want) {
		t.Errorf("settings = %+v\nwant %+v", p.Settings, want)
	}
}

func TestEveryProblemIsReported(t *testing.T) {
	dir := repoWith(t, map[string]string{
		DefaultBlubber: blubberTestAndProduction,
		".pipeline/config.yaml": `pipeline:
  test: {variant: tset}
  production: {variant: production, extra: 1}
  image: Hello:latest
  chart:
    path: charts/none
    valeus: {}
  e2e:
    - name: health
      path: /healthz
    - name: health
      path: healthz
      method: get
      expectStatus: 42
    - path: /a b
    - name: no path
  deploy: true
`,
	})
	_, err := ParseSettings(dir, dir)
	inv := invalid(t, err)
	if inv.Type() != contract.ErrInvalidConfig {
		t.Errorf("type = %s, want %s", inv.Type(), contract.ErrInvalidConfig)
	}
	msg := err.Error()
	for _, want := range []string{
		`.pipeline/config.yaml: pipeline.test.variant: names the variant "tset", which .pipeline/blubber.yaml does not define; it defines "production", "test" (line 2)`,
		`.pipeline/config.yaml: pipeline.production.extra: unknown field; the fields here are variant (line 3)`,
		`.pipeline/config.yaml: pipeline.image: "Hello:latest" must be a repository name without tag or digest`,
		`.pipeline/config.yaml: pipeline.chart.valeus: unknown field (did you mean "values"?)`,
		`.pipeline/config.yaml: pipeline.chart.path: "charts/none" holds no Chart.yaml`,
		`.pipeline/config.yaml: pipeline.e2e[1].path: must start with "/"`,
		`.pipeline/config.yaml: pipeline.e2e[1].method: "get" is not a method`,
		`.pipeline/config.yaml: pipeline.e2e[1].expectStatus: 42 is not an HTTP status`,
		`.pipeline/config.yaml: pipeline.e2e[1].name: "health" is also the name of pipeline.e2e[0]`,
		`.pipeline/config.yaml: pipeline.e2e[2].path: must not contain spaces`,
		`.pipeline/config.yaml: pipeline.e2e[2].name: is required`,
		`.pipeline/config.yaml: pipeline.e2e[3].path: is required`,
		`.pipeline/config.yaml: pipeline.deploy: unknown field; the fields here are blubber, test, production, image, chart, e2e (line 17)`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error does not say\n  %s\nit says:\n%s", want, msg)
		}
	}
}

func TestBlubberProblems(t *testing.T) {
	dir := repoWith(t, map[string]string{DefaultBlubber: `version: v4
base: localhost:5000/conveyor/busybox:latest
variants:
  test:
    copies: [buid]
  production:
    entrypoint: [/bin/true]
    lives: {in: relative}
`})
	_, err := ParseSettings(dir, dir)
	inv := invalid(t, err)
	if inv.Type() != contract.ErrInvalidBlubber {
		t.Errorf("type = %s, want %s (%v)", inv.Type(), contract.ErrInvalidBlubber, err)
	}
	for _, p := range inv.Problems {
		if p.File != DefaultBlubber || p.Field == "" || p.Line == 0 {
			t.Errorf("problem %+v does not name the file, the field and the line", p)
		}
	}
	if !strings.Contains(err.Error(), `.pipeline/blubber.yaml: variants.test.copies[0]`) {
		t.Errorf("the error does not name the bad copy:\n%s", err)
	}

	dir = repoWith(t, map[string]string{DefaultBlubber: "version: v3\nvariants: {}\n"})
	_, err = ParseSettings(dir, dir)
	if inv := invalid(t, err); inv.Type() != contract.ErrInvalidBlubber || !strings.Contains(err.Error(), ".pipeline/blubber.yaml: version: ") {
		t.Errorf("v3 config: %s %v", inv.Type(), err)
	}
}

func TestMissingAndUnreadableFiles(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		link  [2]string
		typ   string
		says  string
	}{
		{"no blubber config", map[string]string{"README": "x"}, [2]string{}, contract.ErrInvalidConfig,
			".pipeline/blubber.yaml: not found: conveyor builds the images from a Blubber config"},
		{"named blubber config missing", map[string]string{ConfigFile: "pipeline: {blubber: b.yaml}"}, [2]string{}, contract.ErrInvalidConfig,
			".pipeline/config.yaml: pipeline.blubber: names b.yaml, which does not exist in the repository (line 1)"},
		{"blubber outside the repository", map[string]string{ConfigFile: "pipeline: {blubber: ../b.yaml}"}, [2]string{}, contract.ErrInvalidConfig,
			`pipeline.blubber: "../b.yaml" is not a path inside the repository`},
		{"symbolic link out of the repository", map[string]string{}, [2]string{"/etc/hostname", DefaultBlubber}, contract.ErrInvalidBlubber,
			".pipeline/blubber.yaml: cannot be read"},
		{"not YAML", map[string]string{DefaultBlubber: blubberTestAndProduction, ConfigFile: "pipeline:\n  image: [\n"}, [2]string{}, contract.ErrInvalidConfig,
			".pipeline/config.yaml: is not valid YAML"},
		{"not a mapping", map[string]string{DefaultBlubber: blubberTestAndProduction, ConfigFile: "- pipeline\n"}, [2]string{}, contract.ErrInvalidConfig,
			".pipeline/config.yaml: expected a mapping with the keys pipeline, found a list (line 1)"},
		{"default production variant missing", map[string]string{DefaultBlubber: strings.ReplaceAll(blubberTestAndProduction, "production:", "prod:")}, [2]string{}, contract.ErrInvalidConfig,
			`.pipeline/blubber.yaml: variants: has no "production" variant, the production variant by default`},
		{"service port disagrees with the values", map[string]string{DefaultBlubber: blubberTestAndProduction,
			ConfigFile: "pipeline:\n  chart:\n    servicePort: 8080\n    values: {service: {port: 80}}\n"}, [2]string{}, contract.ErrInvalidConfig,
			".pipeline/config.yaml: pipeline.chart.servicePort: is 8080 but the values set service.port to 80"},
		{"wrong types", map[string]string{DefaultBlubber: blubberTestAndProduction,
			ConfigFile: "pipeline:\n  image: {a: b}\n  chart: {servicePort: eighty}\n  e2e: {name: x}\n"}, [2]string{}, contract.ErrInvalidConfig,
			"pipeline.image: expected a string, found a mapping (line 2)\n" +
				`.pipeline/config.yaml: pipeline.chart.servicePort: expected an integer, found a string ("eighty") (line 3)` + "\n" +
				".pipeline/config.yaml: pipeline.e2e: expected a list, found a mapping (line 4)"},
		{"candidates namespace", map[string]string{DefaultBlubber: blubberTestAndProduction, ConfigFile: "pipeline: {image: candidates/x}"}, [2]string{}, contract.ErrInvalidConfig,
			`pipeline.image: "candidates/x" is under candidates/`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := repoWith(t, tt.files)
			if tt.link[0] != "" {
				link := filepath.Join(dir, tt.link[1])
				if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(tt.link[0], link); err != nil {
					t.Fatal(err)
				}
			}
			_, err := ParseSettings(dir, dir)
			inv := invalid(t, err)
			if inv.Type() != tt.typ {
				t.Errorf("type = %s, want %s", inv.Type(), tt.typ)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("the error does not say\n  %s\nit says:\n%s", tt.says, err)
			}
		})
	}
}

func TestValuesMustBeJSON(t *testing.T) {
	dir := repoWith(t, map[string]string{DefaultBlubber: blubberTestAndProduction, ConfigFile: `pipeline:
  chart:
    values:
      a: &x [1, 2]
      b: *x
      1: numeric keys are strings
      c: .inf
      d: {[x]: complex key}
`})
	_, err := ParseSettings(dir, dir)
	msg := invalid(t, err).Error()
	for _, want := range []string{"pipeline.chart.values.c: .inf cannot be written as JSON", "pipeline.chart.values.d: keys must be strings, found a list"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error does not say %q:\n%s", want, msg)
		}
	}
}

func TestDefaultImage(t *testing.T) {
	for repo, want := range map[string]string{
		"/srv/src/hello":  "hello",
		"/srv/src/hello/": "hello",
		"https://gerrit.wikimedia.org/r/mediawiki/core.git": "core",
		"git@github.com:wikimedia/Blubber_Tools.git":        "blubber_tools",
		"ssh://host/x/My Service!!":                         "my-service",
		"ssh://host/x/--.--":                                "app",
		"host:repo":                                         "repo",
		"/srv/src/a..b__c":                                  "a.b_c",
	} {
		got := DefaultImage(repo)
		if got != want {
			t.Errorf("DefaultImage(%q) = %q, want %q", repo, got, want)
		}
		if msg := checkImage(got); msg != "" {
			t.Errorf("DefaultImage(%q) = %q is invalid: %s", repo, got, msg)
		}
	}
}
