package workflows_test

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// maxLines is how long a file of production code may grow before it must say, in
// a comment near its top starting "Long file:", why it is not split.
const maxLines = 450

// TestNoLongFilesWithoutAReason keeps files split by responsibility (STYLE.md: "no
// file grows past ~400 lines without a reason you could defend").
func TestNoLongFilesWithoutAReason(t *testing.T) {
	root := ".."
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", ".local", "testdata", "tools", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		lines, reason := 0, false
		for sc := bufio.NewScanner(f); sc.Scan(); lines++ {
			if lines < 20 && strings.HasPrefix(sc.Text(), "// Long file:") {
				reason = true
			}
		}
		if lines > maxLines && !reason {
			rel, _ := filepath.Rel(root, path)
			t.Errorf("%s has %d lines: split it by responsibility, or say why not in a comment starting \"// Long file:\" in its first 20 lines", rel, lines)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
