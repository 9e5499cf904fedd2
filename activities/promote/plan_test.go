package promote

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"sigs.k8s.io/yaml"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/helmkit"
	"github.com/wikimedia/conveyor/charts"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// testActivities are activities with two named clusters and no client: reading
// the configuration registry never reaches a cluster.
func testActivities(t *testing.T, repo string) *Activities {
	t.Helper()
	dir, err := charts.ExtractService(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &Activities{
		clusters:   map[string]*cluster{"eqiad": {Cluster: &helmkit.Cluster{Name: "eqiad"}}, "codfw": {Cluster: &helmkit.Cluster{Name: "codfw"}, simulated: true}},
		order:      []string{"eqiad", "codfw"},
		chartDir:   dir,
		stateDir:   t.TempDir(),
		configRepo: repo,
	}
}

func gitRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@localhost", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@localhost")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// registryRepo makes a git repository with files and returns it and its commit.
func registryRepo(t *testing.T, files map[string]string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	gitRun(t, dir, "init", "-q", "-b", "main")
	commit := commitFiles(t, dir, files)
	return dir, commit
}

func commitFiles(t *testing.T, dir string, files map[string]string) string {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if content == "" {
			_ = os.Remove(p)
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitRun(t, dir, "add", "-A")
	gitRun(t, dir, "commit", "-q", "-m", "change")
	return gitRun(t, dir, "rev-parse", "HEAD")
}

const goodPlan = `
staging: {cluster: eqiad, namespace: hello-staging}
production:
  - {cluster: eqiad, namespace: hello}
  - {cluster: codfw, namespace: hello}
replicas: 4
steps:
  - {weight: 10, pause: 30s}
  - {weight: 50, pause: indefinite}
  - {weight: 100}
analysis:
  path: /cgi-bin/hello
  maxErrorRatio: 0.01
  maxLatencyP95: 500ms
approvers: [alice, bob]
pauseTimeout: 24h
`

func goodFiles() map[string]string {
	return map[string]string{
		"services/hello/promotion.yaml":                   goodPlan,
		"services/hello/values.yaml":                      "containerPort: 8080\nenv: {A: common, B: common}\n",
		"services/hello/staging/values.yaml":              "env: {A: staging}\n",
		"services/hello/production/values.yaml":           "env: {A: production}\n",
		"services/hello/production/codfw/values.yaml":     "env: {B: codfw}\n",
		"services/hello/README.md":                        "notes\n",
		"services/other/promotion.yaml":                   "nonsense: [",
		"services/hello/production/eqiad/values.yaml":     "podAnnotations: {dc: eqiad}\n",
		"services/hello/production/eqiad/.placeholder.md": "x\n",
	}
}

func TestPromotionConfigReadsPlanAndMergesValues(t *testing.T) {
	repo, commit := registryRepo(t, goodFiles())
	a := testActivities(t, repo)
	out, err := a.PromotionConfig(context.Background(), contract.PromotionConfigInput{Service: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if out.Commit != commit {
		t.Errorf("commit %s, want %s", out.Commit, commit)
	}
	p := out.Plan
	if p.Replicas != 4 || len(p.Steps) != 3 || p.Steps[0].Pause != 30*time.Second || !p.Steps[1].Indefinite || p.Steps[2].Weight != 100 {
		t.Errorf("replicas/steps = %d %+v", p.Replicas, p.Steps)
	}
	if p.Analysis.Requests != defaultRequests || p.Analysis.MaxLatencyP95 != 500*time.Millisecond || p.Analysis.Path != "/cgi-bin/hello" {
		t.Errorf("analysis = %+v", p.Analysis)
	}
	if p.ReminderEvery != defaultReminderEvery || p.PauseTimeout != 24*time.Hour || p.HistoryMax != defaultHistoryMax {
		t.Errorf("reminder %s timeout %s history %d", p.ReminderEvery, p.PauseTimeout, p.HistoryMax)
	}
	env := func(tg contract.Target) map[string]any {
		var v map[string]any
		if err := yaml.Unmarshal([]byte(tg.Values), &v); err != nil {
			t.Fatal(err)
		}
		e, _ := v["env"].(map[string]any)
		return e
	}
	if e := env(p.Staging); e["A"] != "staging" || e["B"] != "common" {
		t.Errorf("staging env %v, want A from staging/values.yaml and B from values.yaml", e)
	}
	if len(p.Production) != 2 || p.Production[0].Cluster != "eqiad" || p.Production[1].Cluster != "codfw" {
		t.Fatalf("production %+v", p.Production)
	}
	if e := env(p.Production[1]); e["A"] != "production" || e["B"] != "codfw" {
		t.Errorf("codfw env %v, want A from production/ and B from production/codfw/", e)
	}
	if !strings.Contains(p.Production[0].Values, "dc: eqiad") || strings.Contains(p.Production[1].Values, "dc: eqiad") {
		t.Errorf("per-cluster values leaked:\neqiad:\n%s\ncodfw:\n%s", p.Production[0].Values, p.Production[1].Values)
	}
}

func TestPromotionConfigReadsTheCommitNotTheWorkTree(t *testing.T) {
	repo, first := registryRepo(t, goodFiles())
	second := commitFiles(t, repo, map[string]string{"services/hello/promotion.yaml": strings.Replace(goodPlan, "replicas: 4", "replicas: 2", 1)})
	// An uncommitted edit is never read.
	if err := os.WriteFile(filepath.Join(repo, "services/hello/promotion.yaml"), []byte("broken: ["), 0o644); err != nil {
		t.Fatal(err)
	}
	a := testActivities(t, repo)
	for _, tc := range []struct {
		ref, commit string
		replicas    int
	}{{"", second, 2}, {"main", second, 2}, {first, first, 4}, {second[:10], second, 2}} {
		out, err := a.PromotionConfig(context.Background(), contract.PromotionConfigInput{Service: "hello", Ref: tc.ref})
		if err != nil {
			t.Fatalf("ref %q: %v", tc.ref, err)
		}
		if out.Commit != tc.commit || out.Plan.Replicas != tc.replicas {
			t.Errorf("ref %q: commit %s replicas %d, want %s and %d", tc.ref, out.Commit, out.Plan.Replicas, tc.commit, tc.replicas)
		}
	}
}

func TestPromotionConfigFromGitURL(t *testing.T) {
	repo, commit := registryRepo(t, goodFiles())
	a := testActivities(t, "file://"+repo)
	for i := 0; i < 2; i++ {
		out, err := a.PromotionConfig(context.Background(), contract.PromotionConfigInput{Service: "hello", Ref: "main"})
		if err != nil {
			t.Fatal(err)
		}
		if out.Commit != commit {
			t.Errorf("commit %s, want %s", out.Commit, commit)
		}
	}
	next := commitFiles(t, repo, map[string]string{"services/hello/values.yaml": "containerPort: 9090\n"})
	out, err := a.PromotionConfig(context.Background(), contract.PromotionConfigInput{Service: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if out.Commit != next || !strings.Contains(out.Plan.Staging.Values, "9090") {
		t.Errorf("after a new commit: %s %q, want %s with containerPort 9090", out.Commit, out.Plan.Staging.Values, next)
	}
}

// wantInvalid runs PromotionConfig and wants a non-retryable ErrPromotionConfig
// whose message holds every string of want.
func wantInvalid(t *testing.T, a *Activities, in contract.PromotionConfigInput, want ...string) {
	t.Helper()
	_, err := a.PromotionConfig(context.Background(), in)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != contract.ErrPromotionConfig || !appErr.NonRetryable() {
		t.Fatalf("error %v, want a non-retryable %s", err, contract.ErrPromotionConfig)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not mention %q:\n%v", w, err)
		}
	}
}

func TestPromotionConfigNamesFileAndField(t *testing.T) {
	for name, tc := range map[string]struct {
		files map[string]string
		want  []string
	}{
		"unknown cluster": {map[string]string{"services/hello/promotion.yaml": strings.Replace(goodPlan, "cluster: codfw", "cluster: codwf", 1)},
			[]string{"services/hello/promotion.yaml: production[1].cluster", `"codwf" is not one of the worker's clusters (eqiad, codfw)`}},
		"weights": {map[string]string{"services/hello/promotion.yaml": strings.Replace(strings.Replace(goodPlan, "weight: 50", "weight: 5", 1), "{weight: 100}", "{weight: 90}", 1)},
			[]string{"steps[1].weight: 5 is not above the previous step's 10", "steps[2].weight: the last step must be 100"}},
		"pause": {map[string]string{"services/hello/promotion.yaml": strings.Replace(goodPlan, "pause: 30s", "pause: forever", 1)},
			[]string{`steps[0].pause: "forever"`, "indefinite"}},
		"unknown field": {map[string]string{"services/hello/promotion.yaml": goodPlan + "aprovers: [carol]\n"},
			[]string{"services/hello/promotion.yaml", "aprovers"}},
		"thresholds": {map[string]string{"services/hello/promotion.yaml": strings.Replace(strings.Replace(goodPlan, "maxErrorRatio: 0.01", "maxErrorRatio: 5", 1), "maxLatencyP95: 500ms", "maxLatencyP95: fast", 1)},
			[]string{"analysis.maxErrorRatio: 5", `analysis.maxLatencyP95: "fast"`}},
		"approvers": {map[string]string{"services/hello/promotion.yaml": strings.Replace(goodPlan, "approvers: [alice, bob]", "approvers: [alice, alice]", 1)},
			[]string{`approvers[1]: "alice" is listed twice`}},
		"values set by conveyor": {map[string]string{"services/hello/production/values.yaml": "image: {repository: evil}\nreplicaCount: 9\n"},
			[]string{"services/hello/production/values.yaml: image.repository: conveyor sets it", "replicaCount"}},
		"values outside the schema": {map[string]string{"services/hello/values.yaml": "containerPort: 0\n"},
			[]string{"services/hello/values.yaml + services/hello/staging/values.yaml: values: do not fit", "/containerPort': minimum"}},
		"autoscaler": {map[string]string{"services/hello/staging/values.yaml": "hpa: {enabled: true}\n"},
			[]string{"services/hello/staging/values.yaml: hpa.enabled"}},
		"stray file": {map[string]string{"services/hello/prod/values.yaml": "env: {}\n"},
			[]string{"services/hello/prod/values.yaml: file: not a file of the registry's format"}},
	} {
		t.Run(name, func(t *testing.T) {
			files := goodFiles()
			for k, v := range tc.files {
				files[k] = v
			}
			repo, _ := registryRepo(t, files)
			wantInvalid(t, testActivities(t, repo), contract.PromotionConfigInput{Service: "hello"}, tc.want...)
		})
	}
}

func TestPromotionConfigMissingThings(t *testing.T) {
	repo, _ := registryRepo(t, goodFiles())
	a := testActivities(t, repo)
	wantInvalid(t, a, contract.PromotionConfigInput{Service: "nope"}, "services/nope/promotion.yaml does not exist", "services there: hello, other")
	wantInvalid(t, a, contract.PromotionConfigInput{Service: "hello", Ref: "no-such-branch"}, `configuration ref "no-such-branch": no such branch`)
	wantInvalid(t, a, contract.PromotionConfigInput{Service: "../etc"}, `service "../etc"`)
	wantInvalid(t, testActivities(t, ""), contract.PromotionConfigInput{Service: "hello"}, "promotion.configRepo")
	wantInvalid(t, testActivities(t, filepath.Join(t.TempDir(), "absent")), contract.PromotionConfigInput{Service: "hello"}, "neither a local directory nor a git URL")
}

// TestNewRefusesAnEmptyStateDir: without a state directory New would write the
// chart under the working directory, the source tree when tests run.
func TestNewRefusesAnEmptyStateDir(t *testing.T) {
	_, err := New(config.Config{})
	if err == nil || !strings.Contains(err.Error(), "stateDir is empty") {
		t.Fatalf("New without a state directory: %v, want a stateDir error", err)
	}
}

func TestNewValidatesOptions(t *testing.T) {
	cfg := config.Config{StateDir: t.TempDir()}
	for name, opt := range map[string]Option{
		"ready": WithReadyTimeout(0),
		"poll":  WithPollInterval(-time.Second),
		"crash": WithCrashLoopLimit(0),
	} {
		if _, err := New(cfg, opt); err == nil {
			t.Errorf("%s: an invalid option was accepted", name)
		}
	}
	a, err := New(cfg, WithReadyTimeout(time.Minute), WithPollInterval(time.Second), WithCrashLoopLimit(2))
	if err != nil {
		t.Fatal(err)
	}
	if want := (helmkit.Waits{ReadyTimeout: time.Minute, Poll: time.Second, CrashLimit: 2}); a.waits != want {
		t.Errorf("waits %+v, want %+v", a.waits, want)
	}
}

// TestPromotionConfigOnlyFromTheProtectedBranch: a commit the registry's protected
// branch does not contain (an unmerged change's ref, another branch anyone may push)
// is refused, locally and from a git URL; the branch's commits, old ones
// included, are read.
func TestPromotionConfigOnlyFromTheProtectedBranch(t *testing.T) {
	repo, first := registryRepo(t, goodFiles())
	gitRun(t, repo, "checkout", "-q", "-b", "sandbox/mallory")
	evil := commitFiles(t, repo, map[string]string{"services/hello/promotion.yaml": strings.Replace(goodPlan, "approvers: [alice, bob]", "approvers: [mallory]", 1)})
	gitRun(t, repo, "update-ref", "refs/changes/01/1/1", evil)
	gitRun(t, repo, "checkout", "-q", "main")
	for _, loc := range []string{repo, "file://" + repo} {
		a := testActivities(t, loc)
		for _, ref := range []string{"sandbox/mallory", "refs/changes/01/1/1", evil} {
			wantInvalid(t, a, contract.PromotionConfigInput{Service: "hello", Ref: ref},
				"not on the configuration registry's protected branch main (promotion.protectedBranch)", evil[:12])
		}
		for _, ref := range []string{"", "main", first} {
			out, err := a.PromotionConfig(context.Background(), contract.PromotionConfigInput{Service: "hello", Ref: ref})
			if err != nil || out.Commit != first || !slices.Equal(out.Plan.Approvers, []string{"alice", "bob"}) {
				t.Errorf("%s ref %q: %v %s %v, want the branch's plan", loc, ref, err, out.Commit, out.Plan.Approvers)
			}
		}
	}
	a := testActivities(t, repo)
	a.protected = "production"
	wantInvalid(t, a, contract.PromotionConfigInput{Service: "hello"}, "has no branch production (promotion.protectedBranch)")
}

func TestPromotionConfigRefusesAnOversizedFile(t *testing.T) {
	files := goodFiles()
	files["services/hello/production/values.yaml"] = "# " + strings.Repeat("x", 1<<20) + "\n"
	repo, _ := registryRepo(t, files)
	wantInvalid(t, testActivities(t, repo), contract.PromotionConfigInput{Service: "hello"},
		"services/hello/production/values.yaml is 1.0 MiB", "over the limit of 1.0 MiB (1048576 bytes) for a file of the configuration registry")
}
