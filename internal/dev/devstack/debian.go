package devstack

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// DebianImage is a one-layer image of Debian 12 (bookworm, debootstrap's minbase
// variant) that the project builds itself: the base of the realistic sample services,
// whose builds install Debian packages with apt. It is an optional component:
// `conveyor dev up --with debian`.
const DebianImage = registryAddr + "/conveyor/debian:bookworm"

const debianSuite = "bookworm"

// debianMirrorEnv names the variable that replaces debootstrap's default mirror.
const debianMirrorEnv = "CONVEYOR_DEBIAN_MIRROR"

// debianComponent runs debootstrap once into the state directory, then packs the tree
// into a reproducible layer and pushes the image. It skips all of that when the
// registry has the image with the same additions to the tree (debianExtras), unless
// Options.Rebuild asks for it again.
func debianComponent() component {
	return component{
		name:     "debian",
		optional: true,
		address:  func(*stack) string { return DebianImage },
		timeout:  30 * time.Second,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			return nil, s.debianImage(ctx)
		},
		ready: func(ctx context.Context, s *stack) error { return imagePresent(ctx, DebianImage) },
	}
}

func imagePresent(ctx context.Context, ref string) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return err
	}
	if _, err := remote.Head(r, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("%s: %w", ref, err)
	}
	return nil
}

// localCAsDir holds the certificate authorities a machine adds to Debian's trust store.
const localCAsDir = "/usr/local/share/ca-certificates"

// extrasLabel is the image label with the digest of the files the project adds to
// debootstrap's tree (debianExtras), so that a change to them packs the image again.
const extrasLabel = "org.wikimedia.conveyor.extras"

func (s *stack) debianImage(ctx context.Context) error {
	extras, err := debianExtras()
	if err != nil {
		return err
	}
	extrasDigest := entriesDigest(extras)
	if !s.rebuild {
		switch label, err := imageLabel(ctx, DebianImage, extrasLabel); {
		case err == nil && label == extrasDigest:
			s.say("debian: %s is in the registry (--rebuild makes it again)", DebianImage)
			return nil
		case err == nil:
			s.say("debian: the files added to the tree (APT settings, this machine's CAs in %s) changed: packing again", localCAsDir)
		}
	}
	root := s.path("debian", "rootfs")
	if _, err := os.Stat(root); s.rebuild || err != nil {
		if err := s.debootstrap(ctx, root); err != nil {
			return err
		}
	} else {
		s.say("debian: reusing the tree debootstrap made in %s", root)
	}
	start := time.Now()
	sources, err := debianSources(root)
	if err != nil {
		return err
	}
	entries, err := rootfsEntries(root, append(extras, sources))
	if err != nil {
		return fmt.Errorf("reading %s: %w", root, err)
	}
	var size int64
	for _, e := range entries {
		size += e.size
	}
	s.say("debian: packing %d entries (%d MB) into one layer", len(entries), size>>20)
	tarPath := s.path("debian", "layer.tar")
	defer os.Remove(tarPath)
	l, err := fileLayer(tarPath, entries)
	if err != nil {
		return fmt.Errorf("packing %s: %w", root, err)
	}
	img, err := image(l, v1.Config{
		Env:    []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Cmd:    []string{"bash"},
		Labels: map[string]string{extrasLabel: extrasDigest},
	})
	if err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	s.say("debian: packed in %.1fs, image %s", time.Since(start).Seconds(), d)
	return s.pushWithProgress(ctx, DebianImage, img)
}

