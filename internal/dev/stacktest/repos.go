package stacktest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wikimedia/conveyor/internal/dev/gittest"
)

// HelloOnBase makes a git repository of examples/hello, on the branch main, whose
// Blubber config builds on base instead of the local busybox image.
func HelloOnBase(t testing.TB, base string) string {
	t.Helper()
	root, err := RepoDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(root, "examples", "hello"))); err != nil {
		t.Fatalf("copying the example: %v", err)
	}
	bf := filepath.Join(dir, ".pipeline", "blubber.yaml")
	b, err := os.ReadFile(bf)
	if err != nil {
		t.Fatal(err)
	}
	const local = "base: localhost:5000/conveyor/busybox:latest"
	if !strings.Contains(string(b), local) {
		t.Fatalf("%s does not build on %q: the test cannot change its base", bf, local)
	}
	if err := os.WriteFile(bf, []byte(strings.Replace(string(b), local, "base: "+base, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	gittest.Commit(t, dir, "on "+base)
	return dir
}
