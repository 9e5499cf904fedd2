package main

import (
	"bytes"
	"strings"
	"testing"
)

// runWorker runs conveyor-worker's command line with args and returns its error.
func runWorker(t *testing.T, args ...string) (string, error) {
	t.Helper()
	t.Setenv("TEMPORAL_ADDRESS", "")
	t.Setenv("CONVEYOR_CONFIG", "")
	app := newApp()
	var out bytes.Buffer
	app.Writer, app.ErrWriter = &out, &out
	err := app.Run(append([]string{"conveyor-worker"}, args...))
	return out.String(), err
}

func TestWorkerFlagErrorsSayWhatIsValid(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--pools", "build,biuld"}, `--pools: unknown pool "biuld": valid pools are build, deploy, migrate`},
		{[]string{"--pools", "build", "--pools", "migrat"}, `unknown pool "migrat"`},
		{[]string{"--log-format", "xml"}, `--log-format "xml": want text or json`},
		{[]string{"--log-level", "loud"}, `--log-level "loud": want debug, info, warn or error`},
		{[]string{"extra"}, `unexpected arguments ["extra"]`},
		{[]string{"--config", "/nonexistent/conveyor.yaml"}, "reading configuration"},
		{[]string{"--build-id", "b1"}, "--build-id is set but --deployment is not"},
		{[]string{"--deployment", "conveyor.prod"}, `--deployment "conveyor.prod": a deployment name may not contain '.'`},
	} {
		_, err := runWorker(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("conveyor-worker %s: error %v, want one containing %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
}

func TestWorkerHelpListsPoolsAndTheirDefault(t *testing.T) {
	out, err := runWorker(t, "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--pools", `(default: "build", "deploy", "migrate")`, "--log-format", "--address", "TEMPORAL_ADDRESS", "Example", "--health-listen", "CONVEYOR_HEALTH_LISTEN", "/readyz", "--shutdown-timeout 5m"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help does not mention %q:\n%s", want, out)
		}
	}
}