// debootstrap makes a fresh minbase tree at root. It works in a sibling directory and
// renames it into place only when debootstrap succeeded, so root is always complete.
func (s *stack) debootstrap(ctx context.Context, root string) error {
	bin, err := exec.LookPath("debootstrap")
	if err != nil {
		bin = "/usr/sbin/debootstrap"
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("debootstrap is not installed: run `make deps` (or apt-get install debootstrap)")
		}
	}
	tmp := root + ".tmp"
	if err := removeTree(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(root), 0o755); err != nil {
		return err
	}
	args := []string{"--variant=minbase", "--arch=amd64", debianSuite, tmp}
	if m := os.Getenv(debianMirrorEnv); m != "" {
		args = append(args, m)
	}
	logf, err := os.OpenFile(s.logFile("debian"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening log: %w", err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "\n==== %s: %s %s\n", time.Now().UTC().Format(time.RFC3339), bin, strings.Join(args, " "))
	s.say("debian: debootstrap %s (minbase) into %s (a minute or more), log %s", debianSuite, tmp, s.logFile("debian"))
	start := time.Now()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive")
	// Cancelling stops debootstrap's chrooted children too, which hold its output open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting debootstrap: %w", err)
	}
	s.followDebootstrap(io.TeeReader(out, logf), start)
	err = cmd.Wait()
	// A killed debootstrap leaves proc and sys mounted in the tree.
	if uerr := unmountUnder(tmp); uerr != nil && err == nil {
		err = uerr
	}
	if err != nil {
		return fmt.Errorf("debootstrap %s: %w (see %s)", debianSuite, err, s.logFile("debian"))
	}
	if err := removeTree(root); err != nil {
		return err
	}
	if err := os.Rename(tmp, root); err != nil {
		return err
	}
	s.say("debian: debootstrap done in %s", time.Since(start).Round(time.Second))
	return nil
}

// followDebootstrap reads debootstrap's output until it ends and says when it starts
// a phase (retrieving, extracting, unpacking, configuring, ...), with a line every 20
// seconds in between. Phases that alternate per package are announced once.
func (s *stack) followDebootstrap(r io.Reader, start time.Time) {
	var mu sync.Mutex
	phase := "starting"
	seen := map[string]bool{}
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(20 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				mu.Lock()
				s.say("debian: debootstrap still %s (%s)", phase, time.Since(start).Round(time.Second))
				mu.Unlock()
			}
		}
	}()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "W:") || strings.HasPrefix(line, "E:") {
			s.say("debian: %s", line)
			continue
		}
		f := strings.Fields(strings.TrimPrefix(line, "I: "))
		if len(f) < 2 || !strings.HasSuffix(f[0], "ing") {
			continue
		}
		mu.Lock()
		if p := strings.ToLower(f[0]); !seen[p] {
			seen[p], phase = true, p
			s.say("debian: debootstrap %s (%s)", phase, time.Since(start).Round(time.Second))
		}
		mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r) // after an over-long line, so that debootstrap never blocks
}

// removeTree removes dir after detaching anything mounted below it.
func removeTree(dir string) error {
	if err := unmountUnder(dir); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// debianSources is the tree's APT sources with updates and security added, on the
// mirror debootstrap used.
func debianSources(root string) (tarEntry, error) {
	b, err := os.ReadFile(filepath.Join(root, "etc", "apt", "sources.list"))
	if err != nil {
		return tarEntry{}, err
	}
	var mirror string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "deb" {
			mirror = strings.TrimSuffix(f[1], "/")
			break
		}
	}
	if mirror == "" {
		return tarEntry{}, fmt.Errorf("%s/etc/apt/sources.list names no mirror", root)
	}
	sources := fmt.Sprintf("deb %s %s main\ndeb %s %s-updates main\n", mirror, debianSuite, mirror, debianSuite)
	// Debian's own mirrors serve security updates beside the archive, as .../debian-security.
	if strings.HasSuffix(mirror, "/debian") {
		sources += fmt.Sprintf("deb %s-security %s-security main\n", mirror, debianSuite)
	}
	return regular("etc/apt/sources.list", 0o644, []byte(sources)), nil
}

