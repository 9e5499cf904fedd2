package registry_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/registry"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// recorder records the registry requests the activity sends.
type recorder struct {
	mu       sync.Mutex
	inner    http.RoundTripper
	requests []*http.Request
	// after, when set, is called with each request once it is answered.
	after func(*http.Request)
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.requests = append(r.requests, req)
	r.mu.Unlock()
	resp, err := r.inner.RoundTrip(req)
	if r.after != nil && err == nil {
		r.after(req)
	}
	return resp, err
}

// take returns the requests recorded since the last call.
func (r *recorder) take() []*http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.requests
	r.requests = nil
	return out
}

func isBlobUpload(req *http.Request) bool {
	return strings.Contains(req.URL.Path, "/blobs/uploads/") &&
		(req.Method == http.MethodPatch || req.Method == http.MethodPut || (req.Method == http.MethodPost && req.URL.Query().Get("mount") == ""))
}

type fixture struct {
	cfg      config.Config
	auth     authn.Authenticator
	rec      *recorder
	acts     *registry.Activities
	suffix   string
	cand     name.Digest
	candImg  v1.Image
	blobs    []string // the candidate's layer and config digests
	deletes  []name.Digest
	deleteMu sync.Mutex
}

// newFixture publishes on the local stack's registry, the real one: only the test
// of what that registry does (cross-repository mounts, seen in its access log)
// uses it; memory_test.go covers the activity's logic in memory.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureOn(t, stacktest.Config(t))
}

// newFixtureOn pushes a random candidate into the registry of cfg and builds the
// activities for it, recording their requests.
func newFixtureOn(t *testing.T, cfg config.Config) *fixture {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	f := &fixture{
		cfg:    cfg,
		auth:   authn.FromConfig(authn.AuthConfig{Username: cfg.Registry.Username, Password: cfg.Registry.Password}),
		rec:    &recorder{inner: remote.DefaultTransport},
		suffix: hex.EncodeToString(b),
	}
	acts, err := registry.New(cfg, registry.WithTransport(f.rec))
	if err != nil {
		t.Fatal(err)
	}
	f.acts = acts
	f.cand, f.candImg = f.push(t, "candidates/conveyortest-"+f.suffix+":candidate")
	layers, err := f.candImg.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		d, _ := l.Digest()
		f.blobs = append(f.blobs, d.String())
	}
	cfgName, _ := f.candImg.ConfigName()
	f.blobs = append(f.blobs, cfgName.String())
	t.Cleanup(func() { f.cleanup(t) })
	return f
}

