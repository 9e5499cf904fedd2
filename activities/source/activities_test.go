package source_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/source"
	"github.com/wikimedia/conveyor/internal/dev/gittest"
	"github.com/wikimedia/conveyor/internal/lib/workspace"
)

// helloRepo is a git repository holding examples/hello, with the commit also
// under a Gerrit change ref, as Gerrit keeps patch sets.
func helloRepo(t *testing.T) (dir, commit string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "hello")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("..", "..", "examples", "hello"))); err != nil {
		t.Fatal(err)
	}
	gittest.Git(t, dir, "init", "--quiet", "--initial-branch=main")
	gittest.Git(t, dir, "add", ".")
	gittest.Git(t, dir, "commit", "--quiet", "-m", "hello")
	commit = gittest.Git(t, dir, "rev-parse", "HEAD")
	gittest.Git(t, dir, "update-ref", "refs/changes/34/1234/2", commit)
	return dir, commit
}

func prepare(t *testing.T, a *source.Activities, in contract.PrepareSourceInput) (contract.PrepareSourceOutput, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	v, err := env.ExecuteActivity(contract.PrepareSource.Name, in)
	if err != nil {
		return contract.PrepareSourceOutput{}, err
	}
	var out contract.PrepareSourceOutput
	if err := v.Get(&out); err != nil {
		t.Fatalf("decoding the output: %v", err)
	}
	return out, nil
}

func applicationError(t *testing.T, err error) *temporal.ApplicationError {
	t.Helper()
	var app *temporal.ApplicationError
	if !errors.As(err, &app) {
		t.Fatalf("error %v is not an application error", err)
	}
	return app
}

func TestPrepareSourceOfAChange(t *testing.T) {
	repo, commit := helloRepo(t)
	state := t.TempDir()
	a := source.New(state)
	out, err := prepare(t, a, contract.PrepareSourceInput{Repo: repo, Ref: "refs/changes/34/1234/2"})
	if err != nil {
		t.Fatal(err)
	}
	if out.Source != (contract.Source{Repo: repo, Commit: commit}) {
		t.Errorf("source = %+v, want %s at %s", out.Source, repo, commit)
	}
	s := out.Settings
	if s.TestVariant != "test" || s.ProductionVariant != "production" || s.Image != "hello" || s.ServicePort != 8080 || len(s.E2E) != 3 {
		t.Errorf("settings = %+v", s)
	}
	if strings.Join(out.Variants, ",") != "production,test" {
		t.Errorf("variants = %v", out.Variants)
	}
	dir := workspace.Dir(state, workspace.Source(out.Source))
	if _, err := os.Stat(filepath.Join(dir, "www", "cgi-bin", "hello")); err != nil {
		t.Errorf("the workspace lacks the checkout: %v", err)
	}

	// Idempotent: the same answer again, from the same workspace.
	again, err := prepare(t, a, contract.PrepareSourceInput{Repo: repo, Ref: "refs/changes/34/1234/2"})
	if err != nil || again.Source != out.Source {
		t.Errorf("second PrepareSource = %+v, %v", again.Source, err)
	}
}

// TestPrepareSourceOfARefUpdate: the commit an update named is built, as the
// branch's (reviewed) while the branch still points at it, and alone (no branch)
// once the branch has moved on or is gone.
func TestPrepareSourceOfARefUpdate(t *testing.T) {
	repo, first := helloRepo(t)
	gittest.Git(t, repo, "commit", "--quiet", "--allow-empty", "-m", "second")
	second := gittest.Git(t, repo, "rev-parse", "HEAD")
	a := source.New(t.TempDir())
	for name, tc := range map[string]struct {
		ref, commit string
		want        contract.Source
	}{
		"at the tip":    {"refs/heads/main", second, contract.Source{Repo: repo, Commit: second, Branch: "main"}},
		"moved on":      {"refs/heads/main", first, contract.Source{Repo: repo, Commit: first}},
		"branch gone":   {"refs/heads/gone", first, contract.Source{Repo: repo, Commit: first}},
		"no commit":     {"refs/heads/main", "", contract.Source{Repo: repo, Commit: second, Branch: "main"}},
		"upper-case id": {"refs/heads/main", strings.ToUpper(second), contract.Source{Repo: repo, Commit: second, Branch: "main"}},
	} {
		out, err := prepare(t, a, contract.PrepareSourceInput{Repo: repo, Ref: tc.ref, Commit: tc.commit})
		if err != nil || out.Source != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", name, out.Source, err, tc.want)
		}
	}
}

