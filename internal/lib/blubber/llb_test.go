package blubber

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// graph is a marshalled LLB definition, indexed by op digest.
type graph struct {
	ops  map[digest.Digest]*pb.Op
	root digest.Digest // the op producing the definition's result
}

func compileGraph(t *testing.T, c *Config, variant string, opts ...CompileOption) (*Compiled, *graph) {
	t.Helper()
	comp, err := c.Compile(context.Background(), variant, opts...)
	if err != nil {
		t.Fatalf("Compile(%s): %v", variant, err)
	}
	return comp, marshalGraph(t, comp.State)
}

func marshalGraph(t *testing.T, st llb.State) *graph {
	t.Helper()
	def, err := st.Marshal(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	g := &graph{ops: map[digest.Digest]*pb.Op{}}
	var last *pb.Op
	for _, dt := range def.Def {
		op := &pb.Op{}
		if err := op.UnmarshalVT(dt); err != nil {
			t.Fatal(err)
		}
		g.ops[digest.FromBytes(dt)] = op
		last = op
	}
	// The last op of a definition only points at the result.
	g.root = digest.Digest(last.Inputs[0].Digest)
	return g
}

// chain walks the root filesystem from the result back to the base: the exec's
// / mount, or the file op's first action input. It returns the ops base first.
func (g *graph) chain(from digest.Digest) []*pb.Op {
	var out []*pb.Op
	for d := from; d != ""; {
		op := g.ops[d]
		out = append(out, op)
		idx := int64(-1)
		switch {
		case op.GetExec() != nil:
			for _, m := range op.GetExec().Mounts {
				if m.Dest == "/" {
					idx = m.Input
				}
			}
		case op.GetFile() != nil:
			idx = op.GetFile().Actions[0].Input
		}
		if idx < 0 || int(idx) >= len(op.Inputs) {
			break
		}
		d = digest.Digest(op.Inputs[idx].Digest)
	}
	slices.Reverse(out)
	return out
}

func copySrcs(op *pb.Op) []string {
	var srcs []string
	if f := op.GetFile(); f != nil {
		for _, a := range f.Actions {
			if c := a.GetCopy(); c != nil {
				srcs = append(srcs, c.Src)
			}
		}
	}
	return srcs
}

func execArgs(op *pb.Op) string {
	if e := op.GetExec(); e != nil {
		return strings.Join(e.Meta.Args, " ")
	}
	return ""
}

func TestRequirementsCopiedBeforeBuilderRuns(t *testing.T) {
	c := mustParse(t, `version: v4
base: node:22
variants:
  build:
    node: { requirements: [package.json] }
    copies: [local]
`)
	_, g := compileGraph(t, c, "build")
	req, install, all := -1, -1, -1
	for i, op := range g.chain(g.root) {
		switch {
		case slices.Equal(copySrcs(op), []string{"/package.json"}):
			req = i
		case strings.Contains(execArgs(op), "npm install"):
			install = i
		case slices.Equal(copySrcs(op), []string{"/"}):
			all = i
		}
	}
	if req < 0 || install < 0 || all < 0 {
		t.Fatalf("missing steps: requirement copy %d, npm install %d, full copy %d", req, install, all)
	}
	if !(req < install && install < all) {
		t.Errorf("order: requirement copy at %d, npm install at %d, full copy at %d; want requirements, install, then the rest", req, install, all)
	}
}

func TestFinalStageCarriesOnlyCopies(t *testing.T) {
	c, err := ParseFile("testdata/multistage.yaml")
	if err != nil {
		t.Fatal(err)
	}
	comp, g := compileGraph(t, c, "production")
	chain := g.chain(g.root)
	src := chain[0].GetSource()
	if src == nil || src.Identifier != "docker-image://docker-registry.wikimedia.org/bookworm:latest" {
		t.Fatalf("final stage starts from %v, want its own base image", chain[0])
	}
	var fromStages int
	for _, op := range chain {
		if strings.Contains(execArgs(op), "make") {
			t.Errorf("the final stage runs a build step of another stage: %s", execArgs(op))
		}
		if f := op.GetFile(); f != nil {
			for _, a := range f.Actions {
				if a.GetCopy() != nil && a.SecondaryInput >= 0 {
					in := g.ops[digest.Digest(op.Inputs[a.SecondaryInput].Digest)]
					if in.GetSource() == nil || strings.HasPrefix(in.GetSource().Identifier, "docker-image://docker-registry.wikimedia.org/golang") {
						fromStages++
					}
				}
			}
		}
	}
	if fromStages != 3 {
		t.Errorf("copies from other stages = %d, want 3 (prep's lives.in and /opt/lib, build's bin/tool)", fromStages)
	}
	cfg := comp.Image.Config
	if !slices.Equal(cfg.Entrypoint, []string{"./service", "--config", "/etc/service/config.yaml"}) || cfg.Cmd != nil {
		t.Errorf("entrypoint %q cmd %q", cfg.Entrypoint, cfg.Cmd)
	}
	if cfg.User != "900" || cfg.WorkingDir != "/srv/service" {
		t.Errorf("user %q workdir %q", cfg.User, cfg.WorkingDir)
	}
	if cfg.Labels["blubber.variant"] != "production" || cfg.Labels["blubber.version"] != Version {
		t.Errorf("labels %v", cfg.Labels)
	}
	if !slices.Contains(cfg.Env, "HOME=/home/runuser") {
		t.Errorf("env %q lacks the runs user's HOME", cfg.Env)
	}
}

func TestCompileIsDeterministic(t *testing.T) {
	c, err := ParseFile("testdata/custom-builder.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var first []byte
	for i := 0; i < 3; i++ {
		comp, err := c.Compile(context.Background(), "production")
		if err != nil {
			t.Fatal(err)
		}
		def, err := comp.Definition(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(def.Def)
		if first == nil {
			first = b
		} else if string(b) != string(first) {
			t.Fatal("two compilations of the same config differ")
		}
	}
}

func TestCopiesUseSourceDateEpoch(t *testing.T) {
	c := mustParse(t, "version: v4\nvariants:\n  files:\n    base: ~\n    copies: [local]\n")
	epoch := time.Unix(1700000000, 0)
	comp, g := compileGraph(t, c, "files", WithSourceDateEpoch(epoch), WithDockerignore([]string{"*.tmp"}))
	var copies int
	for _, op := range g.ops {
		if f := op.GetFile(); f != nil {
			for _, a := range f.Actions {
				if cp := a.GetCopy(); cp != nil {
					copies++
					if cp.Timestamp != epoch.UnixNano() {
						t.Errorf("copy of %s has timestamp %d, want %d", cp.Src, cp.Timestamp, epoch.UnixNano())
					}
				}
			}
		}
		if s := op.GetSource(); s != nil && strings.HasPrefix(s.Identifier, "local://") {
			if s.Identifier != "local://"+DefaultContextName || s.Attrs[pb.AttrExcludePatterns] != `["*.tmp"]` {
				t.Errorf("local source %s attrs %v", s.Identifier, s.Attrs)
			}
		}
	}
	if copies != 1 {
		t.Errorf("copies = %d, want 1", copies)
	}
	if comp.Image.Created == nil || !comp.Image.Created.Equal(epoch) {
		t.Errorf("image created %v, want %v", comp.Image.Created, epoch)
	}
}

func TestBuilderMountsAndCaches(t *testing.T) {
	c, err := ParseFile("testdata/custom-builder.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, g := compileGraph(t, c, "build")
	var script *pb.ExecOp
	for _, op := range g.ops {
		if e := op.GetExec(); e != nil && execArgs(op) == "/run/blubber/script" {
			script = e
		}
	}
	if script == nil {
		t.Fatal("no exec runs the build script")
	}
	byDest := map[string]*pb.Mount{}
	for _, m := range script.Mounts {
		byDest[m.Dest] = m
	}
	if m := byDest["/run/blubber"]; m == nil || !m.Readonly {
		t.Errorf("script mount = %v, want read-only /run/blubber", m)
	}
	if m := byDest["/var/cache/go"]; m == nil || m.MountType != pb.MountType_CACHE || m.CacheOpt.ID != "gocache" || m.CacheOpt.Sharing != pb.CacheSharingOpt_LOCKED {
		t.Errorf("cache mount = %v", m)
	}
	if m := byDest["/srv/app/dist"]; m == nil || m.Selector != "/src/dist" || m.Output != -1 {
		t.Errorf("assets mount = %v, want /src/dist of the assets stage, discarded after the run", m)
	}
	if got := script.Meta.User; got != "65533:65533" {
		t.Errorf("builder runs as %q, want the lives user", got)
	}
}

func TestTestStateRunsEntrypoint(t *testing.T) {
	c := mustParse(t, `version: v4
base: debian:bookworm
runs: { environment: { GREETING: hi } }
variants:
  test:
    copies: [local]
    entrypoint: [make, test, -j2]
`)
	comp, err := c.Compile(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	st, err := comp.TestState()
	if err != nil {
		t.Fatal(err)
	}
	g := marshalGraph(t, st)
	e := g.ops[g.root].GetExec()
	if e == nil {
		t.Fatal("the test state is not an exec")
	}
	if got := strings.Join(e.Meta.Args, " "); got != "make test -j2" {
		t.Errorf("args %q", got)
	}
	if e.Meta.Cwd != "/srv/app" || e.Meta.User != "900" || !slices.Contains(e.Meta.Env, "GREETING=hi") {
		t.Errorf("cwd %q user %q env %q", e.Meta.Cwd, e.Meta.User, e.Meta.Env)
	}
	none := mustParse(t, "version: v4\nbase: debian:bookworm\nvariants:\n  test: {}\n")
	comp, err = none.Compile(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := comp.TestState(); err == nil || err.Error() != "variant test has no entrypoint to run; set entrypoint (e.g. [npm, test]) in the Blubber config" {
		t.Errorf("TestState without entrypoint: %v", err)
	}
}

// fakeResolver answers every base image with one configuration.
type fakeResolver struct{ asked []string }

func (f *fakeResolver) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	f.asked = append(f.asked, ref)
	img := ocispecs.Image{Config: ocispecs.ImageConfig{
		Env: []string{"PATH=/usr/local/go/bin:/usr/bin", "GOPATH=/go"}, Entrypoint: []string{"/bin/bash"},
		Labels: map[string]string{"vendor": "base"},
	}}
	b, _ := json.Marshal(img)
	return ref, digest.FromString("base"), b, nil
}

func TestResolvedBaseImage(t *testing.T) {
	c := mustParse(t, `version: v4
base: golang:1.22
runs: { environment: { GOCACHE: /tmp/go } }
variants:
  build:
    builder:
      command: [go, build]
      caches: ["${GOPATH}/pkg"]
`)
	r := &fakeResolver{}
	comp, g := compileGraph(t, c, "build", WithImageResolver(r))
	if len(r.asked) != 1 || r.asked[0] != "golang:1.22" {
		t.Errorf("resolved %q", r.asked)
	}
	chain := g.chain(g.root)
	if id := chain[0].GetSource().Identifier; id != "docker-image://docker.io/library/golang:1.22@"+digest.FromString("base").String() {
		t.Errorf("base not pinned to the resolved digest: %s", id)
	}
	env := comp.Image.Config.Env
	for _, want := range []string{"PATH=/usr/local/go/bin:/usr/bin", "GOPATH=/go", "GOCACHE=/tmp/go", "HOME=/home/runuser"} {
		if !slices.Contains(env, want) {
			t.Errorf("env %q lacks %s", env, want)
		}
	}
	if comp.Image.Config.Labels["vendor"] != "base" || !slices.Equal(comp.Image.Config.Entrypoint, []string{"/bin/bash"}) {
		t.Errorf("base configuration not inherited: %+v", comp.Image.Config)
	}
	var cache bool
	for _, op := range g.ops {
		if e := op.GetExec(); e != nil {
			for _, m := range e.Mounts {
				if m.MountType == pb.MountType_CACHE && m.Dest == "/go/pkg" {
					cache = true
				}
			}
		}
	}
	if !cache {
		t.Error("the cache ${GOPATH}/pkg was not expanded with the base image's GOPATH")
	}
}
