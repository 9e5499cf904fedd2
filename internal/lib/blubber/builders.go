package blubber

import (
	"fmt"
	"os"
	"path"
	"strings"
)

// builderSteps lays out the builders: the `builders` list in order, or else the
// standalone node, php, python and builder keys in that order (upstream's).
// Each builder's requirements are copied just before it runs, so that a change
// to other files reuses the layers that installed dependencies. As upstream
// does, a Python builder runs only when it has a version and requirements
// (possibly an empty list), and a custom builder only when it has a command or
// script: otherwise their requirements are not copied either.
func (c *Config) builderSteps(r *Resolved, lives user, livesIn string) ([]Step, error) {
	entries := r.Builders
	if len(entries) == 0 {
		entries = []BuilderEntry{{Node: r.Node}, {PHP: r.PHP}, {Python: r.Python}, {Custom: r.Builder}}
	}
	var steps []Step
	for _, b := range entries {
		var reqs []Artifact
		var run []Step
		switch {
		case b.Python != nil:
			if !pythonEnabled(b.Python) {
				continue
			}
			reqs, run = b.Python.Requirements, pythonSteps(b.Python, livesIn)
		case b.Node != nil:
			reqs, run = b.Node.Requirements, nodeSteps(b.Node)
		case b.PHP != nil:
			reqs, run = b.PHP.Requirements, phpSteps(b.PHP)
		case b.Custom != nil:
			rs, err := c.customStep(b.Custom, lives, livesIn, r.Runs.Environment)
			if err != nil {
				return nil, err
			}
			if rs == nil {
				continue
			}
			reqs, run = b.Custom.Requirements, []Step{rs}
		default:
			continue
		}
		for _, a := range reqs {
			cs, err := c.artifactStep(a, lives, livesIn)
			if err != nil {
				return nil, err
			}
			steps = append(steps, cs)
		}
		steps = append(steps, run...)
	}
	return steps, nil
}

func nodeSteps(n *NodeBuilder) []Step {
	var steps []Step
	if len(n.Requirements) > 0 {
		install := "npm install"
		if boolValue(n.UseNpmCI) {
			install = "npm ci"
		}
		if n.Env == "production" {
			dedupe := "npm dedupe --omit=dev"
			if boolValue(n.AllowDedupeFailure) {
				// The parentheses keep a failed install failing.
				dedupe = "(" + dedupe + " || echo 'WARNING: npm dedupe failed, continuing anyway')"
			}
			steps = append(steps, &RunStep{Name: "install npm dependencies", Shell: install + " --omit=dev && " + dedupe})
		} else {
			steps = append(steps, &RunStep{Name: "install npm dependencies", Shell: install})
		}
	}
	// As upstream does, installing dependencies sets NODE_ENV even when env
	// is not given (to the empty string).
	if n.Env != "" || len(n.Requirements) > 0 {
		steps = append(steps, &EnvStep{Vars: []EnvVar{{Name: "NODE_ENV", Value: n.Env}}})
	}
	return steps
}

func phpSteps(p *PHPBuilder) []Step {
	if len(p.Requirements) == 0 {
		return nil
	}
	cmd := "composer install --no-scripts"
	if boolValue(p.Production) {
		cmd += " --no-dev"
	}
	return []Step{&RunStep{Name: "install composer dependencies", Shell: cmd}}
}

// pythonEnabled reports whether the Python builder runs: upstream's rule is a
// version and requirements, an empty list included.
func pythonEnabled(p *PythonBuilder) bool {
	return p != nil && p.Version != "" && p.Requirements != nil
}