// push writes a new random image to ref (relative to the registry) and returns it
// by digest.
func (f *fixture) push(t *testing.T, ref string) (name.Digest, v1.Image) {
	t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(f.cfg.Registry.Address + "/" + ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, remote.WithAuth(f.auth)); err != nil {
		t.Fatalf("pushing %s: %v", tag, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	dig := tag.Context().Digest(d.String())
	f.deleteMu.Lock()
	f.deletes = append(f.deletes, dig)
	f.deleteMu.Unlock()
	return dig, img
}

func (f *fixture) cleanup(t *testing.T) {
	for _, d := range f.deletes {
		if err := remote.Delete(d, remote.WithAuth(f.auth)); err != nil {
			t.Logf("deleting %s: %v", d, err)
		}
	}
}

func (f *fixture) publicRepo() string { return "conveyortest/publish-" + f.suffix }

func (f *fixture) publish(t *testing.T, in contract.PublishImageInput) (contract.PublishImageOutput, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	v, err := env.ExecuteActivity(contract.PublishImage.Name, in)
	if err != nil {
		return contract.PublishImageOutput{}, err
	}
	var out contract.PublishImageOutput
	if err := v.Get(&out); err != nil {
		t.Fatal(err)
	}
	return out, nil
}

func (f *fixture) head(t *testing.T, ref string) (string, bool) {
	t.Helper()
	tag, err := name.NewTag(f.cfg.Registry.Address + "/" + ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(tag)
	if err != nil {
		return "", false
	}
	return desc.Digest.String(), true
}

func applicationError(t *testing.T, err error) *temporal.ApplicationError {
	t.Helper()
	var app *temporal.ApplicationError
	if !errors.As(err, &app) {
		t.Fatalf("error %v is not an application error", err)
	}
	return app
}

// publishCandidate publishes the candidate under tags into the public
// repository and checks the output and the tags: each one, once, in order,
// pointing at the candidate's digest. The requests recorded before it are
// dropped, so f.rec.take() then returns the publish's.
func (f *fixture) publishCandidate(t *testing.T, tags ...string) contract.PublishImageOutput {
	t.Helper()
	f.rec.take()
	out, err := f.publish(t, contract.PublishImageInput{From: f.cand.String(), Repository: f.publicRepo(), Tags: tags})
	if err != nil {
		t.Fatal(err)
	}
	if out.Digest != f.cand.DigestStr() {
		t.Errorf("published digest %s, want the candidate's %s", out.Digest, f.cand.DigestStr())
	}
	repo := f.cfg.Registry.Address + "/" + f.publicRepo()
	var want []string
	for _, tag := range tags {
		if ref := repo + ":" + tag + "@" + out.Digest; !slices.Contains(want, ref) {
			want = append(want, ref)
		}
		if d, ok := f.head(t, f.publicRepo()+":"+tag); !ok || d != out.Digest {
			t.Errorf("%s points at %q (exists %v), want %s", tag, d, ok, out.Digest)
		}
	}
	if !slices.Equal(out.Refs, want) {
		t.Errorf("refs = %v, want %v", out.Refs, want)
	}
	return out
}

func TestPublishMountsTheCandidateAndKeepsItsDigest(t *testing.T) {
	f := newFixture(t)
	f.publishCandidate(t, "2026-11-26-120000-production", "change-1234-2")

	// Every blob was mounted from the candidate's repository; none was uploaded.
	var mounted []string
	for _, req := range f.rec.take() {
		if isBlobUpload(req) {
			t.Errorf("a blob was uploaded: %s %s", req.Method, req.URL)
		}
		if q := req.URL.Query(); req.Method == http.MethodPost && q.Get("mount") != "" {
			if q.Get("from") != f.cand.Context().RepositoryStr() {
				t.Errorf("mounted from %q, want the candidate's repository %s", q.Get("from"), f.cand.Context().RepositoryStr())
			}
			mounted = append(mounted, q.Get("mount"))
		}
	}
	slices.Sort(mounted)
	blobs := slices.Sorted(slices.Values(f.blobs))
	if !slices.Equal(mounted, blobs) {
		t.Errorf("mounted %v, want every blob of the candidate %v", mounted, blobs)
	}
	f.checkAccessLog(t, blobs)
}

// checkAccessLog checks the registry's own record: a cross-repository mount for
// each blob, answered 201, and no blob upload into the public repository.
func (f *fixture) checkAccessLog(t *testing.T, blobs []string) {
	t.Helper()
	path := filepath.Join(f.cfg.StateDir, "registry", "nginx", "access.log")
	prefix := "/v2/" + f.publicRepo() + "/blobs/uploads/"
	var lines []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("reading the registry's access log (the local stack writes it; `make up`): %v", err)
		}
		lines = lines[:0]
		for line := range strings.SplitSeq(string(b), "\n") {
			if strings.Contains(line, prefix) {
				lines = append(lines, line)
			}
		}
		missing := 0
		for _, blob := range blobs {
			if !slices.ContainsFunc(lines, func(l string) bool {
				return strings.Contains(l, `"POST `+prefix+"?") && strings.Contains(l, "mount="+strings.Replace(blob, ":", "%3A", 1)) &&
					strings.Contains(l, "from=") && strings.Contains(l, `HTTP/1.1" 201`)
			}) {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the access log lacks %d mounts into %s; its lines for the repository:\n%s", missing, f.publicRepo(), strings.Join(lines, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, l := range lines {
		if strings.Contains(l, `"PATCH `) || strings.Contains(l, `"PUT `) {
			t.Errorf("the access log shows a blob upload: %s", l)
		}
	}
}

// TestPublishBehavioursOnTheRealRegistry runs each behaviour of memory_test.go
// once more, end to end, on the local stack's registry (its authentication, its
// per-repository blob links).
func TestPublishBehavioursOnTheRealRegistry(t *testing.T) {
	for _, b := range behaviours {
		t.Run(b.name, func(t *testing.T) { b.run(t, newFixture(t)) })
	}
}

func TestNewNeedsARegistry(t *testing.T) {
	if _, err := registry.New(config.Config{}); err == nil {
		t.Error("New without a registry address succeeded")
	}
	if _, err := registry.New(config.Defaults(), registry.WithTransport(nil)); err == nil {
		t.Error("WithTransport(nil) was accepted")
	}
}
