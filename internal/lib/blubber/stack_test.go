package blubber_test

// Integration tests of Build on the real buildkitd and registry of the local
// stack (`make up`): the hello example's tests and image, reproducibility,
// incremental rebuilds and failing steps.

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	bkclient "github.com/moby/buildkit/client"

	"github.com/wikimedia/conveyor/internal/dev/devstack"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/internal/lib/blubber"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// buildTimeout bounds one test's builds; they take seconds once the base image
// is in buildkitd's cache.
const buildTimeout = 3 * time.Minute

// builderStep is the vertex name of a custom builder's command (see customStep).
const builderStep = "run the build command"

// stack is the local stack's configuration and a buildkitd client.
type stack struct {
	cfg config.Config
	bk  *bkclient.Client
}

func newStack(tb testing.TB) *stack {
	tb.Helper()
	cfg := stacktest.Config(tb)
	bk, err := bkclient.New(context.Background(), cfg.Buildkit.Address)
	if err != nil {
		tb.Fatalf("connecting to buildkitd at %s: %v", cfg.Buildkit.Address, err)
	}
	tb.Cleanup(func() { bk.Close() })
	return &stack{cfg: cfg, bk: bk}
}

// options are BuildOptions for a context, with the registry's credentials (the
// base image is pulled through them too).
func (s *stack) options(dir string) blubber.BuildOptions {
	return blubber.BuildOptions{
		ContextDir: dir,
		Insecure:   true,
		Registry:   s.cfg.Registry.Address,
		Username:   s.cfg.Registry.Username,
		Password:   s.cfg.Registry.Password,
	}
}

func (s *stack) build(tb testing.TB, cfg *blubber.Config, variant string, opts blubber.BuildOptions) (*blubber.BuildResult, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	return blubber.Build(ctx, s.bk, cfg, variant, opts)
}

func (s *stack) mustBuild(tb testing.TB, cfg *blubber.Config, variant string, opts blubber.BuildOptions) *blubber.BuildResult {
	tb.Helper()
	res, err := s.build(tb, cfg, variant, opts)
	if err != nil {
		tb.Fatalf("building variant %s of %s: %v", variant, opts.ContextDir, err)
	}
	return res
}

// tag is a unique tag of repo in the stack's registry.
func (s *stack) tag(repo string) string {
	return s.cfg.Registry.Address + "/blubber-it/" + repo + ":" + strings.ToLower(rand.Text())
}

// helloCopy copies examples/hello into a temporary directory and parses its
// Blubber config.
func helloCopy(tb testing.TB) (string, *blubber.Config) { return exampleCopy(tb, "hello") }

