package blubber

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
)

var (
	variantNameRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9\-\.]+[a-zA-Z0-9]$`)
	// Debian policy: lowercase alphanumerics, + - and ., at least two characters,
	// optionally :arch, then =version or /release.
	debianPackageRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+\-.]+(:[a-z0-9-]+)?(=[A-Za-z0-9.+~:-]+|/[A-Za-z0-9.+~-]+)?$`)
	debianReleaseRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+~/-]*$`)
	envNameRE       = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	// Upstream's rule for user names: a hostname of at least three characters.
	userNameRE    = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9.-]+[a-zA-Z0-9]$`)
	nodeEnvNameRE = regexp.MustCompile(`^[a-zA-Z0-9]+$`)
	pipVersionRE  = regexp.MustCompile(`^([<>=!~]{0,3}\s*[0-9][0-9A-Za-z.*+!_-]*)(\s*,\s*[<>=!~]{1,3}\s*[0-9][0-9A-Za-z.*+!_-]*)*$`)
)

const maxID = 1<<31 - 1

// validate is pass three: the checks that need the decoded file as a whole.
func validate(c *Config) error {
	errs := &errorList{lines: c.lines}
	checkFieldsSemantics(c, errs)
	if len(errs.errs) == 0 {
		for _, n := range c.VariantNames() {
			checkResolved(c, n, errs)
		}
		checkStageCycles(c, errs)
	}
	if err := errs.result(); err != nil {
		return err
	}
	notes := &errorList{lines: c.lines}
	for _, n := range c.VariantNames() {
		noteIgnored(c, n, notes)
	}
	if err := notes.result(); err != nil {
		c.notices = err.(Errors)
	}
	return nil
}

// checkFieldsSemantics checks each field as written: names, references,
// paths and values, but not what merging makes of them.
func checkFieldsSemantics(c *Config, errs *errorList) {
	checkCommon(c, "", c.Common, errs)
	for _, n := range c.VariantNames() {
		v := c.Variants[n]
		p := field("variants", n)
		if v == nil {
			errs.add(p, "is empty; give the variant at least a base or includes, or remove it")
			continue
		}
		if !variantNameRE.MatchString(n) {
			errs.add(p, "variant name %q is invalid; use at least three letters, digits, '-' or '.', starting with a letter and ending with a letter or digit", n)
		}
		checkCommon(c, p, v.Common, errs)
		for i, inc := range v.Includes {
			ip := index(field(p, "includes"), i)
			switch {
			case inc == n:
				errs.add(ip, "a variant cannot include itself; remove %q", inc)
			case c.Variants[inc] == nil:
				errs.add(ip, "references an unknown variant %q", inc)
			}
		}
		checkCopies(c, n, v.Copies, errs)
	}
}

// checkCommon checks the keys shared by the top level (p "") and variants.
func checkCommon(c *Config, p string, cm Common, errs *errorList) {
	if cm.Base != nil && *cm.Base != "" {
		checkImageRef(field(p, "base"), *cm.Base, errs)
	}
	for release, pkgs := range cm.Apt.Packages {
		pp := field(p, "apt.packages")
		if release != "" {
			pp = field(pp, release)
			if !debianReleaseRE.MatchString(release) {
				errs.add(pp, "%q is not a Debian release name (e.g. bookworm-backports)", release)
			}
		}
		for i, pkg := range pkgs {
			if !debianPackageRE.MatchString(pkg) {
				errs.add(index(pp, i), "%q is not a Debian package name; use lowercase letters, digits, '+', '-' and '.', optionally with =version or /release", pkg)
			}
		}
	}
	for i, s := range cm.Apt.Sources {
		sp := index(field(p, "apt.sources"), i)
		if s.Distribution == "" {
			errs.add(sp, "distribution is required; name the release the source serves, e.g. bookworm-wikimedia")
		}
	}
	checkAbsPath(field(p, "lives.in"), cm.Lives.In, errs)
	checkAbsPath(field(p, "runs.in"), cm.Runs.In, errs)
	checkUser(field(p, "lives"), cm.Lives.As, cm.Lives.UID, cm.Lives.GID, errs)
	checkUser(field(p, "runs"), cm.Runs.As, cm.Runs.UID, cm.Runs.GID, errs)
	for k := range cm.Runs.Environment {
		if !envNameRE.MatchString(k) {
			errs.add(field(field(p, "runs.environment"), k), "%q is not a valid environment variable name; use letters, digits and '_', not starting with a digit", k)
		}
	}
	for k := range cm.Arguments {
		if !envNameRE.MatchString(k) {
			errs.add(field(field(p, "arguments"), k), "%q is not a valid build-argument name; use letters, digits and '_', not starting with a digit", k)
		}
	}
	checkBuildersList(p, cm, errs)
	if cm.Builder != nil {
		checkCustom(c, field(p, "builder"), *cm.Builder, errs)
	}
	if cm.Node != nil {
		checkNode(c, field(p, "node"), *cm.Node, errs)
	}
	if cm.Python != nil {
		checkPython(c, field(p, "python"), *cm.Python, errs)
	}
	if cm.PHP != nil {
		checkRequirements(c, field(p, "php.requirements"), cm.PHP.Requirements, errs)
	}
	for i, b := range cm.Builders {
		bp := index(field(p, "builders"), i)
		set := 0
		for _, isSet := range []bool{b.Custom != nil, b.Node != nil, b.Python != nil, b.PHP != nil} {
			if isSet {
				set++
			}
		}
		if set != 1 {
			errs.add(bp, "must hold exactly one of custom, node, python or php; split it into one entry per builder")
			continue
		}
		switch {
		case b.Custom != nil:
			checkCustom(c, field(bp, "custom"), *b.Custom, errs)
		case b.Node != nil:
			checkNode(c, field(bp, "node"), *b.Node, errs)
		case b.Python != nil:
			checkPython(c, field(bp, "python"), *b.Python, errs)
		case b.PHP != nil:
			checkRequirements(c, field(bp, "php.requirements"), b.PHP.Requirements, errs)
		}
	}
}

