package blubber

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
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

func (cp *compiler) step(s *stageState, step Step) error {
	epoch := cp.opts.epoch
	switch st := step.(type) {
	case *UserStep:
		s.uid, s.gid = st.UID, st.GID
		s.state = s.state.User(fmt.Sprintf("%d:%d", st.UID, st.GID))
		s.setenv("HOME", st.Home)
	case *WorkdirStep:
		s.dir = st.Path
		s.state = s.state.File(llb.Mkdir(st.Path, 0o755, llb.WithParents(true), llb.WithUIDGID(s.uid, s.gid),
			llb.WithCreatedTime(epoch)), llb.WithCustomName("WORKDIR "+st.Path)).Dir(st.Path)
	case *ArgStep:
		for _, v := range st.Vars {
			if given, ok := cp.opts.buildArgs[v.Name]; ok {
				v.Value = given
			}
			s.args = append(s.args, v)
		}
	case *EnvStep:
		for _, v := range st.Vars {
			s.setenv(v.Name, os.Expand(v.Value, s.getenv))
		}
	case *FileStep:
		s.state = s.state.File(llb.Mkdir(path.Dir(st.Path), 0o755, llb.WithParents(true), llb.WithCreatedTime(epoch)).
			Mkfile(st.Path, os.FileMode(st.Mode), []byte(st.Content), llb.WithCreatedTime(epoch)),
			llb.WithCustomName("write "+st.Path))
	case *CopyStep:
		from, err := cp.source(st.From)
		if err != nil {
			return err
		}
		chown := llb.ChownOpt{User: &llb.UserOpt{UID: st.UID}, Group: &llb.UserOpt{UID: st.GID}}
		var fa *llb.FileAction
		for _, src := range st.Sources {
			if st.From.Kind == FromContext {
				src = path.Join("/", src)
			}
			info := &llb.CopyInfo{
				CopyDirContentsOnly: true, FollowSymlinks: true, AllowWildcard: true, CreateDestPath: true,
				ExcludePatterns: st.Exclude, ChownOpt: &chown, CreatedTime: &epoch,
			}
			if fa == nil {
				fa = llb.Copy(from, src, st.Dest, info)
			} else {
				fa = fa.Copy(from, src, st.Dest, info)
			}
		}
		s.state = s.state.File(fa, llb.WithCustomName(copyName(st)))
	case *RunStep:
		return cp.run(s, st)
	default:
		return fmt.Errorf("unknown step %T", step)
	}
	return nil
}

func copyName(st *CopyStep) string {
	from := "context"
	if st.From.Kind != FromContext {
		from = st.From.Name
	}
	return fmt.Sprintf("COPY from %s %s to %s", from, strings.Join(st.Sources, " "), st.Dest)
}

func (cp *compiler) source(src Source) (llb.State, error) {
	switch src.Kind {
	case FromContext:
		return cp.local, nil
	case FromStage:
		st, ok := cp.stages[src.Name]
		if !ok {
			return llb.State{}, fmt.Errorf("variant %q is not compiled yet", src.Name)
		}
		return st.state, nil
	}
	return llb.Image(src.Name, llb.Platform(cp.opts.platform)), nil
}

func (cp *compiler) run(s *stageState, st *RunStep) error {
	opts := []llb.RunOption{llb.WithCustomName(st.Name)}
	for _, a := range s.args {
		opts = append(opts, llb.AddEnv(a.Name, a.Value))
	}
	switch {
	case st.Script != "":
		script := llb.Scratch().File(llb.Mkfile("/script", 0o755, []byte(st.Script), llb.WithCreatedTime(cp.opts.epoch)))
		opts = append(opts, llb.AddMount("/run/blubber", script, llb.Readonly), llb.Args([]string{"/run/blubber/script"}))
	case st.Shell != "":
		opts = append(opts, llb.Args([]string{"/bin/sh", "-c", st.Shell}))
	default:
		opts = append(opts, llb.Args(st.Args))
	}
	for _, m := range st.Mounts {
		from, err := cp.source(m.From)
		if err != nil {
			return err
		}
		opts = append(opts, llb.AddMount(m.Target, from, llb.SourcePath(m.Source), llb.ForceNoOutput))
	}
	for _, c := range st.Caches {
		target := os.Expand(c.Target, s.getenv)
		if target == "" || strings.Contains(target, "$") {
			return fmt.Errorf("cache destination %q expands to %q; set the variables it uses in runs.environment", c.Target, target)
		}
		target = inDir(s.dir, target)
		owned := llb.Scratch().File(llb.Mkdir("/cache", 0o755, llb.WithUIDGID(c.UID, c.GID), llb.WithCreatedTime(cp.opts.epoch)))
		sharing := map[string]llb.CacheMountSharingMode{
			"shared": llb.CacheMountShared, "private": llb.CacheMountPrivate, "locked": llb.CacheMountLocked,
		}[c.Sharing]
		id := os.Expand(c.ID, s.getenv)
		opts = append(opts, llb.AddMount(target, owned, llb.SourcePath("/cache"), llb.AsPersistentCacheDir(id, sharing)))
	}
	s.state = s.state.Run(opts...).Root()
	return nil
}
