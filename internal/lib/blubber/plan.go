package blubber

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Plan is the ordered build of a variant: one stage for each variant whose files
// it needs (through copies, requirements or mounts), dependencies first, and the
// requested variant last. Compile turns it into LLB and Dockerfile into text, so
// the two cannot drift apart.
type Plan struct {
	Stages []*Stage
}

// BuildArgs returns the build arguments the plan's stages declare, with their
// defaults (a later stage's default winning).
func (p *Plan) BuildArgs() map[string]string {
	args := map[string]string{}
	for _, st := range p.Stages {
		for _, s := range st.Steps {
			if a, ok := s.(*ArgStep); ok {
				for _, v := range a.Vars {
					args[v.Name] = v.Value
				}
			}
		}
	}
	return args
}

// CheckBuildArgs fails on a given build argument that no stage declares,
// naming it and the declared ones.
func (p *Plan) CheckBuildArgs(given map[string]string) error {
	declared := p.BuildArgs()
	var unknown []string
	for name := range given {
		if _, ok := declared[name]; !ok {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	names := make([]string, 0, len(declared))
	for name := range declared {
		names = append(names, name)
	}
	sort.Strings(names)
	have := "declares no build arguments"
	if len(names) > 0 {
		have = "declares only " + strings.Join(names, ", ")
	}
	what := "build argument"
	if len(unknown) > 1 {
		what += "s"
	}
	return fmt.Errorf("unknown %s %s: variant %s %s; declare it under `arguments` in the Blubber config, or do not pass it",
		what, strings.Join(unknown, ", "), p.Target().Variant, have)
}

// Target is the stage of the requested variant.
func (p *Plan) Target() *Stage { return p.Stages[len(p.Stages)-1] }

// Stage is the build of one variant.
type Stage struct {
	Variant string
	// Base is the base image reference, "" for scratch.
	Base  string
	Steps []Step
	Image ImageConfig
}

// ImageConfig is what the stage sets in the OCI image configuration; the base
// image's own configuration lies beneath it.
type ImageConfig struct {
	User       string // the bare uid; empty on scratch
	WorkingDir string // empty on scratch
	// Env is every variable the stage sets, in order, values unexpanded.
	Env        []EnvVar
	Entrypoint []string
	Labels     map[string]string
}

// EnvVar is one environment variable; Value may refer to earlier ones as $NAME.
type EnvVar struct{ Name, Value string }

// Step is one instruction of a stage: *ArgStep, *RunStep, *EnvStep, *UserStep,
// *WorkdirStep, *CopyStep or *FileStep.
type Step interface{ isStep() }

// RunStep runs a command in the stage's filesystem.
type RunStep struct {
	// Exactly one of Args (exec form), Shell (sh -c) and Script (a file whose #!
	// line names the interpreter) is set.
	Args   []string
	Shell  string
	Script string
	Mounts []RunMount
	Caches []RunCache
	// Name is shown in progress output.
	Name string
}

// RunMount is a filesystem mounted while a RunStep runs; writes to it are dropped.
type RunMount struct {
	From   Source
	Source string // path inside From, "/" by default
	Target string
}

// RunCache is a persistent cache directory mounted while a RunStep runs.
type RunCache struct {
	Target   string // may refer to environment variables, e.g. ${GOCACHE}
	ID       string
	Sharing  string // shared, private or locked
	UID, GID int
}

// ArgStep declares build arguments with their defaults: later RunSteps see
// them as environment variables, the image does not keep them.
type ArgStep struct{ Vars []EnvVar }

// EnvStep sets environment variables for later steps and the image.
type EnvStep struct{ Vars []EnvVar }

// UserStep switches the user later steps run as, and sets HOME.
type UserStep struct {
	UID, GID int
	Name     string
	Home     string
}

// WorkdirStep sets (and creates) the working directory.
type WorkdirStep struct{ Path string }

// CopyStep copies files into the stage, owned by UID:GID. Sources are absolute
// paths in From, or for the build context paths relative to its root; a source
// ending in / or naming a directory copies the directory's contents.
type CopyStep struct {
	From     Source
	Sources  []string
	Dest     string
	Exclude  []string
	UID, GID int
}

// FileStep writes a file (APT sources, proxies and keys).
type FileStep struct {
	Path    string
	Content string
	Mode    uint32
}

func (*ArgStep) isStep()     {}
func (*RunStep) isStep()     {}
func (*EnvStep) isStep()     {}
func (*UserStep) isStep()    {}
func (*WorkdirStep) isStep() {}
func (*CopyStep) isStep()    {}
func (*FileStep) isStep()    {}

// SourceKind says where a CopyStep or RunMount takes files from.
type SourceKind int

// The kinds of Source.
const (
	FromContext SourceKind = iota // the build context
	FromStage                     // another variant's stage
	FromImage                     // an image
)

// Source is where files come from: the context, a stage (Name is the variant) or
// an image (Name is the reference).
type Source struct {
	Kind SourceKind
	Name string
}

// Plan builds the plan of the named variant.
func (c *Config) Plan(variant string) (*Plan, error) {
	p := &Plan{}
	done := map[string]bool{}
	var add func(name string, chain []string) error
	add = func(name string, chain []string) error {
		if done[name] {
			return nil
		}
		for _, n := range chain {
			if n == name {
				return fmt.Errorf("variant %q needs its own files through %s", name, strings.Join(append(chain, name), " -> "))
			}
		}
		r, err := c.Resolve(name)
		if err != nil {
			return err
		}
		for _, d := range stageDeps(c, r) {
			if err := add(d, append(chain, name)); err != nil {
				return err
			}
		}
		st, err := c.planStage(r)
		if err != nil {
			return err
		}
		done[name] = true
		p.Stages = append(p.Stages, st)
		return nil
	}
	if err := add(variant, nil); err != nil {
		return nil, err
	}
	return p, nil
}

// planStage lays out the phases of one variant: build arguments, privileged
// setup as root, the lives user's environment, builders, copies, then the
// runtime user and entrypoint.
//
// A scratch stage (no base) has no shell, no package manager and no
// /etc/passwd: as upstream Blubber does, it gets only its copies (owned by
// root), its entrypoint and its labels; apt, builders, users, directories and
// the environment are ignored (Notices names them).
func (c *Config) planStage(r *Resolved) (*Stage, error) {
	st := &Stage{Variant: r.Name}
	if r.Base != nil {
		st.Base = *r.Base
	}
	st.Image = ImageConfig{
		Entrypoint: r.Entrypoint,
		Labels:     map[string]string{"blubber.variant": r.Name, "blubber.version": Version},
	}
	livesIn := path.Clean(r.Lives.In)
	if st.Base == "" {
		for _, cp := range r.Copies {
			steps, err := c.copySteps(cp, user{}, livesIn)
			if err != nil {
				return nil, err
			}
			st.Steps = append(st.Steps, steps...)
		}
		return st, nil
	}
	lives := userOf(r.Lives.As, r.Lives.UID, r.Lives.GID)
	runs := userOf(r.Runs.As, r.Runs.UID, r.Runs.GID)

	// Privileged phase.
	if args := sortedEnv(r.Arguments); len(args) > 0 {
		st.Steps = append(st.Steps, &ArgStep{Vars: args})
	}
	st.Steps = append(st.Steps, &UserStep{Name: "root", Home: "/root"})
	st.Steps = append(st.Steps, aptSteps(r.Apt)...)
	st.Steps = append(st.Steps, &RunStep{Name: "create users and directories", Shell: userSetup(lives, runs, livesIn)})

	// Unprivileged phase: the lives user builds.
	st.Steps = append(st.Steps, lives.step(), &WorkdirStep{Path: livesIn})
	if env := sortedEnv(r.Runs.Environment); len(env) > 0 {
		st.Steps = append(st.Steps, &EnvStep{Vars: env})
	}
	bs, err := c.builderSteps(r, lives, livesIn)
	if err != nil {
		return nil, err
	}
	st.Steps = append(st.Steps, bs...)
	for _, cp := range r.Copies {
		steps, err := c.copySteps(cp, lives, livesIn)
		if err != nil {
			return nil, err
		}
		st.Steps = append(st.Steps, steps...)
	}

	// Runtime.
	final := lives
	if !boolValue(r.Runs.Insecurely) {
		final = runs
		st.Steps = append(st.Steps, runs.step())
	}
	workdir := livesIn
	if r.Runs.In != "" {
		workdir = path.Clean(r.Runs.In)
		st.Steps = append(st.Steps, &WorkdirStep{Path: workdir})
	}
	// As upstream Blubber writes it, the image's user is the bare uid: the
	// privileged phase put it in /etc/passwd with its gid.
	st.Image.User = strconv.Itoa(final.uid)
	st.Image.WorkingDir = workdir
	st.Image.Env = stageEnv(st.Steps)
	return st, nil
}

type user struct {
	name     string
	uid, gid int
}

func userOf(as string, uid, gid *int) user {
	return user{name: as, uid: intValue(uid, 0), gid: intValue(gid, 0)}
}

func (u user) step() *UserStep {
	return &UserStep{UID: u.uid, GID: u.gid, Name: u.name, Home: "/home/" + u.name}
}

// userSetup creates the lives and runs users (unless the image has them) and the
// directories the lives user owns.
func userSetup(lives, runs user, livesIn string) string {
	add := func(u user) string {
		return fmt.Sprintf("(getent group %d || groupadd -o -g %d -r %s) && (getent passwd %d || useradd -l -o -m -d /home/%s -r -g %d -u %d %s)",
			u.gid, u.gid, u.name, u.uid, u.name, u.gid, u.uid, u.name)
	}
	cmds := []string{add(lives)}
	if runs.uid != lives.uid {
		cmds = append(cmds, add(runs))
	}
	cmds = append(cmds, fmt.Sprintf("mkdir -p %s %s && chown %d:%d %s %s",
		shellQuote(livesIn), LocalLibPrefix, lives.uid, lives.gid, shellQuote(livesIn), LocalLibPrefix))
	return strings.Join(cmds, " && ")
}

func sortedEnv(m map[string]string) []EnvVar {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]EnvVar, len(names))
	for i, k := range names {
		out[i] = EnvVar{Name: k, Value: m[k]}
	}
	return out
}

// stageEnv is the environment the steps leave for the image: every variable
// set, the last value winning, HOME from the last user switch.
func stageEnv(steps []Step) []EnvVar {
	var env []EnvVar
	set := func(v EnvVar) {
		for i := range env {
			if env[i].Name == v.Name {
				env[i].Value = v.Value
				return
			}
		}
		env = append(env, v)
	}
	for _, s := range steps {
		switch s := s.(type) {
		case *EnvStep:
			for _, v := range s.Vars {
				set(v)
			}
		case *UserStep:
			set(EnvVar{Name: "HOME", Value: s.Home})
		}
	}
	return env
}

// inDir resolves p against dir unless it is absolute, keeping a trailing slash
// (which asks for a directory).
func inDir(dir, p string) string {
	if p == "" {
		return dir
	}
	slash := strings.HasSuffix(p, "/")
	if !path.IsAbs(p) {
		p = path.Join(dir, p)
	} else {
		p = path.Clean(p)
	}
	if slash && p != "/" {
		p += "/"
	}
	return p
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-=:+,@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
