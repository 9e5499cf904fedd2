package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestBlubberBuildArgs: --build-arg is read before and after FILE VARIANT,
// and a name the config does not declare is refused before anything connects
// to BuildKit, naming the argument and the declared ones.
func TestBlubberBuildArgs(t *testing.T) {
	file := filepath.Join(t.TempDir(), "blubber.yaml")
	cfg := "version: v4\nbase: debian:bookworm\nvariants:\n  make:\n    arguments: { MAKE_TARGET: foo, JOBS: \"2\" }\n    builder: { command: \"make -j$JOBS $MAKE_TARGET\" }\n"
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	wantCLIErrors(t, []cliError{
		{[]string{"blubber", "build", file, "make", "--build-arg", "NOPE=1"},
			"--build-arg: unknown build argument NOPE: variant make declares only JOBS, MAKE_TARGET; declare it under `arguments` in the Blubber config, or do not pass it"},
		// Values keep their commas, before FILE VARIANT and after.
		{[]string{"blubber", "build", "--build-arg", "MAKE_TARGET=a,b", "--build-arg", "NOPE=1", file, "make"}, "unknown build argument NOPE: "},
		{[]string{"blubber", "build", file, "make", "--build-arg=MAKE_TARGET=a,b", "--build-arg", "NOPE=1"}, "unknown build argument NOPE: "},
		{[]string{"blubber", "build", file, "make", "--build-arg", "NOEQUALS"}, `--build-arg "NOEQUALS": want NAME=VALUE`},
		{[]string{"blubber", "build", file, "make", "--build-arg"}, "--build-arg needs a value"},
	})
}
