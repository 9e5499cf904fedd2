package blubber

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestConformance checks the real Wikimedia configs of the shared corpus: every
// v4 file lints clean, renders a Dockerfile for each variant and compiles to
// LLB; the v3 file is refused with the unsupported-version error.
var v3 = regexp.MustCompile(`(?m)^version: v3\s*$`)

func TestConformance(t *testing.T) {
	dir := conformanceDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no *.yaml in %s (err %v)", dir, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse(b)
			if v3.Match(b) {
				var ve *VersionError
				if !errors.As(err, &ve) || !errors.Is(err, ErrUnsupportedVersion) {
					t.Fatalf("want a *VersionError, got %v", err)
				}
				if !strings.HasPrefix(err.Error(), `config version "v3" is unsupported`) {
					t.Errorf("message %q does not start with the unsupported-version error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("lint: %v", err)
			}
			if len(c.Variants) == 0 {
				t.Fatal("no variants")
			}
			for _, v := range c.VariantNames() {
				df, err := c.Dockerfile(v)
				if err != nil {
					t.Fatalf("Dockerfile(%s): %v", v, err)
				}
				if !strings.Contains(df, " AS "+v+"\n") {
					t.Errorf("Dockerfile(%s) has no stage for the variant:\n%s", v, df)
				}
				comp, err := c.Compile(context.Background(), v)
				if err != nil {
					t.Fatalf("Compile(%s): %v", v, err)
				}
				def, err := comp.Definition(context.Background())
				if err != nil {
					t.Fatalf("Definition(%s): %v", v, err)
				}
				if len(def.Def) == 0 {
					t.Errorf("Definition(%s) is empty", v)
				}
			}
		})
	}
}