func TestPrepareSourceOfAnUnknownRefIsNotRetried(t *testing.T) {
	repo, _ := helloRepo(t)
	a := source.New(t.TempDir())
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tt := range []struct {
		in   contract.PrepareSourceInput
		says string
	}{
		{contract.PrepareSourceInput{Repo: repo, Ref: "refs/changes/34/1234/9"}, "refs/changes/34/1234/9"},
		{contract.PrepareSourceInput{Repo: missing, Ref: "main"}, missing},
		{contract.PrepareSourceInput{Repo: repo, Ref: "-x"}, `"-x"`},
	} {
		in := tt.in
		_, err := prepare(t, a, in)
		if err == nil {
			t.Fatalf("PrepareSource(%+v) succeeded", in)
		}
		app := applicationError(t, err)
		if app.Type() != contract.ErrSource || !app.NonRetryable() {
			t.Errorf("PrepareSource(%+v): type %s, non-retryable %v, want %s non-retryable: %v", in, app.Type(), app.NonRetryable(), contract.ErrSource, err)
		}
		if !strings.Contains(err.Error(), tt.says) {
			t.Errorf("the error does not say %s: %v", tt.says, err)
		}
	}
}

func TestPrepareSourceReportsInvalidSettings(t *testing.T) {
	repo, _ := helloRepo(t)
	config := filepath.Join(repo, ".pipeline", "config.yaml")
	b, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(b), "path: /cgi-bin/hello?name=e2e", "path: cgi-bin/hello?name=e2e", 1)
	bad = strings.Replace(bad, "production: {variant: production}", "production: {variant: prod}", 1)
	if err := os.WriteFile(config, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	gittest.Git(t, repo, "commit", "--quiet", "-am", "break the settings")

	_, err = prepare(t, source.New(t.TempDir()), contract.PrepareSourceInput{Repo: repo, Ref: "main"})
	app := applicationError(t, err)
	if app.Type() != contract.ErrInvalidConfig || !app.NonRetryable() {
		t.Errorf("type %s, non-retryable %v, want %s non-retryable", app.Type(), app.NonRetryable(), contract.ErrInvalidConfig)
	}
	for _, want := range []string{
		`.pipeline/config.yaml: pipeline.production.variant: names the variant "prod"`,
		`.pipeline/config.yaml: pipeline.e2e[1].path: must start with "/"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
}

func TestPrepareSourceReportsInvalidBlubber(t *testing.T) {
	repo, _ := helloRepo(t)
	blubberFile := filepath.Join(repo, ".pipeline", "blubber.yaml")
	b, err := os.ReadFile(blubberFile)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(b), "copies: [local]", "copies: [lcoal]", 1)
	if err := os.WriteFile(blubberFile, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	gittest.Git(t, repo, "commit", "--quiet", "-am", "break the Blubber config")

	_, err = prepare(t, source.New(t.TempDir()), contract.PrepareSourceInput{Repo: repo, Ref: "main"})
	app := applicationError(t, err)
	if app.Type() != contract.ErrInvalidBlubber || !app.NonRetryable() {
		t.Errorf("type %s, non-retryable %v, want %s non-retryable: %v", app.Type(), app.NonRetryable(), contract.ErrInvalidBlubber, err)
	}
	if !strings.Contains(err.Error(), ".pipeline/blubber.yaml: variants.test.copies[0]") {
		t.Errorf("the error does not name the Blubber field:\n%v", err)
	}
}