func checkNode(c *Config, p string, n NodeBuilder, errs *errorList) {
	if n.Env != "" && !nodeEnvNameRE.MatchString(n.Env) {
		errs.add(field(p, "env"), "%q is not a valid Node environment name; use letters and digits only, e.g. production", n.Env)
	}
	checkRequirements(c, field(p, "requirements"), n.Requirements, errs)
}

func checkCustom(c *Config, p string, b CustomBuilder, errs *errorList) {
	if !b.Command.IsZero() && b.Script != "" {
		errs.add(p, "has both command and script; keep one of them")
	}
	if len(b.Command.Args) > 0 && strings.TrimSpace(b.Command.Args[0]) == "" {
		errs.add(field(p, "command[0]"), "is empty; name the program to run")
	}
	checkRequirements(c, field(p, "requirements"), b.Requirements, errs)
	for i, m := range b.Mounts {
		mp := index(field(p, "mounts"), i)
		switch {
		case m.From == "":
			errs.add(field(mp, "from"), "is required; name a variant, an image or local")
		case m.From != LocalContext && c.Variants[m.From] == nil:
			checkFromRef(c, field(mp, "from"), m.From, "", errs)
		}
		if m.From == LocalContext && m.Source != "" {
			checkRelPath(field(mp, "source"), m.Source, errs)
		}
	}
	for i, cache := range b.Caches {
		if strings.TrimSpace(cache.Destination) == "" {
			errs.add(index(field(p, "caches"), i), "destination is empty; give the directory to keep between builds, e.g. /var/cache/go")
		}
	}
}

func checkPython(c *Config, p string, py PythonBuilder, errs *errorList) {
	checkRequirements(c, field(p, "requirements"), py.Requirements, errs)
	checkAbsPath(field(p, "venv"), py.Venv, errs)
	pins := map[string]string{
		"pip-version": py.PipVersion, "setuptools-version": py.SetuptoolsVersion,
		"wheel-version": py.WheelVersion, "tox-version": py.ToxVersion,
	}
	if py.Poetry != nil {
		pins["poetry.version"] = py.Poetry.Version
	}
	for k, v := range pins {
		if v != "" && !pipVersionRE.MatchString(v) {
			errs.add(field(p, k), "%q is not a version pin; write a version (1.2.3) or a specifier (==1.2.3, >=1.2,<2)", v)
		}
	}
}

func checkRequirements(c *Config, p string, reqs []Artifact, errs *errorList) {
	for i, r := range reqs {
		checkArtifact(c, index(p, i), r, "", errs)
	}
}

// checkCopies checks a variant's copies, including repeats within the list.
func checkCopies(c *Config, variant string, copies []Copy, errs *errorList) {
	p := field(field("variants", variant), "copies")
	seen := map[string]int{}
	for i, cp := range copies {
		ip := index(p, i)
		if j, dup := seen[copyKey(cp)]; dup {
			errs.add(ip, "repeats copies[%d]; remove one of them", j)
			continue
		}
		seen[copyKey(cp)] = i
		if cp.Shorthand {
			switch {
			case cp.From == LocalContext:
			case cp.From == variant:
				errs.add(ip, "a variant cannot copy from itself; remove %q", cp.From)
			case c.Variants[cp.From] != nil:
			case looksLikeImage(cp.From):
				errs.add(ip, "copying a whole image is not supported; use the longhand {from: %s, source: PATH, destination: PATH}", cp.From)
			default:
				errs.add(ip, "references an unknown variant %q", cp.From)
			}
			continue
		}
		checkArtifact(c, ip, cp.Artifact, variant, errs)
	}
}