// exampleCopy copies examples/<name> into a temporary directory and parses its
// Blubber config.
func exampleCopy(tb testing.TB, name string) (string, *blubber.Config) {
	tb.Helper()
	repo, err := stacktest.RepoDir()
	if err != nil {
		tb.Fatal(err)
	}
	dir := filepath.Join(tb.TempDir(), name)
	if out, err := exec.Command("cp", "-a", filepath.Join(repo, "examples", name), dir).CombinedOutput(); err != nil {
		tb.Fatalf("copying examples/%s: %v: %s", name, err, out)
	}
	cfg, err := blubber.ParseFile(filepath.Join(dir, ".pipeline", "blubber.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	return dir, cfg
}

func TestStackHelloTests(t *testing.T) {
	s := newStack(t)

	t.Run("pass", func(t *testing.T) {
		dir, cfg := helloCopy(t)
		w := &stepWatch{prefix: blubber.TestVertexPrefix}
		opts := s.options(dir)
		opts.Test, opts.Progress = true, w.record
		s.mustBuild(t, cfg, "test", opts)
		// A cached test step passed before on exactly these inputs.
		if seen, _ := w.result(); !seen {
			t.Errorf("the build had no step named %q...: the tests did not run", blubber.TestVertexPrefix)
		}
	})

	t.Run("fail", func(t *testing.T) {
		dir, cfg := helloCopy(t)
		expected := filepath.Join(dir, "test", "expected.txt")
		b, err := os.ReadFile(expected)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "hello, e2e") {
			t.Fatalf("%s no longer holds the case this test breaks (hello, e2e); update the test", expected)
		}
		if err := os.WriteFile(expected, []byte(strings.ReplaceAll(string(b), "hello, e2e", "goodbye, e2e")), 0o644); err != nil {
			t.Fatal(err)
		}
		opts := s.options(dir)
		opts.Test = true
		_, err = s.build(t, cfg, "test", opts)
		var se *blubber.StepError
		if !errors.As(err, &se) {
			t.Fatalf("want a *StepError for the failing test, got %T: %v", err, err)
		}
		if !se.Test || se.Variant != "test" || !strings.HasPrefix(se.Step, blubber.TestVertexPrefix) {
			t.Errorf("StepError{Test: %v, Variant: %q, Step: %q}, want a test failure of variant test", se.Test, se.Variant, se.Step)
		}
		for _, want := range []string{
			"not ok - GET /cgi-bin/hello?name=e2e",
			`want: 200 application/json {"greeting":"goodbye, e2e"}`,
			`got:  200 application/json {"greeting":"hello, e2e"}`,
			"passed, 1 failed",
		} {
			if !strings.Contains(se.Output, want) {
				t.Errorf("the test output lacks %q:\n%s", want, se.Output)
			}
		}
	})
}

func TestStackHelloProduction(t *testing.T) {
	s := newStack(t)
	dir, cfg := helloCopy(t)
	opts := s.options(dir)
	opts.Tag, opts.Push = s.tag("hello"), true
	res := s.mustBuild(t, cfg, "production", opts)
	if !strings.HasPrefix(res.Digest, "sha256:") || res.Ref != opts.Tag+"@"+res.Digest {
		t.Fatalf("BuildResult{Digest: %q, Ref: %q}, want the pushed digest of %s", res.Digest, res.Ref, opts.Tag)
	}

	ref, err := name.ParseReference(res.Ref)
	if err != nil {
		t.Fatal(err)
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: s.cfg.Registry.Username, Password: s.cfg.Registry.Password})
	img, err := remote.Image(ref, remote.WithAuth(auth), remote.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("pulling %s: %v", res.Ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if want := cfg.Variants["production"].Entrypoint; !slices.Equal(c.Entrypoint, want) {
		t.Errorf("entrypoint %q, want %q", c.Entrypoint, want)
	}
	if uid, _, _ := strings.Cut(c.User, ":"); uid != "900" {
		t.Errorf("user %q, want the numeric runs user 900", c.User)
	}
	if c.Labels["blubber.variant"] != "production" || c.Labels["blubber.version"] != blubber.Version {
		t.Errorf("labels %v, want blubber.variant=production and blubber.version=%s", c.Labels, blubber.Version)
	}

	const hello = "srv/app/www/cgi-bin/hello"
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading the layers of %s: %v", res.Ref, err)
		}
		if strings.TrimPrefix(h.Name, "/") != hello {
			continue
		}
		found = true
		if h.Typeflag != tar.TypeReg || h.FileInfo().Mode().Perm() != 0o755 {
			t.Errorf("%s: type %q mode %v, want a regular file with mode 0755", hello, h.Typeflag, h.FileInfo().Mode())
		}
		if h.Uid != blubber.DefaultLivesUID {
			t.Errorf("%s is owned by uid %d, want the lives user %d", hello, h.Uid, blubber.DefaultLivesUID)
		}
	}
	if !found {
		t.Errorf("%s is not in the image %s", hello, res.Ref)
	}
}

func TestStackReproducible(t *testing.T) {
	s := newStack(t)
	dir, cfg := helloCopy(t)
	opts := s.options(dir)
	opts.Tag = s.tag("repro")
	first := s.mustBuild(t, cfg, "production", opts)
	if first.Digest == "" {
		t.Fatal("the build exported no digest")
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "www", "index.html"), later, later); err != nil {
		t.Fatal(err)
	}
	second := s.mustBuild(t, cfg, "production", opts)
	if second.Digest != first.Digest {
		t.Errorf("touching www/index.html changed the digest: %s, then %s", first.Digest, second.Digest)
	}
}

// incremental is a context whose custom builder is slow and depends only on
// deps.txt, and whose other files are copied after it.
type incremental struct {
	dir string
	cfg *blubber.Config
}

const incrementalConfig = `version: v4
base: ` + devstack.BaseImage + `
variants:
  app:
    builder:
      requirements: [deps.txt]
      command: [sh, -c, "sleep 3; cp deps.txt /opt/lib/deps-installed"]
    copies: [local]
    entrypoint: [cat, /opt/lib/deps-installed]
`

