package devstack

import (
	"archive/tar"
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// rootfsEntries lists the tree at root as layer entries, overlay replacing or adding
// files. Owners stay numeric, files sharing an inode become hard links to the first
// of them by name, and the tree's ephemeral parts (device nodes, logs, caches,
// package lists) are left out; their directories stay.
func rootfsEntries(root string, overlay []tarEntry) ([]tarEntry, error) {
	over := map[string]bool{}
	for _, e := range overlay {
		over[e.name] = true
	}
	type inode struct{ dev, ino uint64 }
	inodes := map[string]inode{}
	var entries []tarEntry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if skipSubtree(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if over[rel] || (!d.IsDir() && skipFile(rel)) {
			return nil
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no owner information", p)
		}
		e := tarEntry{name: rel, mode: tarMode(fi.Mode()), uid: int(st.Uid), gid: int(st.Gid)}
		switch {
		case fi.Mode().IsDir():
			e.name, e.typeflag = rel+"/", tar.TypeDir
		case fi.Mode()&fs.ModeSymlink != 0:
			e.typeflag = tar.TypeSymlink
			if e.link, err = os.Readlink(p); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			e.typeflag, e.file, e.size = tar.TypeReg, p, fi.Size()
			if st.Nlink > 1 {
				inodes[rel] = inode{uint64(st.Dev), st.Ino}
			}
		default:
			return nil // device nodes, fifos and sockets belong to the runtime
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	entries = append(entries, overlay...)
	sortEntries(entries)
	first := map[inode]string{}
	for i, e := range entries {
		in, ok := inodes[e.name]
		if !ok {
			continue
		}
		if f, seen := first[in]; seen {
			entries[i].typeflag, entries[i].link, entries[i].file, entries[i].size = tar.TypeLink, f, "", 0
		} else {
			first[in] = e.name
		}
	}
	return entries, nil
}

// skipSubtree says which directories' contents the image leaves to the runtime; the
// directory itself stays.
func skipSubtree(rel string) bool {
	for _, p := range []string{"dev/", "proc/", "sys/"} {
		if strings.HasPrefix(rel, p) {
			return true
		}
	}
	return false
}

// skipFile says which files are state of the machine that made the tree, not of the image.
func skipFile(rel string) bool {
	switch rel {
	case "etc/hostname", "etc/resolv.conf", "etc/machine-id", "var/cache/ldconfig/aux-cache":
		return true
	}
	for _, p := range []string{"tmp/", "var/tmp/", "run/", "var/log/", "var/cache/apt/", "var/lib/apt/lists/"} {
		if strings.HasPrefix(rel, p) {
			return true
		}
	}
	return strings.HasSuffix(rel, "-old") &&
		(strings.HasPrefix(rel, "var/lib/dpkg/") || strings.HasPrefix(rel, "var/cache/debconf/"))
}

// tarMode is a file's permission bits with setuid, setgid and sticky in tar's encoding.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// fileLayer writes entries to a tar file at path (through a temporary file) and
// returns it as a layer; the layer reads the file, so it must outlive the push.
func fileLayer(path string, entries []tarEntry) (v1.Layer, error) {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	err = writeTar(w, entries)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return nil, err
	}
	return tarball.LayerFromFile(path)
}
