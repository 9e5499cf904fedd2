package blubber

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// conformanceDir finds shared/conformance/blubber beside the repository root:
// the repository is <root>, the corpus <root>/../shared/conformance/blubber.
func conformanceDir(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	var looked []string
	for dir := wd; ; dir = filepath.Dir(dir) {
		candidate := filepath.Join(filepath.Dir(dir), "shared", "conformance", "blubber")
		looked = append(looked, candidate)
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(candidate); err == nil {
				return candidate
			}
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	t.Fatalf("the Blubber conformance corpus was not found: it lives in shared/conformance/blubber beside the repository root "+
		"(the checkout of shared/ that the workplace lays next to the repository); looked in %q", looked)
	return ""
}

// mustParse parses a configuration that the test expects to be valid.
func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	c, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

// fieldErrors returns the messages of a Parse error, failing the test if err is
// not an Errors list.
func fieldErrors(t *testing.T, err error) []string {
	t.Helper()
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want Errors, got %T: %v", err, err)
	}
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.Error()
	}
	return out
}
