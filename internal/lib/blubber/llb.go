package blubber

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"runtime"
	"strings"
	"time"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultContextName is the name of the local source that stands for the build
// context in the LLB; Build mounts the context directory under it.
const DefaultContextName = "context"

// defaultPath is the PATH of a scratch base or of a base image whose
// configuration was not resolved, as in Dockerfiles.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Compiled is a variant compiled to LLB.
type Compiled struct {
	// State is the variant's filesystem.
	State llb.State
	// Image is the OCI image (configuration) to export with State; when base
	// images were resolved it carries the base image's configuration beneath.
	Image ocispecs.Image
	Plan  *Plan
}

// Definition marshals the LLB of the variant.
func (c *Compiled) Definition(ctx context.Context) (*llb.Definition, error) {
	p := c.Image.Platform
	def, err := c.State.Marshal(ctx, llb.Platform(p))
	if err != nil {
		return nil, fmt.Errorf("marshalling LLB of variant %s: %w", c.Plan.Target().Variant, err)
	}
	return def, nil
}

// ImageConfigJSON is the image configuration as the image exporter wants it.
func (c *Compiled) ImageConfigJSON() ([]byte, error) { return json.Marshal(c.Image) }

// CompileOption configures Compile.
type CompileOption func(*compileOptions) error

type compileOptions struct {
	resolver    llb.ImageMetaResolver
	platform    ocispecs.Platform
	contextName string
	contextID   string
	excludes    []string
	epoch       time.Time
	buildArgs   map[string]string
	cacheScope  string
}

// WithImageResolver resolves base images' configurations (environment, working
// directory, user) so that steps and the image inherit them, and pins each base
// image to the digest resolved. By default nothing is resolved: steps get a
// standard PATH and the image configuration holds only what the variant sets.
func WithImageResolver(r llb.ImageMetaResolver) CompileOption {
	return func(o *compileOptions) error {
		if r == nil {
			return fmt.Errorf("WithImageResolver: resolver is nil")
		}
		o.resolver = r
		return nil
	}
}

// WithPlatform sets the platform to build for; default linux on the running
// architecture.
func WithPlatform(p ocispecs.Platform) CompileOption {
	return func(o *compileOptions) error {
		if p.OS == "" || p.Architecture == "" {
			return fmt.Errorf("WithPlatform: OS and architecture are required, got %q/%q", p.OS, p.Architecture)
		}
		o.platform = p
		return nil
	}
}

// WithContextName names the local source of the build context; default
// DefaultContextName.
func WithContextName(name string) CompileOption {
	return func(o *compileOptions) error {
		if name == "" {
			return fmt.Errorf("WithContextName: name is empty")
		}
		o.contextName = name
		return nil
	}
}

// WithContextID sets the unique ID of the build context's local source, which
// buildkitd uses to reuse what it synced of that directory before; default
// "blubber-" plus the context name. Build derives it from the context path.
func WithContextID(id string) CompileOption {
	return func(o *compileOptions) error {
		if id == "" {
			return fmt.Errorf("WithContextID: id is empty")
		}
		o.contextID = id
		return nil
	}
}

// WithDockerignore excludes these .dockerignore patterns from the build context;
// default none. ReadDockerignore reads them from a context directory.
func WithDockerignore(patterns []string) CompileOption {
	return func(o *compileOptions) error {
		o.excludes = append([]string(nil), patterns...)
		return nil
	}
}

// WithSourceDateEpoch sets the time given to every file the build copies or
// writes and to the image's creation; default the Unix epoch (0), so that the
// same configuration and context always give the same image.
func WithSourceDateEpoch(t time.Time) CompileOption {
	return func(o *compileOptions) error {
		if t.Before(time.Unix(0, 0)) {
			return fmt.Errorf("WithSourceDateEpoch: %s is before 1970", t)
		}
		o.epoch = t.UTC()
		return nil
	}
}

// WithBuildArgs gives build arguments values that override the defaults of
// the config's `arguments`; default none (every argument keeps its default).
// Compile fails on a name that no stage of the variant declares.
func WithBuildArgs(args map[string]string) CompileOption {
	return func(o *compileOptions) error {
		for name := range args {
			if !envNameRE.MatchString(name) {
				return fmt.Errorf("WithBuildArgs: %q is not a valid argument name", name)
			}
		}
		o.buildArgs = maps.Clone(args)
		return nil
	}
}

// WithCacheScope prefixes every cache mount's id with scope and a slash, so that
// builds in different scopes share no cache; default none. Build passes
// BuildOptions.CacheScope.
func WithCacheScope(scope string) CompileOption {
	return func(o *compileOptions) error {
		o.cacheScope = scope
		return nil
	}
}

