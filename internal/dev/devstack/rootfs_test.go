package devstack

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// fakeRootfs makes a small tree with what a debootstrap tree holds: directories,
// files with several modes, a symlink, hard links, a setuid file, a fifo standing in
// for a device node, and files that belong to the machine rather than the image.
// reverse creates the entries in the opposite order, with other timestamps.
func fakeRootfs(t *testing.T, reverse bool) string {
	t.Helper()
	root := t.TempDir()
	type file struct {
		name string
		mode os.FileMode
		body string
	}
	files := []file{
		{"etc/os-release", 0o644, "ID=debian\n"},
		{"etc/apt/sources.list", 0o644, "deb http://mirror.invalid/debian bookworm main\n"},
		{"etc/hostname", 0o644, "builder\n"},
		{"usr/bin/perl", 0o755, "#!perl\n"},
		{"usr/bin/su", 0o755 | os.ModeSetuid, "su\n"},
		{"var/log/dpkg.log", 0o644, "installed\n"},
		{"var/lib/dpkg/status", 0o644, "Package: base-files\n"},
		{"var/lib/dpkg/status-old", 0o644, "Package: old\n"},
	}
	if reverse {
		slices.Reverse(files)
	}
	stamp := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	if reverse {
		stamp = stamp.Add(1000 * time.Hour)
	}
	for _, f := range files {
		p := filepath.Join(root, f.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil { // not subject to the umask
			t.Fatal(err)
		}
		if err := os.Chtimes(p, stamp, stamp); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"tmp", "dev"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(root, "usr/bin/perl"), filepath.Join(root, "usr/bin/perl5.36.0")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "dev/initctl"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "etc/fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	return root
}

func packDigest(t *testing.T, root string) (string, []*tar.Header) {
	t.Helper()
	overlay := []tarEntry{{name: "etc/apt/sources.list", mode: 0o644, typeflag: tar.TypeReg, body: []byte("deb overlay\n")}}
	entries, err := rootfsEntries(root, overlay)
	if err != nil {
		t.Fatal(err)
	}
	l, err := fileLayer(filepath.Join(t.TempDir(), "layer.tar"), entries)
	if err != nil {
		t.Fatal(err)
	}
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var hs []*tar.Header
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	return d.String(), hs
}

func TestRootfsLayerIsReproducible(t *testing.T) {
	root := fakeRootfs(t, false)
	first, headers := packDigest(t, root)

	again, _ := packDigest(t, root)
	if again != first {
		t.Errorf("packing the same tree twice gave %s, then %s", first, again)
	}
	later := time.Now()
	if err := os.Chtimes(filepath.Join(root, "etc/os-release"), later, later); err != nil {
		t.Fatal(err)
	}
	if touched, _ := packDigest(t, root); touched != first {
		t.Errorf("a new mtime changed the digest: %s, then %s", first, touched)
	}
	if other, _ := packDigest(t, fakeRootfs(t, true)); other != first {
		t.Errorf("the same tree made in another order gave %s, not %s", other, first)
	}

	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(root, "usr/bin/perl"), &st); err != nil {
		t.Fatal(err)
	}
	byName := map[string]*tar.Header{}
	var names []string
	for _, h := range headers {
		byName[h.Name] = h
		names = append(names, h.Name)
		if !h.ModTime.Equal(epoch) || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: mtime %v, owner names %q/%q; want epoch and numeric owners only", h.Name, h.ModTime, h.Uname, h.Gname)
		}
	}
	want := []string{"bin", "dev/", "etc/", "etc/apt/", "etc/apt/sources.list", "etc/os-release", "tmp/",
		"usr/", "usr/bin/", "usr/bin/perl", "usr/bin/perl5.36.0", "usr/bin/su",
		"var/", "var/lib/", "var/lib/dpkg/", "var/lib/dpkg/status", "var/log/"}
	if !slices.Equal(names, want) {
		t.Errorf("entries:\n got %q\nwant %q", names, want)
	}
	checks := []struct {
		name     string
		typeflag byte
		link     string
		mode     int64
	}{
		{"bin", tar.TypeSymlink, "usr/bin", 0o777},
		{"tmp/", tar.TypeDir, "", 0o1777},
		{"usr/bin/perl", tar.TypeReg, "", 0o755},
		{"usr/bin/perl5.36.0", tar.TypeLink, "usr/bin/perl", 0o755},
		{"usr/bin/su", tar.TypeReg, "", 0o4755},
		{"etc/apt/sources.list", tar.TypeReg, "", 0o644},
	}
	for _, c := range checks {
		h := byName[c.name]
		if h == nil {
			continue // reported above
		}
		if h.Typeflag != c.typeflag || h.Linkname != c.link || h.Mode != c.mode {
			t.Errorf("%s: type %c link %q mode %o; want type %c link %q mode %o", c.name, h.Typeflag, h.Linkname, h.Mode, c.typeflag, c.link, c.mode)
		}
	}
	if h := byName["usr/bin/perl"]; h != nil && (h.Uid != int(st.Uid) || h.Gid != int(st.Gid)) {
		t.Errorf("usr/bin/perl owned by %d:%d in the layer, %d:%d on disk", h.Uid, h.Gid, st.Uid, st.Gid)
	}
	if h := byName["etc/apt/sources.list"]; h != nil && h.Size != int64(len("deb overlay\n")) {
		t.Errorf("etc/apt/sources.list is %d bytes: the overlay did not replace the tree's file", h.Size)
	}
}

func TestLocalCAs(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"proxy.crt": "A", "notes.txt": "not a certificate", "corp/root.crt": "B"} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := localCAs(dir)
	if err != nil {
		t.Fatal(err)
	}
	first := entriesDigest(entries)
	rel := dir[1:]
	var names []string
	for _, e := range entries {
		names = append(names, e.name)
	}
	want := []string{rel + "/", rel + "/corp/", rel + "/corp/root.crt", rel + "/proxy.crt"}
	if !slices.Equal(names, want) {
		t.Errorf("entries %q, want %q", names, want)
	}
	if again, _ := localCAs(dir); entriesDigest(again) != first {
		t.Errorf("the same CAs gave digests %s and %s", first, entriesDigest(again))
	}
	if err := os.WriteFile(filepath.Join(dir, "proxy.crt"), []byte("C"), 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, _ := localCAs(dir); entriesDigest(changed) == first {
		t.Errorf("a changed certificate kept the digest %s", first)
	}
	none, err := localCAs(filepath.Join(dir, "missing"))
	if err != nil || len(none) != 1 {
		t.Errorf("a missing directory gave %d entries, error %v; want only the directory entry", len(none), err)
	}
}
