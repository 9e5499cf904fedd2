// Package blubber reads, checks and compiles Blubber v4 build configurations
// (https://wikitech.wikimedia.org/wiki/Blubber): the YAML file, usually
// .pipeline/blubber.yaml, that says how to build each variant of an
// application's container image.
//
// The flow is Parse (three checking passes that report every problem at once),
// Config.Resolve (merge the defaults, the top level, a variant's includes and the
// variant itself), Config.Plan (the ordered build steps of a variant and of the
// variants it copies from), and then one of the outputs: Compile (BuildKit LLB and
// the OCI image configuration), Dockerfile (the same plan for people to read),
// TestState (run a variant's entrypoint as a build step) and Build (solve on
// buildkitd and push). The package has no Temporal in it: the CLI and the
// activities both call it.
package blubber

// Version is the version of this Blubber implementation; images carry it in the
// blubber.version label.
const Version = "conveyor-0.1.0"

// ConfigVersion is the only configuration version this package reads.
const ConfigVersion = "v4"

// Defaults that apply when neither the top level nor a variant says otherwise.
const (
	DefaultLivesIn  = "/srv/app"
	DefaultLivesAs  = "somebody"
	DefaultLivesUID = 65533
	DefaultLivesGID = 65533
	DefaultRunsAs   = "runuser"
	DefaultRunsUID  = 900
	DefaultRunsGID  = 900
	// LocalLibPrefix is where builders install application libraries; copying a
	// variant copies it along with the variant's lives.in.
	LocalLibPrefix = "/opt/lib"
)

// Config is a whole configuration file: the common keys at the top level and the
// named variants.
type Config struct {
	Version  string `yaml:"version"`
	Common   `yaml:",inline"`
	Variants map[string]*Variant `yaml:"variants"`

	// source maps a field path to its line in the file, for error messages.
	lines map[string]int
	// notices are what Parse accepted but the build will ignore.
	notices Errors
}

// Notices returns what a valid configuration asks for that the build ignores,
// as upstream Blubber does: apt, builders and the environment of a variant
// without a base image (scratch). Lint shows them; they are not errors.
func (c *Config) Notices() Errors { return c.notices }

// Common holds the keys allowed both at the top level and in a variant.
type Common struct {
	// Base is the base image; a nil Base is unset (inherit), a Base pointing to ""
	// is scratch (written `base: ~` or `base: null`).
	Base       *string        `yaml:"base"`
	Apt        Apt            `yaml:"apt"`
	Builder    *CustomBuilder `yaml:"builder"`
	Builders   []BuilderEntry `yaml:"builders"`
	Node       *NodeBuilder   `yaml:"node"`
	Python     *PythonBuilder `yaml:"python"`
	PHP        *PHPBuilder    `yaml:"php"`
	Lives      Lives          `yaml:"lives"`
	Runs       Runs           `yaml:"runs"`
	Entrypoint []string       `yaml:"entrypoint"`
	// Arguments are the build arguments (ARG) and their defaults; a build
	// overrides them with BuildOptions.BuildArgs. Builders see them as
	// environment variables; the image does not keep them.
	Arguments map[string]string `yaml:"arguments"`
}

// Variant is one buildable image: the common keys plus includes and copies.
type Variant struct {
	Common   `yaml:",inline"`
	Includes []string `yaml:"includes"`
	Copies   []Copy   `yaml:"copies"`
}

// Apt installs Debian packages in the privileged phase.
type Apt struct {
	// Packages maps a target release to packages; "" is the default release,
	// written `default` in the map form of the file. The list form fills the
	// "" key.
	Packages map[string][]string `yaml:"-"`
	Sources  []AptSource         `yaml:"sources"`
	Proxies  []AptProxy          `yaml:"proxies"`
}

// AptSource is an extra APT repository.
type AptSource struct {
	URL          string   `yaml:"url"`
	Distribution string   `yaml:"distribution"`
	Components   []string `yaml:"components"`
	SignedBy     string   `yaml:"signed-by"`
}

// AptProxy is an HTTP(S) proxy for all sources of its protocol, or for Source only.
type AptProxy struct {
	URL    string `yaml:"url"`
	Source string `yaml:"source"`
}

// Lives says who owns the application files and where they live.
type Lives struct {
	In  string `yaml:"in"`
	As  string `yaml:"as"`
	UID *int   `yaml:"uid"`
	GID *int   `yaml:"gid"`
}