// pythonSteps makes a virtualenv, activates it for later steps and the image,
// installs the build tools, and installs the requirements with pip or, when a
// Poetry version is given, Poetry.
func pythonSteps(p *PythonBuilder, livesIn string) []Step {
	py := p.Version
	venv := p.Venv
	if venv == "" {
		venv = LocalLibPrefix + "/venv"
	}
	mkvenv := fmt.Sprintf("%s -m venv %s", py, shellQuote(venv))
	if boolValue(p.UseSystemSitePackages) {
		mkvenv += " --system-site-packages"
	}
	pip := "pip"
	if strings.HasPrefix(py, "python2") {
		pip = "pip<21"
	}
	setuptools := pinned("setuptools", p.SetuptoolsVersion)
	if p.SetuptoolsVersion == "" {
		// Upstream's default pin, kept so that the images match.
		setuptools = "setuptools!=60.9.0"
	}
	tools := []string{setuptools, pinned("wheel", p.WheelVersion),
		pinned("tox", p.ToxVersion), pinned(pip, p.PipVersion)}
	steps := []Step{
		&RunStep{Name: "create the Python virtualenv", Shell: mkvenv},
		&EnvStep{Vars: []EnvVar{{Name: "VIRTUAL_ENV", Value: venv}, {Name: "PATH", Value: venv + "/bin:$PATH"}}},
		&RunStep{Name: "install Python build tools", Shell: py + " -m pip install -U " + shellJoin(tools)},
	}
	if p.Poetry != nil && p.Poetry.Version != "" {
		args := "poetry install --no-root"
		if p.Poetry.Only != "" {
			args += " --only " + shellQuote(p.Poetry.Only)
		}
		if p.Poetry.Without != "" {
			args += " --without " + shellQuote(p.Poetry.Without)
		}
		if p.Poetry.Only == "" && p.Poetry.Without == "" && !boolValue(p.Poetry.Devel) {
			// Poetry 2 removed --no-dev; --only arrived in 1.2.
			if poetryBefore12(p.Poetry.Version) {
				args += " --no-dev"
			} else {
				args += " --only main"
			}
		}
		steps = append(steps,
			&EnvStep{Vars: []EnvVar{{Name: "POETRY_VIRTUALENVS_PATH", Value: LocalLibPrefix + "/poetry"}}},
			&RunStep{Name: "install Poetry", Shell: py + " -m pip install -U " + shellQuote(pinned("poetry", p.Poetry.Version))},
			&RunStep{Name: "install Python dependencies with Poetry", Shell: args})
		return steps
	}
	if len(p.Requirements) == 0 {
		return steps
	}
	install := py + " -m pip install"
	if boolValue(p.NoDeps) {
		install += " --no-deps"
	}
	for _, r := range p.Requirements {
		install += " -r " + shellQuote(relTo(livesIn, requirementDest(r, livesIn)))
	}
	steps = append(steps, &RunStep{Name: "install Python dependencies", Shell: install})
	if boolValue(p.NoDeps) {
		steps = append(steps, &RunStep{Name: "check Python dependencies", Shell: py + " -m pip check"})
	}
	return steps
}

// poetryBefore12 reports whether a Poetry version pin selects a release before
// 1.2 (==1.1.15, ~=1.1, 1.0.10, <1.2): those know --no-dev and not --only. A
// pin it cannot place (>=1.0) counts as a later release, which is what pip
// installs for it.
func poetryBefore12(spec string) bool {
	spec = strings.TrimSpace(strings.Split(spec, ",")[0])
	op := spec[:len(spec)-len(strings.TrimLeft(spec, "<>=!~ "))]
	v := strings.Split(strings.TrimSpace(spec[len(op):]), ".")
	major, minor := v[0], ""
	if len(v) > 1 {
		minor = v[1]
	}
	switch strings.TrimSpace(op) {
	case "", "==", "~=", "<=":
		return major == "0" || major == "1" && (minor == "0" || minor == "1")
	case "<":
		return major == "0" || major == "1" && (minor == "" || minor == "0" || minor == "1" || minor == "2")
	}
	return false
}

// pinned writes a pip requirement: a bare version becomes ==version.
func pinned(pkg, version string) string {
	switch {
	case version == "":
		return pkg
	case version[0] >= '0' && version[0] <= '9':
		return pkg + "==" + version
	}
	return pkg + version
}

