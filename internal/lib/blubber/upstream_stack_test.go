package blubber

// Upstream Blubber's acceptance scenarios built for real: each case of
// shared/conformance/blubber-upstream whose build needs nothing but a Debian base
// image and its packages (`needs: none` or `apt`) is built on the stack's
// buildkitd, in conveyor's own equivalent of upstream's example application,
// pushed to the stack's registry and checked as upstream's scenario checks the
// image it built.

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	bkclient "github.com/moby/buildkit/client"

	"github.com/wikimedia/conveyor/internal/dev/devstack"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
)

// upstreamBases are the bases upstream's scenarios name; the stack has no
// access to Docker Hub, so the builds use the stack's own Debian image in their
// place.
var upstreamBases = []string{"debian:bullseye", "debian:stable"}

// builtOnTheStack says whether TestUpstreamScenariosOnBuildkitd builds the case.
func builtOnTheStack(ex *expectation) bool {
	if ex.kind != "valid" || ex.build == "" || ex.build == "none" || ex.run || len(ex.needs) != 1 {
		return false
	}
	return ex.needs[0] == "none" || ex.needs[0] == "apt"
}

// appFile is one file of a stand-in application.
type appFile struct {
	mode os.FileMode
	body string
}

// apps are conveyor's own stand-ins for upstream's example applications (the
// cases' context-from), with the files the scenarios use.
var apps = map[string]map[string]appFile{
	"examples/hello-world": {
		"README.md": {0o644, "# hello\n\nA script that says hello, for Blubber's scenarios.\n"},
		"hello.sh":  {0o755, "#!/bin/sh\necho 'hello from a Blubber scenario'\n"},
	},
	"examples/hello-world-c": {
		"README.md": {0o644, "# hello in C\n"},
		"main.c":    {0o644, "#include <stdio.h>\n\nint main(void) {\n\tputs(\"hello from C\");\n\treturn 0;\n}\n"},
	},
	"examples/web-app": {
		"README.md": {0o644, "# a web app's build\n"},
		"Makefile":  {0o644, "foo:\n\ttouch foo\n\nbar:\n\ttouch bar\n"},
	},
}

func TestUpstreamScenariosOnBuildkitd(t *testing.T) {
	cfg := stacktest.Debian(t)
	bk, err := bkclient.New(context.Background(), cfg.Buildkit.Address)
	if err != nil {
		t.Fatalf("connecting to buildkitd at %s: %v", cfg.Buildkit.Address, err)
	}
	t.Cleanup(func() { bk.Close() })
	dir := filepath.Join(filepath.Dir(conformanceDir(t)), "blubber-upstream", "cases")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	built := 0
	for _, e := range entries {
		id := e.Name()
		ex, err := readExpect(filepath.Join(dir, id, "expect.txt"))
		if err != nil || !builtOnTheStack(ex) {
			continue
		}
		built++
		t.Run(id, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join(dir, id, "blubber.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			yaml := string(src)
			for _, b := range upstreamBases {
				yaml = strings.ReplaceAll(yaml, b, devstack.DebianImage)
			}
			c, err := Parse([]byte(yaml))
			if err != nil {
				t.Fatal(err)
			}
			app, ok := apps[ex.contextFrom]
			if !ok {
				t.Fatalf("no stand-in for upstream's %s", ex.contextFrom)
			}
			ctxDir := scenarioContext(t, app, ex.contextFiles, filepath.Join(dir, id, "context-extra"))
			tag := fmt.Sprintf("%s/blubber-upstream/%s:%s", cfg.Registry.Address, id, strings.ToLower(rand.Text()))
			bctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			res, err := Build(bctx, bk, c, ex.build, BuildOptions{ContextDir: ctxDir, Tag: tag, Push: true, Insecure: true,
				Registry: cfg.Registry.Address, Username: cfg.Registry.Username, Password: cfg.Registry.Password, BuildArgs: ex.buildArgs})
			if err != nil {
				t.Fatalf("building variant %s: %v", ex.build, err)
			}
			img := pullImage(t, res.Ref, cfg.Registry.Username, cfg.Registry.Password)
			for _, check := range ex.image {
				if err := img.check(ex.build, check); err != nil {
					t.Errorf("image %s: %v", check, err)
				}
			}
		})
	}
	if built < 16 {
		t.Errorf("%d scenarios built, want the 16 that need only a Debian base and its packages", built)
	}
}