// Runs says who runs the entrypoint, where, and with which environment.
type Runs struct {
	As          string            `yaml:"as"`
	UID         *int              `yaml:"uid"`
	GID         *int              `yaml:"gid"`
	In          string            `yaml:"in"`
	Environment map[string]string `yaml:"environment"`
	// Insecurely keeps the lives user (the owner of the files) at run time.
	Insecurely *bool `yaml:"insecurely"`
}

// Artifact copies files from the build context ("local"), a variant or an image.
// It is the longhand of both copies and requirements.
type Artifact struct {
	From        string   `yaml:"from"`
	Source      string   `yaml:"source"`
	Destination string   `yaml:"destination"`
	Exclude     []string `yaml:"exclude"`
}

// Copy is one entry of a variant's copies. The shorthand `local` copies the build
// context; the shorthand of a variant name copies that variant's lives.in and
// LocalLibPrefix.
type Copy struct {
	Artifact
	// Shorthand is true when the entry was written as a bare name.
	Shorthand bool `yaml:"-"`
}

// Command is a builder command: a shell string, or an argv list.
type Command struct {
	Shell string
	Args  []string
}

// IsZero reports whether no command was given.
func (c Command) IsZero() bool { return c.Shell == "" && len(c.Args) == 0 }

// Mount is a filesystem mounted read-only-in-effect while a builder runs.
type Mount struct {
	From        string `yaml:"from"`
	Source      string `yaml:"source"`
	Destination string `yaml:"destination"`
}

// Cache is a persistent cache directory mounted while a builder runs.
type Cache struct {
	Destination string `yaml:"destination"`
	ID          string `yaml:"id"`
	Access      string `yaml:"access"`
}

// CustomBuilder runs an arbitrary command or script.
type CustomBuilder struct {
	Command      Command    `yaml:"command"`
	Script       string     `yaml:"script"`
	Requirements []Artifact `yaml:"requirements"`
	Mounts       []Mount    `yaml:"mounts"`
	Caches       []Cache    `yaml:"caches"`
}

// NodeBuilder installs npm dependencies.
type NodeBuilder struct {
	Env                string     `yaml:"env"`
	Requirements       []Artifact `yaml:"requirements"`
	UseNpmCI           *bool      `yaml:"use-npm-ci"`
	AllowDedupeFailure *bool      `yaml:"allow-dedupe-failure"`
}

// PythonBuilder installs Python dependencies into a virtualenv under LocalLibPrefix.
type PythonBuilder struct {
	// Version is the Python binary, e.g. python3; default python3.
	Version               string     `yaml:"version"`
	Requirements          []Artifact `yaml:"requirements"`
	Poetry                *Poetry    `yaml:"poetry"`
	UseSystemSitePackages *bool      `yaml:"use-system-site-packages"`
	NoDeps                *bool      `yaml:"no-deps"`
	// Venv is where the virtualenv is made; default LocalLibPrefix + "/venv".
	Venv string `yaml:"venv"`
	// Tool version pins, written as pip requirement specifiers ("==4.11.0") or
	// bare versions ("4.11.0").
	PipVersion        string `yaml:"pip-version"`
	SetuptoolsVersion string `yaml:"setuptools-version"`
	WheelVersion      string `yaml:"wheel-version"`
	ToxVersion        string `yaml:"tox-version"`
}

// Poetry installs the Python dependencies with Poetry instead of pip.
type Poetry struct {
	Version string `yaml:"version"`
	Devel   *bool  `yaml:"devel"`
	Only    string `yaml:"only"`
	Without string `yaml:"without"`
}

// PHPBuilder installs Composer dependencies.
type PHPBuilder struct {
	Requirements []Artifact `yaml:"requirements"`
	Production   *bool      `yaml:"production"`
}

// BuilderEntry is one item of `builders`: exactly one of the fields is set.
type BuilderEntry struct {
	Custom *CustomBuilder `yaml:"custom"`
	Node   *NodeBuilder   `yaml:"node"`
	Python *PythonBuilder `yaml:"python"`
	PHP    *PHPBuilder    `yaml:"php"`
}

// Kind names the builder an entry holds: custom, node, python or php.
func (b BuilderEntry) Kind() string {
	switch {
	case b.Custom != nil:
		return "custom"
	case b.Node != nil:
		return "node"
	case b.Python != nil:
		return "python"
	case b.PHP != nil:
		return "php"
	}
	return ""
}

func boolValue(b *bool) bool { return b != nil && *b }

func intValue(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}