func (c *Config) customStep(b *CustomBuilder, lives user, livesIn string, env map[string]string) (*RunStep, error) {
	rs := &RunStep{Name: "run the build command"}
	switch {
	case b.Script != "":
		rs.Script = b.Script
		if !strings.HasPrefix(rs.Script, "#!") {
			rs.Script = "#!/bin/sh\n" + rs.Script
		}
		rs.Name = "run the build script"
	case b.Command.Shell != "":
		rs.Shell = b.Command.Shell
	case len(b.Command.Args) == 1 && strings.ContainsAny(b.Command.Args[0], " \t\n"):
		// A one-string list is a shell command written as a list.
		rs.Shell = b.Command.Args[0]
	case len(b.Command.Args) > 0:
		rs.Args = b.Command.Args
	default:
		return nil, nil
	}
	for _, m := range b.Mounts {
		rm := RunMount{Source: "/", Target: inDir(livesIn, m.Destination)}
		switch {
		case m.From == LocalContext:
			rm.From = Source{Kind: FromContext}
			if m.Source != "" {
				rm.Source = path.Join("/", m.Source)
			}
		case c.Variants[m.From] != nil:
			rm.From = Source{Kind: FromStage, Name: m.From}
			other, err := c.Resolve(m.From)
			if err != nil {
				return nil, err
			}
			rm.Source = inDir(path.Clean(other.Lives.In), m.Source)
			if m.Source == "" {
				rm.Source = "/"
			}
		default:
			rm.From = Source{Kind: FromImage, Name: m.From}
			rm.Source = inDir("/", m.Source)
		}
		rs.Mounts = append(rs.Mounts, rm)
	}
	for _, cache := range b.Caches {
		// Variables of runs.environment are known now; others (from the base
		// image) are left for Compile and Docker to expand.
		target := os.Expand(cache.Destination, func(name string) string {
			if v, ok := env[name]; ok {
				return v
			}
			return "${" + name + "}"
		})
		if !strings.HasPrefix(target, "$") {
			target = inDir(livesIn, target)
		}
		rc := RunCache{Target: target, ID: cache.ID, Sharing: cache.Access, UID: lives.uid, GID: lives.gid}
		if rc.ID == "" {
			rc.ID = target
		}
		if rc.Sharing == "" {
			rc.Sharing = "shared"
		}
		rs.Caches = append(rs.Caches, rc)
	}
	return rs, nil
}

// artifactStep copies a requirement into place before its builder runs.
func (c *Config) artifactStep(a Artifact, lives user, livesIn string) (*CopyStep, error) {
	cs := &CopyStep{UID: lives.uid, GID: lives.gid, Exclude: a.Exclude}
	switch {
	case a.From == LocalContext:
		cs.From = Source{Kind: FromContext}
		cs.Sources = []string{contextPath(a.Source)}
	case c.Variants[a.From] != nil:
		other, err := c.Resolve(a.From)
		if err != nil {
			return nil, err
		}
		cs.From = Source{Kind: FromStage, Name: a.From}
		cs.Sources = []string{inDir(path.Clean(other.Lives.In), a.Source)}
	default:
		cs.From = Source{Kind: FromImage, Name: a.From}
		cs.Sources = []string{inDir("/", a.Source)}
	}
	cs.Dest = requirementDest(a, livesIn)
	return cs, nil
}

// requirementDest is where a requirement or copy lands: its destination, or else
// its source, relative to lives.in unless absolute.
func requirementDest(a Artifact, livesIn string) string {
	dest := a.Destination
	if dest == "" {
		dest = a.Source
	}
	return inDir(livesIn, dest)
}

// contextPath is a source path in the build context, relative to its root.
func contextPath(p string) string {
	if p == "" || path.Clean(p) == "." {
		return "."
	}
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") {
		clean += "/"
	}
	return clean
}

func relTo(dir, p string) string {
	if strings.HasPrefix(p, dir+"/") {
		return strings.TrimPrefix(p, dir+"/")
	}
	return p
}

func shellJoin(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = shellQuote(w)
	}
	return strings.Join(q, " ")
}