// scenarioContext writes the stand-in app (only files, when the case lists
// them) and the case's extra files (a02's .dockerignore) into a temporary build
// context.
func scenarioContext(t *testing.T, app map[string]appFile, files []string, extra string) string {
	t.Helper()
	dir := t.TempDir()
	for name, f := range app {
		if len(files) > 0 && !slices.Contains(files, name) {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(f.body), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	extras, err := os.ReadDir(extra)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, f := range extras {
		b, err := os.ReadFile(filepath.Join(extra, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// builtImage is what the image checks read: the config and the flattened
// filesystem's headers, with /etc/passwd and /etc/group.
type builtImage struct {
	config        v1.Config
	files         map[string]*tar.Header
	passwd, group string
}

func pullImage(t *testing.T, ref, username, password string) *builtImage {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: username, Password: password})), remote.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("pulling %s: %v", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	out := &builtImage{config: cf.Config, files: map[string]*tar.Header{}}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading the layers of %s: %v", ref, err)
		}
		p := "/" + strings.TrimPrefix(filepath.Clean("/"+h.Name), "/")
		out.files[p] = h
		if p == "/etc/passwd" || p == "/etc/group" {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if p == "/etc/passwd" {
				out.passwd = string(b)
			} else {
				out.group = string(b)
			}
		}
	}
	return out
}

// resolve returns the header of path, following symbolic links in the image's
// filesystem; nil when it does not exist or the links go round.
func (im *builtImage) resolve(path string) *tar.Header {
	for range 16 {
		h, ok := im.files[path]
		if !ok || h.Typeflag != tar.TypeSymlink {
			return h
		}
		target := h.Linkname
		if !strings.HasPrefix(target, "/") {
			target = filepath.Join(filepath.Dir(path), target)
		}
		path = filepath.Clean(target)
	}
	return nil
}

// check runs one `image V CHECK ARGS` line (README.md of the cases) on variant's
// image.
func (im *builtImage) check(variant, line string) error {
	target, rest, _ := strings.Cut(line, " ")
	if target != variant {
		return fmt.Errorf("the check is on variant %s, the scenario built %s", target, variant)
	}
	kind, args, _ := strings.Cut(strings.TrimSpace(rest), " ")
	args = strings.TrimSpace(args)
	c := im.config
	switch kind {
	case "user":
		if c.User != args {
			return fmt.Errorf("user %q", c.User)
		}
	case "entrypoint":
		var want []string
		if err := json.Unmarshal([]byte(args), &want); err != nil {
			return fmt.Errorf("reading the expected entrypoint: %v", err)
		}
		if !slices.Equal(c.Entrypoint, want) {
			return fmt.Errorf("entrypoint %q", c.Entrypoint)
		}
	case "no-cmd":
		if len(c.Cmd) > 0 {
			return fmt.Errorf("cmd %q", c.Cmd)
		}
	case "workdir":
		if c.WorkingDir != args {
			return fmt.Errorf("working directory %q", c.WorkingDir)
		}
	case "env":
		if !slices.Contains(c.Env, args) {
			return fmt.Errorf("environment %q", c.Env)
		}
	case "label":
		k, v, hasValue := strings.Cut(args, "=")
		got, ok := c.Labels[k]
		if !ok || hasValue && got != v {
			return fmt.Errorf("labels %v", c.Labels)
		}
	case "file":
		// As test -f: a symbolic link to a regular file is one (Debian's
		// /usr/bin/gcc links to gcc-12).
		if h := im.resolve(args); h == nil || h.Typeflag != tar.TypeReg {
			return fmt.Errorf("no regular file %s in the image", args)
		}
	case "nofile":
		if _, ok := im.files[args]; ok {
			return fmt.Errorf("%s is in the image", args)
		}
	case "owner":
		path, owner, _ := strings.Cut(args, " ")
		h, ok := im.files[path]
		if !ok {
			return fmt.Errorf("no %s in the image", path)
		}
		if got := fmt.Sprintf("%d:%d", h.Uid, h.Gid); got != owner {
			return fmt.Errorf("%s is owned by %s", path, got)
		}
	case "passwd", "group":
		who, id, _ := strings.Cut(args, " ")
		db := im.passwd
		if kind == "group" {
			db = im.group
		}
		for _, l := range strings.Split(db, "\n") {
			f := strings.Split(l, ":")
			if len(f) > 2 && f[0] == who {
				if f[2] != id {
					return fmt.Errorf("/etc/%s has %s with id %s", kind, who, f[2])
				}
				return nil
			}
		}
		return fmt.Errorf("/etc/%s has no %s", kind, who)
	default:
		return fmt.Errorf("unknown image check %q", kind)
	}
	return nil
}

// TestImageChecksRefuseWhatDiffers: each kind of image check fails on an image
// that differs from it, so that the scenarios above can fail.
func TestImageChecksRefuseWhatDiffers(t *testing.T) {
	im := &builtImage{
		config: v1.Config{User: "900", Entrypoint: []string{"./hello.sh"}, WorkingDir: "/srv/app", Env: []string{"FOO=bar"},
			Labels: map[string]string{"blubber.variant": "hello"}},
		files: map[string]*tar.Header{"/srv/app/hello.sh": {Typeflag: tar.TypeReg, Uid: 65533, Gid: 65533},
			"/usr/bin/gcc": {Typeflag: tar.TypeSymlink, Linkname: "gcc-12"}, "/usr/bin/gcc-12": {Typeflag: tar.TypeReg},
			"/usr/bin/loop": {Typeflag: tar.TypeSymlink, Linkname: "/usr/bin/loop"}, "/usr/bin/dangling": {Typeflag: tar.TypeSymlink, Linkname: "nothing"}},
		passwd: "runuser:x:900:900::/home/runuser:/bin/sh\n",
		group:  "runuser:x:900:\n",
	}
	for _, ok := range []string{"user 900", `entrypoint ["./hello.sh"]`, "no-cmd", "workdir /srv/app", "env FOO=bar",
		"label blubber.variant=hello", "file /srv/app/hello.sh", "nofile /srv/app/README.md", "owner /srv/app/hello.sh 65533:65533",
		"passwd runuser 900", "group runuser 900", "file /usr/bin/gcc"} {
		if err := im.check("hello", "hello "+ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"user 901", `entrypoint ["./other.sh"]`, "workdir /", "env FOO=baz", "label blubber.variant=other",
		"label blubber.version", "file /srv/app/README.md", "nofile /srv/app/hello.sh", "owner /srv/app/hello.sh 0:0",
		"passwd runuser 901", "group somebody 65533", "frobnicate x", "file /usr/bin/loop", "file /usr/bin/dangling"} {
		if err := im.check("hello", "hello "+bad); err == nil {
			t.Errorf("%s passed on an image that differs", bad)
		}
	}
	if err := im.check("hello", "other user 900"); err == nil {
		t.Error("a check on another variant passed")
	}
}