// newIncremental makes a context that buildkitd has never seen: deps.txt holds
// a random token, so that the builder's step cannot be cached.
func newIncremental(tb testing.TB) *incremental {
	tb.Helper()
	cfg, err := blubber.Parse([]byte(incrementalConfig))
	if err != nil {
		tb.Fatal(err)
	}
	in := &incremental{dir: tb.TempDir(), cfg: cfg}
	in.write(tb, "deps.txt", "dependency-token "+rand.Text()+"\n")
	in.write(tb, "src/main.txt", "version 1\n")
	return in
}

func (in *incremental) write(tb testing.TB, rel, content string) {
	tb.Helper()
	p := filepath.Join(in.dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// stepWatch records, from the progress of a build, whether a step whose name
// starts with prefix was seen and whether it came from the cache.
type stepWatch struct {
	prefix       string
	mu           sync.Mutex
	seen, cached bool
}

func (w *stepWatch) record(p blubber.Progress) {
	if p.Status == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, v := range p.Status.Vertexes {
		if strings.HasPrefix(v.Name, w.prefix) {
			w.seen = true
			w.cached = w.cached || v.Cached
		}
	}
}

func (w *stepWatch) result() (seen, cached bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen, w.cached
}

// rebuild builds the context, changes a file that is not a requirement and
// builds again, returning each build's digest, duration and builder cache state.
func (in *incremental) rebuild(tb testing.TB, s *stack, tag string) (cold, warm incrementalBuild) {
	tb.Helper()
	cold = in.buildOnce(tb, s, tag)
	in.write(tb, "src/main.txt", "version 2\n")
	warm = in.buildOnce(tb, s, tag)
	return cold, warm
}

type incrementalBuild struct {
	digest       string
	took         time.Duration
	seen, cached bool
}

func (in *incremental) buildOnce(tb testing.TB, s *stack, tag string) incrementalBuild {
	tb.Helper()
	w := &stepWatch{prefix: builderStep}
	opts := s.options(in.dir)
	opts.Tag, opts.Progress = tag, w.record
	start := time.Now()
	res := s.mustBuild(tb, in.cfg, "app", opts)
	out := incrementalBuild{digest: res.Digest, took: time.Since(start)}
	out.seen, out.cached = w.result()
	return out
}

func TestStackIncremental(t *testing.T) {
	s := newStack(t)
	in := newIncremental(t)
	cold, warm := in.rebuild(t, s, s.tag("incremental"))
	t.Logf("cold build %v, rebuild after changing src/main.txt %v", cold.took, warm.took)
	if !cold.seen || cold.cached {
		t.Errorf("first build: builder step seen %v, cached %v; want it run (deps.txt is new)", cold.seen, cold.cached)
	}
	if !warm.seen || !warm.cached {
		t.Errorf("rebuild: builder step seen %v, cached %v; want it from the cache (only src/main.txt changed)", warm.seen, warm.cached)
	}
	if cold.digest == "" || cold.digest == warm.digest {
		t.Errorf("digests %q then %q; want a new image after src/main.txt changed", cold.digest, warm.digest)
	}
}

// BenchmarkIncrementalRebuild compares a cold build (nothing cached) with the
// rebuild after a change to a file the builder does not need.
func BenchmarkIncrementalRebuild(b *testing.B) {
	s := newStack(b)
	var cold, warm time.Duration
	for range b.N {
		in := newIncremental(b)
		c, w := in.rebuild(b, s, s.tag("incremental-bench"))
		if !w.cached {
			b.Fatal("the rebuild ran the builder step again; want it from the cache")
		}
		cold += c.took
		warm += w.took
	}
	b.ReportMetric(cold.Seconds()/float64(b.N), "cold-s/op")
	b.ReportMetric(warm.Seconds()/float64(b.N), "warm-s/op")
	b.ReportMetric(cold.Seconds()/warm.Seconds(), "cold/warm")
}

func TestStackFailingStep(t *testing.T) {
	s := newStack(t)
	cfg, err := blubber.Parse([]byte(`version: v4
base: ` + devstack.BaseImage + `
variants:
  broken:
    builder:
      command: ["false"]
    copies: [local]
`))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte(rand.Text()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = s.build(t, cfg, "broken", s.options(dir))
	var se *blubber.StepError
	if !errors.As(err, &se) {
		t.Fatalf("want a *StepError for the failing builder command, got %T: %v", err, err)
	}
	if se.Test || se.Variant != "broken" || se.Step != builderStep {
		t.Errorf("StepError{Test: %v, Variant: %q, Step: %q}, want the build step %q of variant broken", se.Test, se.Variant, se.Step, builderStep)
	}
	if !strings.Contains(err.Error(), builderStep) {
		t.Errorf("the error does not name the step: %v", err)
	}
}