// checkArtifact checks a longhand copy or requirement. self is the variant that
// holds a copy ("" for requirements, which may name any variant).
func checkArtifact(c *Config, p string, a Artifact, self string, errs *errorList) {
	if a.Destination != "" && a.Source == "" && (a.From == LocalContext || c.Variants[a.From] != nil) {
		errs.add(field(p, "source"), "is required when destination is set; give the path to copy, or drop destination to copy the whole %s",
			map[bool]string{true: "build context", false: "variant's lives.in"}[a.From == LocalContext])
	}
	switch {
	case a.From == "":
		errs.addLine(field(p, "from"), errs.lines[p], "is required; name local (the build context), a variant or an image")
	case a.From == LocalContext:
		if a.Source != "" {
			checkRelPath(field(p, "source"), a.Source, errs)
		}
	case self != "" && a.From == self:
		errs.add(field(p, "from"), "a variant cannot copy from itself; use local or another variant")
	case c.Variants[a.From] != nil:
	default:
		checkFromRef(c, field(p, "from"), a.From, a.Source, errs)
	}
	for i, pat := range a.Exclude {
		if _, err := path.Match(strings.TrimPrefix(pat, "!"), ""); err != nil || pat == "" {
			errs.add(index(field(p, "exclude"), i), "%q is not a valid glob pattern (e.g. **/*.swp or !keep-this)", pat)
		}
	}
}

// checkFromRef checks a from that is neither local nor a variant: it must be an
// image reference, and copying from an image needs a source.
func checkFromRef(c *Config, p, from, source string, errs *errorList) {
	if !looksLikeImage(from) {
		errs.add(p, "references an unknown variant %q", from)
		return
	}
	checkImageRef(p, from, errs)
	if source == "" && strings.HasSuffix(p, ".from") && !strings.Contains(p, ".mounts[") {
		errs.add(strings.TrimSuffix(p, ".from")+".source", "is required when copying from an image; give the path to copy")
	}
}

// looksLikeImage tells an image reference from a misspelt variant name: an image
// names a registry or repository path, a tag or a digest.
func looksLikeImage(s string) bool { return strings.ContainsAny(s, "/:@") }

// checkImageRef checks ref with go-containerregistry, then with the parser
// BuildKit itself uses, which refuses some names the former lets through
// (e.g. "." or "./x").
func checkImageRef(p, ref string, errs *errorList) {
	_, err := name.ParseReference(ref)
	if err == nil {
		_, err = reference.ParseNormalizedNamed(ref)
	}
	if err != nil {
		errs.add(p, "%q is not a valid image reference; write registry/repository:tag with a lowercase repository, e.g. docker-registry.wikimedia.org/bookworm:latest", ref)
	}
}

func checkAbsPath(p, v string, errs *errorList) {
	if v == "" {
		return
	}
	if !path.IsAbs(v) || path.Clean(v) == "/" {
		errs.add(p, "%q must be an absolute path other than /, e.g. /srv/app", v)
	}
}

func checkRelPath(p, v string, errs *errorList) {
	if path.IsAbs(v) {
		errs.add(p, "%q must be relative to the build context, e.g. src/", v)
		return
	}
	for _, part := range strings.Split(v, "/") {
		if part == ".." {
			errs.add(p, "%q must stay inside the build context; remove the '..'", v)
			return
		}
	}
}

func checkUser(p, as string, uid, gid *int, errs *errorList) {
	if as != "" && (!userNameRE.MatchString(as) || len(as) > 32) {
		errs.add(field(p, "as"), "%q is not a valid user name; use 3 to 32 letters, digits, '-' and '.', starting with a letter and ending with a letter or digit", as)
	}
	if as == "root" {
		errs.add(field(p, "as"), "must not be root; name an unprivileged user (the default is fine)")
	}
	for k, id := range map[string]*int{"uid": uid, "gid": gid} {
		if id != nil && (*id < 0 || *id > maxID) {
			errs.add(field(p, k), "%d is out of range; use a number from 1 to %d", *id, maxID)
		}
	}
}

func fmtFields(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
