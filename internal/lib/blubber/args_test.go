package blubber

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// TestBuildArguments: `arguments` become ARG with their defaults, merged by
// name; a given value overrides the default in the environment of the steps
// that run, and the image does not keep them.
func TestBuildArguments(t *testing.T) {
	c := mustParse(t, `version: v4
base: debian:bookworm
arguments: { TARGET: all, JOBS: "1" }
variants:
  make:
    arguments: { JOBS: "4" }
    builder: { command: "make -j$JOBS $TARGET" }
`)
	df, err := c.Dockerfile("make")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(df, "ARG JOBS=\"4\"\nARG TARGET=\"all\"\n") {
		t.Errorf("Dockerfile lacks the ARGs, sorted, with the variant's default winning:\n%s", df)
	}
	comp, err := c.Compile(context.Background(), "make", WithBuildArgs(map[string]string{"TARGET": "install"}))
	if err != nil {
		t.Fatal(err)
	}
	g := marshalGraph(t, comp.State)
	var env []string
	for _, op := range g.ops {
		if e := op.GetExec(); e != nil && strings.Contains(strings.Join(e.Meta.Args, " "), "make -j") {
			env = e.Meta.Env
		}
	}
	if !slices.Contains(env, "TARGET=install") || !slices.Contains(env, "JOBS=4") {
		t.Errorf("the builder's environment %q lacks TARGET=install and JOBS=4", env)
	}
	for _, kv := range comp.Image.Config.Env {
		if strings.HasPrefix(kv, "TARGET=") || strings.HasPrefix(kv, "JOBS=") {
			t.Errorf("the image keeps the build argument %s", kv)
		}
	}
	_, err = c.Compile(context.Background(), "make", WithBuildArgs(map[string]string{"NOPE": "1"}))
	want := "unknown build argument NOPE: variant make declares only JOBS, TARGET; declare it under `arguments` in the Blubber config, or do not pass it"
	if err == nil || err.Error() != want {
		t.Errorf("unknown argument: %v, want %q", err, want)
	}
}
