package devstack

import (
	"archive/tar"
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The images the project builds itself so that nothing is pulled from outside.
const (
	// BaseImage is a one-layer image of Debian's busybox-static: the base the sample
	// services and tests build on.
	BaseImage = registryAddr + "/conveyor/busybox:latest"
	// PauseImage is the pod sandbox image of the local node.
	PauseImage = registryAddr + "/conveyor/pause:1"
)

//go:embed pause/main.go
var pauseSource []byte

// epoch is the timestamp of every file and image the stack builds: images are
// reproducible, the same inputs give the same digest.
var epoch = time.Unix(0, 0).UTC()

// imagesComponent builds the base and pause images and pushes them to the registry.
func imagesComponent() component {
	return component{
		name:    "base-images",
		address: func(*stack) string { return BaseImage + ", " + PauseImage },
		timeout: 3 * time.Minute,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			base, err := busyboxImage()
			if err != nil {
				return nil, fmt.Errorf("building the base image: %w", err)
			}
			pause, err := s.pauseImage(ctx)
			if err != nil {
				return nil, fmt.Errorf("building the pause image: %w", err)
			}
			auth := authn.FromConfig(authn.AuthConfig{Username: registryUser, Password: s.secret("registry-password")})
			for ref, img := range map[string]v1.Image{BaseImage: base, PauseImage: pause} {
				r, err := name.ParseReference(ref)
				if err != nil {
					return nil, err
				}
				if err := remote.Write(r, img, remote.WithContext(ctx), remote.WithAuth(auth)); err != nil {
					return nil, fmt.Errorf("pushing %s: %w", ref, err)
				}
			}
			return nil, nil
		},
		ready: func(ctx context.Context, s *stack) error {
			for _, ref := range []string{BaseImage, PauseImage} {
				r, err := name.ParseReference(ref)
				if err != nil {
					return err
				}
				if _, err := remote.Head(r, remote.WithContext(ctx)); err != nil {
					return fmt.Errorf("%s: %w", ref, err)
				}
			}
			return nil
		},
	}
}

// tarEntry is one file of a layer.
type tarEntry struct {
	name     string
	mode     int64
	typeflag byte
	link     string
	uid, gid int
	body     []byte
	// file, when set, is read for the body instead of body; size is its length.
	file string
	size int64
}

// layer makes a reproducible layer in memory: see writeTar.
func layer(entries []tarEntry) (v1.Layer, error) {
	var buf bytes.Buffer
	if err := writeTar(&buf, entries); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

// writeTar writes entries as a reproducible tar stream: sorted by name, numeric
// owners only (no user or group names), every timestamp epoch.
func writeTar(w io.Writer, entries []tarEntry) error {
	sortEntries(entries)
	tw := tar.NewWriter(w)
	for _, e := range entries {
		size := int64(len(e.body))
		if e.file != "" {
			size = e.size
		}
		h := &tar.Header{Name: e.name, Mode: e.mode, Typeflag: e.typeflag, Linkname: e.link,
			Uid: e.uid, Gid: e.gid, Size: size, ModTime: epoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if err := writeBody(tw, e); err != nil {
			return fmt.Errorf("writing %s: %w", e.name, err)
		}
	}
	return tw.Close()
}

// sortEntries puts entries in name order, which puts every directory before its contents.
func sortEntries(entries []tarEntry) {
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
}

func writeBody(w io.Writer, e tarEntry) error {
	if e.file == "" {
		_, err := w.Write(e.body)
		return err
	}
	f, err := os.Open(e.file)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, e.size+1))
	if err == nil && n != e.size {
		err = fmt.Errorf("%s changed size while being packed (%d bytes, expected %d)", e.file, n, e.size)
	}
	return err
}

func image(l v1.Layer, cfg v1.Config) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS, cf.Created = "amd64", "linux", v1.Time{Time: epoch}
	cf.Config = cfg
	return mutate.ConfigFile(img, cf)
}

// busyboxImage is Debian's static busybox with every applet linked, minimal account
// files, and the user-management stand-ins Blubber's build phases call.
func busyboxImage() (v1.Image, error) {
	const bb = "/bin/busybox"
	bin, err := os.ReadFile(bb)
	if err != nil {
		return nil, fmt.Errorf("reading %s (install Debian's busybox-static: make deps): %w", bb, err)
	}
	out, err := exec.Command(bb, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("listing busybox applets: %w", err)
	}
	dirs := map[string]bool{"bin/": true, "sbin/": true, "usr/": true, "usr/bin/": true, "usr/sbin/": true,
		"etc/": true, "tmp/": true, "root/": true, "home/": true, "var/": true, "var/tmp/": true, "dev/": true, "proc/": true, "sys/": true}
	entries := []tarEntry{{name: "bin/busybox", mode: 0o755, typeflag: tar.TypeReg, body: bin}}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "bin/busybox" {
			continue
		}
		entries = append(entries, tarEntry{name: applet, mode: 0o777, typeflag: tar.TypeSymlink, link: "/bin/busybox"})
	}
	for _, f := range []struct{ name, body string }{
		{"usr/sbin/groupadd", groupaddScript}, {"usr/sbin/useradd", useraddScript}, {"usr/bin/getent", getentScript},
	} {
		entries = append(entries, tarEntry{name: f.name, mode: 0o755, typeflag: tar.TypeReg, body: []byte(f.body)})
	}
	for _, f := range []struct{ name, body string }{
		{"etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"},
		{"etc/group", "root:x:0:\nnogroup:x:65534:\n"},
		{"etc/hosts", "127.0.0.1\tlocalhost\n"},
		{"etc/os-release", "NAME=\"conveyor busybox\"\nID=busybox\n"},
	} {
		entries = append(entries, tarEntry{name: f.name, mode: 0o644, typeflag: tar.TypeReg, body: []byte(f.body)})
	}
	for d := range dirs {
		mode := int64(0o755)
		if d == "tmp/" || d == "var/tmp/" {
			mode = 0o1777
		}
		entries = append(entries, tarEntry{name: d, mode: mode, typeflag: tar.TypeDir})
	}
	l, err := layer(entries)
	if err != nil {
		return nil, err
	}
	return image(l, v1.Config{
		Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Cmd: []string{"/bin/sh"},
	})
}

// pauseImage compiles the embedded pause program statically and wraps it in an image.
func (s *stack) pauseImage(ctx context.Context) (v1.Image, error) {
	dir := s.path("images", "pause")
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(dir, "main.go"), string(pauseSource), 0o644); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(dir, "go.mod"), "module pause\n\ngo 1.22\n", 0o644); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", "pause", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %v: %s", err, out)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "pause"))
	if err != nil {
		return nil, err
	}
	l, err := layer([]tarEntry{{name: "pause", mode: 0o755, typeflag: tar.TypeReg, body: bin}})
	if err != nil {
		return nil, err
	}
	return image(l, v1.Config{Entrypoint: []string{"/pause"}})
}
