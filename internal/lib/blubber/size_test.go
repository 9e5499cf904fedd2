package blubber

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wikimedia/conveyor/internal/lib/repofile"
)

// The files a build reads from a repository are refused, unread, over their limit.
func TestRepositoryFilesOverTheirLimitAreRefused(t *testing.T) {
	dir := t.TempDir()
	big := "version: v4\n#" + strings.Repeat("x", 1<<20) + "\n"
	for _, f := range []string{"blubber.yaml", ".dockerignore"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(big), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var tl *repofile.TooLargeError
	_, err := ParseFile(filepath.Join(dir, "blubber.yaml"))
	if !errors.As(err, &tl) || tl.Limit != repofile.BlubberConfig {
		t.Errorf("ParseFile of %d bytes: error %v; want a *repofile.TooLargeError for a Blubber config", len(big), err)
	}
	_, err = ReadDockerignore(dir)
	if !errors.As(err, &tl) || tl.Limit != repofile.Dockerignore || !strings.Contains(err.Error(), ".dockerignore is 1.0 MiB") {
		t.Errorf("ReadDockerignore of %d bytes: error %v; want a *repofile.TooLargeError for a .dockerignore", len(big), err)
	}
}
