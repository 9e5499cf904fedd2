package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/wikimedia/conveyor/internal/dev/devstack"
)

// runConveyor runs the command line with args and returns what it printed and its error.
func runConveyor(t *testing.T, args ...string) (string, error) {
	t.Helper()
	for _, v := range []string{"TEMPORAL_ADDRESS", "CONVEYOR_CONFIG", "CONVEYOR_STATE_DIR"} {
		t.Setenv(v, "")
	}
	app := newApp()
	var out bytes.Buffer
	app.Writer, app.ErrWriter = &out, &out
	err := app.Run(append([]string{"conveyor"}, args...))
	return out.String(), err
}

// cliError is a command line and a part of the error it must end with.
type cliError struct {
	args []string
	want string
}

// wantCLIErrors runs each command line and fails t unless it ends with an error
// containing its want.
func wantCLIErrors(t *testing.T, cases []cliError) {
	t.Helper()
	for _, tc := range cases {
		_, err := runConveyor(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("conveyor %s: error %v, want one containing %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
}

// wantLines fails t for each of wants that out, the output of what, lacks.
func wantLines(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("%s lacks %q:\n%s", what, want, out)
		}
	}
}

func TestCommandLineErrorsSayWhatIsValid(t *testing.T) {
	wantCLIErrors(t, []cliError{
		{[]string{"ping", "--pools", "build,biuld"}, `--pools: unknown pool "biuld": valid pools are build, deploy, migrate`},
		{[]string{"ping", "extra"}, `unexpected arguments ["extra"]`},
		{[]string{"--config", "/nonexistent/conveyor.yaml", "ping"}, "reading configuration"},
		{[]string{"ping", "--address", "127.0.0.1:1", "--timeout", "5s"}, "cannot reach Temporal at 127.0.0.1:1: is the stack up? run `make up`"},
		{[]string{"dev", "logs"}, "usage: conveyor dev logs COMPONENT [-f]: want one component"},
		{[]string{"dev", "logs", "temporal", "registry"}, "want one component"},
		// -f after the component is the follow flag, not a second component.
		{[]string{"dev", "logs", "temporal", "-f", "registry"}, "want one component (a NAME from `conveyor dev status`), got 2"},
	})
}

func TestVersion(t *testing.T) {
	out, err := runConveyor(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "conveyor dev (commit ") || !strings.Contains(out, "go1.") {
		t.Errorf("version printed %q", out)
	}
}

// TestHelpTeaches checks that every command explains itself with an example and
// that every flag says what it is for.
func TestHelpTeaches(t *testing.T) {
	var walk func(path string, cmds []*cli.Command)
	walk = func(path string, cmds []*cli.Command) {
		for _, c := range cmds {
			name := path + " " + c.Name
			if c.Usage == "" {
				t.Errorf("%s has no Usage", name)
			}
			if !strings.Contains(c.Description, "Example") {
				t.Errorf("%s's Description has no example", name)
			}
			for _, f := range c.Flags {
				if d, ok := f.(cli.DocGenerationFlag); ok && d.GetUsage() == "" {
					t.Errorf("%s flag %s has no Usage", name, f.Names()[0])
				}
			}
			walk(name, c.Subcommands)
		}
	}
	walk("conveyor", newApp().Commands)

	out, err := runConveyor(t, "ping", "--help")
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, "ping --help", out, "Example", `(default: "build", "deploy", "migrate")`, "--timeout", "(default: 1m0s)", "TEMPORAL_ADDRESS")
}

func TestStatusTableAndExitCode(t *testing.T) {
	app := newApp()
	var out bytes.Buffer
	app.Writer = &out
	c := cli.NewContext(app, nil, nil)

	err := printStatus(c, []devstack.ComponentStatus{
		{Name: "temporal", Address: "127.0.0.1:7233", PID: 42, Healthy: true, Log: ".local/temporal/log"},
		{Name: "registry", Address: "localhost:5000", Healthy: false, Detail: "not running", Log: ".local/registry/log"},
	})
	var ec cli.ExitCoder
	if !errors.As(err, &ec) || ec.ExitCode() != 1 || !strings.Contains(err.Error(), "unhealthy: registry") {
		t.Errorf("printStatus returned %v, want exit code 1 naming registry", err)
	}
	lines := strings.Split(out.String(), "\n")
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "NAME ADDRESS PID STATE LOG" {
		t.Errorf("header = %q", lines[0])
	}
	if f := strings.Fields(lines[1]); strings.Join(f, " ") != "temporal 127.0.0.1:7233 42 healthy .local/temporal/log" {
		t.Errorf("row = %q", lines[1])
	}
	if f := strings.Fields(lines[2]); strings.Join(f, " ") != "registry localhost:5000 - unhealthy .local/registry/log" {
		t.Errorf("row = %q", lines[2])
	}
	if !strings.Contains(out.String(), "registry: not running") {
		t.Errorf("the detail of the unhealthy component is missing:\n%s", out.String())
	}

	out.Reset()
	if err := printStatus(c, []devstack.ComponentStatus{{Name: "temporal", Healthy: true}}); err != nil {
		t.Errorf("printStatus of a healthy stack returned %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds or 5s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestFollowFilePrintsAppendedTruncatedAndReplacedContent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(path, []byte("one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error)
	go func() { done <- followFile(ctx, &out, path, 5*time.Millisecond) }()

	waitFor(t, "the existing content", func() bool { return out.String() == "one\n" })
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("two\n")
	f.Close()
	waitFor(t, "the appended line", func() bool { return out.String() == "one\ntwo\n" })

	if err := os.WriteFile(path, []byte("3\n"), 0o644); err != nil { // truncates
		t.Fatal(err)
	}
	waitFor(t, "the truncated file's content", func() bool { return strings.HasSuffix(out.String(), "two\n3\n") })

	tmp := path + ".new"
	os.WriteFile(tmp, []byte("fresh\n"), 0o644)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replaced file's content", func() bool { return strings.HasSuffix(out.String(), "3\nfresh\n") })

	cancel()
	if err := <-done; err != nil {
		t.Errorf("followFile returned %v after cancellation", err)
	}
}
