package repofile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func write(t *testing.T, path string, size int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadFileRefusesAFileOverItsLimit(t *testing.T) {
	dir := t.TempDir()
	lim := Limit{What: "a test file", Max: 100}
	write(t, filepath.Join(dir, "ok"), 100)
	write(t, filepath.Join(dir, "big"), 101)

	if b, err := ReadFile(filepath.Join(dir, "ok"), lim); err != nil || len(b) != 100 {
		t.Fatalf("ReadFile(ok) = %d bytes, %v; want 100 bytes", len(b), err)
	}
	_, err := ReadFile(filepath.Join(dir, "big"), lim)
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Size != 101 || tl.Limit != lim {
		t.Fatalf("ReadFile(big) error = %v; want a *TooLargeError of 101 bytes", err)
	}
	for _, want := range []string{"big is 101 bytes", "limit of 100 bytes for a test file", "make it smaller"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if _, err := ReadFile(filepath.Join(dir, "missing"), lim); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadFile(missing) error = %v; want fs.ErrNotExist", err)
	}
}

func TestReadFileInRefusesWhatIsNotAPlainFile(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	// Opening a FIFO for reading blocks until a writer comes: open it with one.
	w, err := os.OpenFile(filepath.Join(dir, "fifo"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	_, err = ReadFileIn(root, "fifo", PipelineSettings)
	if err == nil || !strings.Contains(err.Error(), "fifo is not a regular file") {
		t.Fatalf("ReadFileIn(fifo) error = %v; want it refused as not a regular file", err)
	}
}

func TestCheckTreeBoundsEachFileAndTheTotal(t *testing.T) {
	file := Limit{What: "a file", Max: 100}
	total := Limit{What: "the chart", Max: 250}
	dir := t.TempDir()
	write(t, filepath.Join(dir, "Chart.yaml"), 100)
	write(t, filepath.Join(dir, "templates", "a.yaml"), 100)
	if err := CheckTree(dir, "chart", file, total); err != nil {
		t.Fatalf("CheckTree of 200 bytes: %v", err)
	}

	write(t, filepath.Join(dir, "templates", "b.yaml"), 60)
	err := CheckTree(dir, "chart", file, total)
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.File != "chart" || tl.Size != 260 {
		t.Fatalf("CheckTree of 260 bytes: error %v; want the chart's total refused", err)
	}

	write(t, filepath.Join(dir, "templates", "b.yaml"), 101)
	err = CheckTree(dir, "chart", file, Limit{What: "the chart", Max: 1000})
	if !errors.As(err, &tl) || tl.File != "chart/templates/b.yaml" {
		t.Fatalf("CheckTree with a 101-byte file: error %v; want chart/templates/b.yaml refused", err)
	}
}

func TestCheckTreeFollowsLinksButNotForever(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "sub", "big"), 200)
	if err := os.Symlink("sub", filepath.Join(dir, "again")); err != nil {
		t.Fatal(err)
	}
	err := CheckTree(dir, "c", Limit{Max: 1000}, Limit{What: "the chart", Max: 300})
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Size != 400 {
		t.Fatalf("CheckTree with a linked directory: error %v; want 400 bytes counted", err)
	}

	if err := os.Symlink("..", filepath.Join(dir, "sub", "up")); err != nil {
		t.Fatal(err)
	}
	err = CheckTree(dir, "c", Limit{Max: 1000}, Limit{Max: 1 << 40})
	if err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Fatalf("CheckTree with a link loop: error %v; want it refused as too deep", err)
	}
}
