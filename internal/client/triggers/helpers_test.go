package triggers

import (
	"os"
	"path/filepath"
	"testing"
)

// gerritTestdata is the path of a sample of internal/lib/gerrit's testdata.
func gerritTestdata(elem ...string) string {
	return filepath.Join(append([]string{"..", "..", "lib", "gerrit", "testdata"}, elem...)...)
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