// debianExtras are the files the image has on top of debootstrap's tree: APT without
// recommends or kept downloads, dpkg without documentation, no service starts, and
// this machine's own CAs.
func debianExtras() ([]tarEntry, error) {
	cas, err := localCAs(localCAsDir)
	if err != nil {
		return nil, err
	}
	return append([]tarEntry{
		regular("etc/apt/apt.conf.d/90conveyor", 0o644, []byte(`APT::Install-Recommends "false";
APT::Install-Suggests "false";
APT::Keep-Downloaded-Packages "false";
Acquire::Languages "none";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
`)),
		regular("etc/dpkg/dpkg.cfg.d/90conveyor-nodoc", 0o644, []byte(`path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
`)),
		regular("usr/sbin/policy-rc.d", 0o755, []byte("#!/bin/sh\n# Images start no services while packages install.\nexit 101\n")),
	}, cas...), nil
}

func regular(name string, mode int64, body []byte) tarEntry {
	return tarEntry{name: name, mode: mode, typeflag: tar.TypeReg, body: body, size: int64(len(body))}
}

// entriesDigest is a digest of in-memory entries' names, modes, types and contents.
func entriesDigest(entries []tarEntry) string {
	sorted := slices.Clone(entries)
	sortEntries(sorted)
	h := sha256.New()
	for _, e := range sorted {
		fmt.Fprintf(h, "%s\x00%o\x00%c\x00%d\x00", e.name, e.mode, e.typeflag, len(e.body))
		h.Write(e.body)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// localCAs returns the certificate files under dir (update-ca-certificates reads
// *.crt there) as entries at the same place in the image. A machine behind a
// TLS-inspecting proxy trusts the proxy's CA this way; the image carries it so that
// builds reach https registries once they install Debian's ca-certificates (npm
// depends on it), whose setup adds these files to the trust store.
func localCAs(dir string) ([]tarEntry, error) {
	rel := strings.TrimPrefix(dir, "/")
	entries := []tarEntry{{name: rel + "/", mode: 0o755, typeflag: tar.TypeDir}}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == dir {
			return filepath.SkipDir
		}
		if err != nil || p == dir {
			return err
		}
		name := rel + "/" + filepath.ToSlash(strings.TrimPrefix(p, dir+"/"))
		if d.IsDir() {
			entries = append(entries, tarEntry{name: name + "/", mode: 0o755, typeflag: tar.TypeDir})
			return nil
		}
		if !strings.HasSuffix(p, ".crt") {
			return nil
		}
		b, err := os.ReadFile(p) // follows a symbolic link to the certificate
		if err != nil {
			return err
		}
		entries = append(entries, regular(name, 0o644, b))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading this machine's CAs in %s: %w", dir, err)
	}
	return entries, nil
}

// imageLabel returns a label of the image ref in the registry.
func imageLabel(ctx context.Context, ref, label string) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", err
	}
	img, err := remote.Image(r, remote.WithContext(ctx))
	if err != nil {
		return "", err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", err
	}
	return cf.Config.Labels[label], nil
}

// pushWithProgress pushes img as ref with the stack's credentials, saying how far it got.
func (s *stack) pushWithProgress(ctx context.Context, ref string, img v1.Image) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return err
	}
	start := time.Now()
	updates := make(chan v1.Update, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		last, said := time.Time{}, int64(-1)
		for u := range updates {
			if u.Total > 0 && u.Complete != said && (time.Since(last) > 5*time.Second || u.Complete == u.Total) {
				s.say("debian: pushing %s: %d of %d MB", ref, u.Complete>>20, u.Total>>20)
				last, said = time.Now(), u.Complete
			}
		}
	}()
	auth := authn.FromConfig(authn.AuthConfig{Username: registryUser, Password: s.secret("registry-password")})
	if err := remote.Write(r, img, remote.WithContext(ctx), remote.WithAuth(auth), remote.WithProgress(updates)); err != nil {
		return fmt.Errorf("pushing %s: %w", ref, err)
	}
	<-done
	s.say("debian: pushed %s in %.1fs", ref, time.Since(start).Seconds())
	return nil
}