// Compile plans the variant and compiles the plan to LLB.
func (c *Config) Compile(ctx context.Context, variant string, opts ...CompileOption) (*Compiled, error) {
	o := compileOptions{
		platform:    ocispecs.Platform{OS: "linux", Architecture: runtime.GOARCH},
		contextName: DefaultContextName,
		epoch:       time.Unix(0, 0).UTC(),
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.contextID == "" {
		o.contextID = "blubber-" + o.contextName
	}
	plan, err := c.Plan(variant)
	if err != nil {
		return nil, err
	}
	if err := plan.CheckBuildArgs(o.buildArgs); err != nil {
		return nil, err
	}
	cp := &compiler{opts: o, stages: map[string]*stageState{}}
	// A fixed unique ID keeps the LLB of a config the same from one compile to
	// the next (llb.Local would draw a random one).
	cp.local = llb.Local(o.contextName, llb.ExcludePatterns(o.excludes), llb.SharedKeyHint(o.contextName),
		llb.LocalUniqueID(o.contextID), llb.WithCustomName("load the build context"))
	var last *stageState
	for _, st := range plan.Stages {
		if last, err = cp.stage(ctx, st); err != nil {
			return nil, fmt.Errorf("compiling variant %s: %w", st.Variant, err)
		}
		cp.stages[st.Variant] = last
	}
	return &Compiled{State: last.state, Image: last.image, Plan: plan}, nil
}

type compiler struct {
	opts   compileOptions
	local  llb.State
	stages map[string]*stageState
}

// stageState is a stage as compiled so far: the LLB, the environment as it
// stands (for $NAME expansion), the user and directory of the next step.
type stageState struct {
	state    llb.State
	image    ocispecs.Image
	env      []EnvVar
	args     []EnvVar // build arguments declared so far, with their values
	uid, gid int
	dir      string
}

func (s *stageState) getenv(name string) string {
	for _, v := range s.env {
		if v.Name == name {
			return v.Value
		}
	}
	return ""
}

func (s *stageState) setenv(name, value string) {
	s.state = s.state.AddEnv(name, value)
	for i := range s.env {
		if s.env[i].Name == name {
			s.env[i].Value = value
			return
		}
	}
	s.env = append(s.env, EnvVar{Name: name, Value: value})
}

func (cp *compiler) stage(ctx context.Context, st *Stage) (*stageState, error) {
	s := &stageState{image: ocispecs.Image{Platform: cp.opts.platform}, dir: "/"}
	s.image.RootFS.Type = "layers"
	if st.Base == "" {
		s.state = llb.Scratch().Platform(cp.opts.platform)
	} else if err := cp.base(ctx, st, s); err != nil {
		return nil, err
	}
	if s.getenv("PATH") == "" {
		s.setenv("PATH", defaultPath)
	}
	for _, step := range st.Steps {
		if err := cp.step(s, step); err != nil {
			return nil, err
		}
	}
	cfg := &s.image.Config
	cfg.Env = make([]string, len(s.env))
	for i, v := range s.env {
		cfg.Env[i] = v.Name + "=" + v.Value
	}
	cfg.User = st.Image.User
	cfg.WorkingDir = st.Image.WorkingDir
	if st.Image.Entrypoint != nil {
		// As in a Dockerfile, an entrypoint resets the base image's CMD.
		cfg.Entrypoint, cfg.Cmd = st.Image.Entrypoint, nil
	}
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{}
	}
	for k, v := range st.Image.Labels {
		cfg.Labels[k] = v
	}
	created := cp.opts.epoch
	s.image.Created = &created
	s.image.History = append(s.image.History, ocispecs.History{
		Created: &created, CreatedBy: "conveyor blubber " + Version + " variant " + st.Variant, EmptyLayer: true,
	})
	return s, nil
}

// base starts the stage from its base image, with the image's configuration
// when a resolver is at hand.
func (cp *compiler) base(ctx context.Context, st *Stage, s *stageState) error {
	ref := st.Base
	if cp.opts.resolver == nil {
		s.state = llb.Image(ref, llb.Platform(cp.opts.platform))
		return nil
	}
	p := cp.opts.platform
	_, dgst, dt, err := cp.opts.resolver.ResolveImageConfig(ctx, ref, sourceresolver.Opt{
		LogName:  "resolve image config for " + ref,
		ImageOpt: &sourceresolver.ResolveImageOpt{Platform: &p},
	})
	if err != nil {
		return fmt.Errorf("resolving base image %s: %w", ref, err)
	}
	if err := json.Unmarshal(dt, &s.image); err != nil {
		return fmt.Errorf("reading the configuration of base image %s: %w", ref, err)
	}
	s.image.Platform = p
	if dgst != "" && !strings.Contains(ref, "@") {
		ref += "@" + dgst.String()
	}
	s.state = llb.Image(ref, llb.Platform(p))
	for _, kv := range s.image.Config.Env {
		name, value, _ := strings.Cut(kv, "=")
		if name != "" {
			s.setenv(name, value)
		}
	}
	if s.image.Config.WorkingDir != "" {
		s.dir = s.image.Config.WorkingDir
		s.state = s.state.Dir(s.dir)
	}
	if s.image.Config.User != "" {
		s.state = s.state.User(s.image.Config.User)
	}
	return nil
}
