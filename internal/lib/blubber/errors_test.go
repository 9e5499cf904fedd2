package blubber

import (
	"errors"
	"strings"
	"testing"
)

// TestErrorMessages pins the exact message of every class of error, each
// naming the field and saying what to do.
func TestErrorMessages(t *testing.T) {
	const head = "version: v4\nbase: debian:bookworm\n"
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"empty file", "", []string{"the file is empty; a Blubber config starts with `version: v4`"}},
		{"yaml syntax", "version: v4\nbase: [unclosed\n", []string{"reading YAML: line 1: did not find expected ',' or ']'"}},
		{"two documents", "version: v4\n---\nversion: v4\n", []string{"the file holds more than one YAML document; keep only the Blubber config"}},
		{"top level not a mapping", "- version: v4\n", []string{"expected a mapping at the top level, found a list; a Blubber config starts with `version: v4`"}},
		{"missing version", "base: debian\n", []string{"version: is required; add `version: v4` at the top of the file"}},
		{"wrong type", head + "lives: { uid: abc }\n", []string{`lives.uid: expected an integer, found a string ("abc")`}},
		{"wrong type in oneOf", head + "builder: { command: 3 }\n", []string{`builder.command: expected a list of strings or a string, found an integer (3)`}},
		{"null item", head + "entrypoint: [~]\n", []string{`entrypoint[0]: expected a string, found null`}},
		{"enum", head + "builder: { command: make, caches: [{destination: /c, access: sometimes}] }\n",
			[]string{`builder.caches[0].access: must be one of shared, private, locked, found "sometimes"`}},
		{"pattern", head + "apt: { sources: [{url: ftp://deb.example.org, distribution: bookworm}] }\n",
			[]string{`apt.sources[0].url: expected an http:// or https:// URL, found "ftp://deb.example.org"`}},
		{"required", head + "apt: { sources: [{distribution: bookworm}] }\n", []string{"apt.sources[0].url: is required"}},
		{"declared twice", head + "entrypoint: [a]\nentrypoint: [b]\n", []string{"entrypoint: is declared twice; keep one"}},
		{"unknown field with suggestion", head + "variants:\n  test:\n    entrypiont: [make]\n",
			[]string{`variants.test.entrypiont: is not a known field; did you mean "entrypoint"?`}},
		{"unknown field without suggestion", head + "lives: { where: /srv }\n",
			[]string{`lives.where: is not a known field; expected one of as, gid, in, uid`}},
		{"unknown variant in copies", head + "variants:\n  prep: {}\n  production:\n    copies: [{from: prep2, source: /srv/app}]\n",
			[]string{`variants.production.copies[0].from: references an unknown variant "prep2"`}},
		{"unknown variant in shorthand copies", head + "variants:\n  production:\n    copies: [prep]\n",
			[]string{`variants.production.copies[0]: references an unknown variant "prep"`}},
		{"builders with node", head + "variants:\n  test:\n    node: { requirements: [package.json] }\n    builders: [{custom: {command: make}}]\n",
			[]string{`variants.test.builders: is not allowed if any of field(s) "node" is declared/included; move them into builders as entries, or drop builders`}},
		{"builders with included builder and python", head + "python: { version: python3 }\nvariants:\n  aaa:\n    builder: { command: make }\n  test:\n    includes: [aaa]\n    builders: [{custom: {command: make}}]\n",
			[]string{`variants.test.builders: is not allowed if any of field(s) "builder", "python" is declared/included; move them into builders as entries, or drop builders`}},
		{"builders with node at the top level", head + "node: { requirements: [package.json] }\nbuilders: [{custom: {command: make}}]\n",
			[]string{`builders: is not allowed if any of field(s) "node" is declared/included; move them into builders as entries, or drop builders`}},
		{"predefined builder twice", head + "variants:\n  test:\n    builders: [{node: {requirements: [a.json]}}, {node: {requirements: [b.json]}}]\n",
			[]string{`variants.test.builders: has 2 "node" entries; a predefined builder may appear only once in a list (custom ones may repeat), so merge them`}},
		{"builders entry with two builders", head + "variants:\n  test:\n    builders: [{node: {}, php: {}}]\n",
			[]string{"variants.test.builders[0]: must hold exactly one of custom, node, python or php; split it into one entry per builder"}},
		{"includes cycle", head + "variants:\n  aaa:\n    includes: [bbb]\n  bbb:\n    includes: [ccc]\n  ccc:\n    includes: [aaa]\n",
			[]string{"variants.ccc.includes: includes form a cycle (aaa -> bbb -> ccc -> aaa); remove one of these includes"}},
		{"include unknown", head + "variants:\n  test:\n    includes: [buidl]\n", []string{`variants.test.includes[0]: references an unknown variant "buidl"`}},
		{"include itself", head + "variants:\n  test:\n    includes: [test]\n", []string{`variants.test.includes[0]: a variant cannot include itself; remove "test"`}},
		{"variant name", head + "variants:\n  t_1: {}\n",
			[]string{`variants.t_1: variant name "t_1" is invalid; use at least three letters, digits, '-' or '.', starting with a letter and ending with a letter or digit`}},
		{"debian package", head + "apt: { packages: [Git] }\n",
			[]string{`apt.packages[0]: "Git" is not a Debian package name; use lowercase letters, digits, '+', '-' and '.', optionally with =version or /release`}},
		{"debian release", head + "apt: { packages: { \"bad release\": [git] } }\n",
			[]string{`apt.packages.bad release: "bad release" is not a Debian release name (e.g. bookworm-backports)`}},
		{"apt source distribution", head + "apt: { sources: [{url: http://deb.example.org}] }\n",
			[]string{"apt.sources[0]: distribution is required; name the release the source serves, e.g. bookworm-wikimedia"}},
		{"environment name", head + "runs: { environment: { 1ST: x } }\n",
			[]string{`runs.environment.1ST: "1ST" is not a valid environment variable name; use letters, digits and '_', not starting with a digit`}},
		{"image reference", "version: v4\nbase: docker-registry.wikimedia.org/Bad:tag\n",
			[]string{`base: "docker-registry.wikimedia.org/Bad:tag" is not a valid image reference; write registry/repository:tag with a lowercase repository, e.g. docker-registry.wikimedia.org/bookworm:latest`}},
		{"absolute path", head + "lives: { in: srv/app }\nruns: { in: / }\n", []string{
			`lives.in: "srv/app" must be an absolute path other than /, e.g. /srv/app`,
			`runs.in: "/" must be an absolute path other than /, e.g. /srv/app`}},
		{"local source absolute", head + "variants:\n  test:\n    copies: [{from: local, source: /etc/passwd}]\n",
			[]string{`variants.test.copies[0].source: "/etc/passwd" must be relative to the build context, e.g. src/`}},
		{"local source escapes", head + "node: { requirements: [../secrets.json] }\n",
			[]string{`node.requirements[0].source: "../secrets.json" must stay inside the build context; remove the '..'`}},
		{"duplicate copies", head + "variants:\n  test:\n    copies: [local, local]\n", []string{"variants.test.copies[1]: repeats copies[0]; remove one of them"}},
		{"copy from itself", head + "variants:\n  test:\n    copies: [test]\n", []string{`variants.test.copies[0]: a variant cannot copy from itself; remove "test"`}},
		{"copy whole image", head + "variants:\n  test:\n    copies: [debian:bookworm]\n",
			[]string{"variants.test.copies[0]: copying a whole image is not supported; use the longhand {from: debian:bookworm, source: PATH, destination: PATH}"}},
		{"copy from image without source", head + "variants:\n  test:\n    copies: [{from: debian:bookworm, destination: /x}]\n",
			[]string{"variants.test.copies[0].source: is required when copying from an image; give the path to copy"}},
		{"exclude glob", head + "variants:\n  test:\n    copies: [{from: local, exclude: [\"[\"]}]\n",
			[]string{`variants.test.copies[0].exclude[0]: "[" is not a valid glob pattern (e.g. **/*.swp or !keep-this)`}},
		{"copies cycle", head + "variants:\n  one:\n    copies: [two]\n  two:\n    copies: [one]\n",
			[]string{"variants.two: copies, requirements or mounts form a cycle (one -> two -> one); a variant cannot need its own files, so remove one of these references"}},
		{"command and script", head + "builder: { command: make, script: make }\n", []string{"builder: has both command and script; keep one of them"}},
		{"empty command", head + "builder: { command: [\"\"] }\n", []string{"builder.command[0]: is empty; name the program to run"}},
		{"mount without from", head + "builder: { command: make, mounts: [{destination: /x}] }\n",
			[]string{"builder.mounts[0].from: is required; name a variant, an image or local"}},
		{"cache without destination", head + "builder: { command: make, caches: [\"\"] }\n",
			[]string{"builder.caches[0]: destination is empty; give the directory to keep between builds, e.g. /var/cache/go"}},
		{"version pin", head + "python: { tox-version: latest }\n",
			[]string{`python.tox-version: "latest" is not a version pin; write a version (1.2.3) or a specifier (==1.2.3, >=1.2,<2)`}},
		{"user name", head + "lives: { as: bo }\n",
			[]string{`lives.as: "bo" is not a valid user name; use 3 to 32 letters, digits, '-' and '.', starting with a letter and ending with a letter or digit`}},
		{"node env", head + "node: { env: \"prod uction\" }\n",
			[]string{`node.env: "prod uction" is not a valid Node environment name; use letters and digits only, e.g. production`}},
		{"copy without from", head + "variants:\n  test:\n    copies: [{source: a}]\n",
			[]string{"variants.test.copies[0].from: is required; name local (the build context), a variant or an image"}},
		{"destination without source", head + "variants:\n  prep: {}\n  test:\n    copies: [{from: prep, destination: /x}]\n",
			[]string{"variants.test.copies[0].source: is required when destination is set; give the path to copy, or drop destination to copy the whole variant's lives.in"}},
		{"build argument name", head + "arguments: { 1ST: x }\n",
			[]string{`arguments.1ST: "1ST" is not a valid build-argument name; use letters, digits and '_', not starting with a digit`}},
		{"arguments as a list", head + "arguments: [--port, 80]\n",
			[]string{`arguments: expected a mapping of build-argument names to default values, e.g. {VERSION: "1.0"} (arguments for the program belong in entrypoint), found a list`}},
		{"root user", head + "runs: { as: root }\n", []string{"runs.as: must not be root; name an unprivileged user (the default is fine)"}},
		{"uid range", head + "runs: { uid: -1 }\n", []string{"runs.uid: -1 is out of range; use a number from 1 to 2147483647"}},
		{"empty variant", head + "variants:\n  test:\n", []string{"variants.test: is empty; give the variant at least a base or includes, or remove it"}},
		{"all errors at once", head + "lives: { uid: x, in: 3 }\nrunz: {}\napt: { packages: [Git] }\nvariants:\n  production:\n    base: 3\n    copies: [{from: prep2, source: /x}]\n", []string{
			`lives.uid: expected an integer, found a string ("x")`,
			`lives.in: expected a string, found an integer (3)`,
			`runz: is not a known field; did you mean "runs"?`,
			`apt.packages[0]: "Git" is not a Debian package name; use lowercase letters, digits, '+', '-' and '.', optionally with =version or /release`,
			`variants.production.base: expected a string, found an integer (3)`,
			`variants.production.copies[0].from: references an unknown variant "prep2"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src))
			if err == nil {
				t.Fatalf("Parse succeeded; want %q", tt.want)
			}
			got := fieldErrors(t, err)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n got: %q\nwant: %q", got, tt.want)
			}
		})
	}
}

// TestScratchNotices: on a variant without a base, upstream ignores apt,
// builders and the environment; lint accepts them and says so.
func TestScratchNotices(t *testing.T) {
	c := mustParse(t, "version: v4\napt: { packages: [git] }\nvariants:\n  test:\n    base: ~\n    builder: { command: make }\n    runs: { environment: { A: b } }\n")
	var got []string
	for _, n := range c.Notices() {
		got = append(got, n.Error())
	}
	want := []string{
		"variants.test: builders are ignored: the variant has no base (scratch), where there is no shell; set base to an image that has the build tools",
		"variants.test.runs.environment: is ignored: the variant has no base (scratch), so its image gets only its copies, entrypoint and labels",
		"variants.test.apt: is ignored: the variant has no base (scratch), so nothing can install packages; set base to an image that has apt",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("notices:\n got: %q\nwant: %q", got, want)
	}
	if n := mustParse(t, "version: v4\nbase: debian\napt: { packages: [git] }\nvariants:\n  test: {}\n").Notices(); len(n) != 0 {
		t.Errorf("a variant with a base has notices %q", n)
	}
	py := mustParse(t, "version: v4\nbase: debian\nvariants:\n  test:\n    python: { requirements: [r.txt] }\n")
	if got := py.Notices().Error(); got != "variants.test: the python builder is ignored without a version; set python.version (e.g. python3)" {
		t.Errorf("python without version: notices %q", got)
	}
}

func TestUnsupportedVersion(t *testing.T) {
	for _, v := range []string{"v3", "4", "v5"} {
		_, err := Parse([]byte("version: " + v + "\nbase: debian\n"))
		var ve *VersionError
		if !errors.As(err, &ve) || !errors.Is(err, ErrUnsupportedVersion) {
			t.Fatalf("version %s: want *VersionError, got %v", v, err)
		}
		want := `config version "` + v + `" is unsupported; this tool reads only "v4": set ` + "`version: v4`" + ` and update the file to the v4 schema`
		if err.Error() != want {
			t.Errorf("got %q, want %q", err, want)
		}
	}
}

func TestErrorsCarryLines(t *testing.T) {
	_, err := Parse([]byte("version: v4\nbase: debian:bookworm\nvariants:\n  test:\n    copies: [nope]\n"))
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 {
		t.Fatalf("want one error, got %v", err)
	}
	if errs[0].Line != 5 {
		t.Errorf("line = %d, want 5", errs[0].Line)
	}
}
