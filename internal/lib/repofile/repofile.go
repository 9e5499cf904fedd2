// Package repofile reads the files conveyor takes from a repository's checkout (a
// Blubber config, the pipeline settings, a .dockerignore, a chart) with a bound on
// their size, so that a patchset cannot make a worker read gigabytes into memory.
//
// Every read names a Limit: what the file is and how large it may be. A file over
// its limit is refused before it is read, with a *TooLargeError that names the
// file, its size and the limit; the activities report it as a non-retryable
// invalid-configuration failure, since retrying reads the same file again.
package repofile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Limit is what a kind of file is, for the error, and how many bytes it may hold.
type Limit struct {
	// What names the kind of file in an error: "a Blubber config".
	What string
	// Max is the largest size, in bytes, that is read.
	Max int64
}

// The limits of the files conveyor reads from repositories. Each is far above what
// a real file of its kind holds (conveyor's own are a few kilobytes) and far below
// what would hurt a worker.
var (
	// BlubberConfig is the Blubber config (.pipeline/blubber.yaml or the file
	// pipeline.blubber names).
	BlubberConfig = Limit{What: "a Blubber config", Max: 1 << 20}
	// PipelineSettings is .pipeline/config.yaml.
	PipelineSettings = Limit{What: "the pipeline settings", Max: 1 << 20}
	// Dockerignore is the build context's .dockerignore.
	Dockerignore = Limit{What: "a .dockerignore", Max: 1 << 20}
	// ChartFile is any one file of a repository's chart directory.
	ChartFile = Limit{What: "a file of a chart", Max: 1 << 20}
	// ChartTotal is all the files of a repository's chart directory together.
	ChartTotal = Limit{What: "a chart directory (all its files together)", Max: 10 << 20}
	// ConfigRegistryFile is a file of the configuration registry that a
	// promotion reads (its plan, its Helm values).
	ConfigRegistryFile = Limit{What: "a file of the configuration registry", Max: 1 << 20}
)

// TooLargeError is a file over its limit.
type TooLargeError struct {
	// File is the file as the caller named it (a path relative to the checkout
	// when the caller has one).
	File  string
	Size  int64
	Limit Limit
}

func (e *TooLargeError) Error() string { return e.File + " " + e.Reason() }

// Reason is the error without the file's name, for messages that name it already.
func (e *TooLargeError) Reason() string {
	return fmt.Sprintf("is %s, over the limit of %s for %s: conveyor does not read it; make it smaller (split it, or keep generated data out of the repository)",
		Size(e.Size), Size(e.Limit.Max), e.Limit.What)
}

// Size writes n bytes for people: "1.5 MiB (1572864 bytes)".
func Size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB (%d bytes)", float64(n)/(1<<20), n)
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB (%d bytes)", float64(n)/(1<<10), n)
	}
	return fmt.Sprintf("%d bytes", n)
}

// Check returns a *TooLargeError when size is over lim, nil otherwise.
func Check(file string, size int64, lim Limit) error {
	if size > lim.Max {
		return &TooLargeError{File: file, Size: size, Limit: lim}
	}
	return nil
}

// ReadFile reads the file at path, refusing it when it holds more than lim.Max
// bytes or is not a regular file. Errors of a missing file match fs.ErrNotExist.
func ReadFile(path string, lim Limit) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return read(f, path, lim)
}

// ReadFileIn reads name in root like ReadFile: the os.Root keeps a symbolic link
// from leading the read outside the checkout. Errors name the file as name.
func ReadFileIn(root *os.Root, name string, lim Limit) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return read(f, name, lim)
}

func read(f *os.File, name string, lim Limit) ([]byte, error) {
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	// A FIFO or a device (a link to /dev/zero) has no size to check, and a FIFO
	// would block the read forever.
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s): conveyor reads only plain files from a repository", name, info.Mode().Type())
	}
	if err := Check(name, info.Size(), lim); err != nil {
		return nil, err
	}
	// The file may grow between the stat and the read: read one byte more than
	// the limit to notice.
	b, err := io.ReadAll(io.LimitReader(f, lim.Max+1))
	if err != nil {
		return nil, err
	}
	if err := Check(name, int64(len(b)), lim); err != nil {
		return nil, err
	}
	return b, nil
}

// maxDepth bounds the directories CheckTree descends, links followed: a link
// to a parent would otherwise be walked forever.
const maxDepth = 32

// CheckTree checks the regular files under dir, symbolic links followed as Helm's
// loader follows them: each must fit file and all together total. Errors name
// files relative to dir, prefixed by label (the directory as the user knows it,
// e.g. "charts/hello").
func CheckTree(dir, label string, file, total Limit) error {
	var sum int64
	var walk func(dir, name string, depth int) error
	walk = func(dir, name string, depth int) error {
		if depth > maxDepth {
			return fmt.Errorf("%s is nested more than %d directories deep (a symbolic link to a parent?)", name, maxDepth)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			p, n := filepath.Join(dir, e.Name()), name+"/"+e.Name()
			info, err := os.Stat(p)
			if err != nil {
				return err
			}
			if info.IsDir() {
				if err := walk(p, n, depth+1); err != nil {
					return err
				}
				continue
			}
			if err := Check(n, info.Size(), file); err != nil {
				return err
			}
			sum += info.Size()
		}
		return nil
	}
	err := walk(dir, filepath.ToSlash(label), 0)
	if err == nil {
		err = Check(label, sum, total)
	}
	var tooLarge *TooLargeError
	if err != nil && !errors.As(err, &tooLarge) {
		return fmt.Errorf("checking the size of %s: %w", label, err)
	}
	return err
}
