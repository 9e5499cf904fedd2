package helm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"helm.sh/helm/v3/pkg/release"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/helmkit"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/internal/lib/e2e"
)

// These tests run against the real local stack (stacktest): buildkitd builds the test
// image, the registry serves it, and Kubernetes runs it. Each test deploys into a
// namespace of its own and tears it down when it ends.

func newActivities(t *testing.T, opts ...Option) (*Activities, config.Config) {
	t.Helper()
	cfg := stacktest.Config(t)
	cfg.StateDir = t.TempDir()
	repo, err := stacktest.RepoDir()
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]Option{
		WithDefaultChart(filepath.Join(repo, "charts", "service")),
		WithPollInterval(500 * time.Millisecond),
		WithReadyTimeout(3 * time.Minute),
		WithTestTimeout(2 * time.Minute),
		WithE2EOptions(e2e.WithRetryWindow(3*time.Second), e2e.WithRetryPause(500*time.Millisecond)),
	}, opts...)
	a, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return a, cfg
}

// activityEnv runs a's methods as activities, with an activity context. It logs at
// info level: Helm's debug lines would drown the failures.
func activityEnv(a *Activities) *testsuite.TestActivityEnvironment {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	return env
}

// newRelease is a release in a fresh namespace that is torn down when the test ends.
func newRelease(t *testing.T, a *Activities, prefix string) contract.Release {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	r := contract.Release{Namespace: "test-helm-" + prefix + "-" + hex.EncodeToString(b), Name: "hello"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := a.Teardown(ctx, contract.TeardownInput{Release: r}); err != nil {
			t.Errorf("cleaning up namespace %s: %v", r.Namespace, err)
		}
	})
	return r
}

// serviceValues are chart values for the test image: httpd on 8080 behind port 8080,
// probed every second so that readiness comes quickly.
func serviceValues() map[string]any {
	return map[string]any{
		"containerPort": 8080,
		"service":       map[string]any{"port": 8080},
		"probes":        map[string]any{"readiness": map[string]any{"periodSeconds": 1}},
	}
}

func deployInput(r contract.Release, image string, values map[string]any) contract.DeployCandidateInput {
	return contract.DeployCandidateInput{
		Release:  r,
		Source:   contract.Source{Repo: "test", Commit: strings.Repeat("a", 40)},
		Settings: contract.Settings{Image: r.Name, Values: values, ServicePort: 8080},
		Image:    image,
		Labels:   map[string]string{"conveyor.wikimedia.org/test": "activities-helm"},
	}
}

func deploy(t *testing.T, env *testsuite.TestActivityEnvironment, a *Activities, in contract.DeployCandidateInput) (contract.DeployCandidateOutput, error) {
	t.Helper()
	v, err := env.ExecuteActivity(a.DeployCandidate, in)
	var out contract.DeployCandidateOutput
	if err == nil {
		err = v.Get(&out)
	}
	return out, err
}

// wantAppError checks that err is a non-retryable application error of type typ whose
// message has each of contains.
func wantAppError(t *testing.T, err error, typ string, contains ...string) {
	t.Helper()
	var app *temporal.ApplicationError
	if !errors.As(err, &app) {
		t.Fatalf("error %v (%T), want an application error of type %s", err, err, typ)
	}
	if app.Type() != typ || !app.NonRetryable() {
		t.Fatalf("error type %q (non-retryable %v), want non-retryable %q: %v", app.Type(), app.NonRetryable(), typ, app)
	}
	for _, s := range contains {
		if !strings.Contains(app.Error(), s) {
			t.Errorf("error message does not contain %q:\n%s", s, app.Error())
		}
	}
}

func httpGet(url string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s", resp.Status)
	}
	return string(b), err
}

// TestCandidateLifecycle walks one release through the deploy step as the pipeline
// does, retries included: deploy, deploy again, resume an interrupted deploy, helm
// test, e2e checks passing and failing, a failing helm test, and teardown twice.
func TestCandidateLifecycle(t *testing.T) {
	t.Parallel()
	a, cfg := newActivities(t)
	env := activityEnv(a)
	image := testImage(t, cfg)
	r := newRelease(t, a, "life")
	in := deployInput(r, image, serviceValues())
	ctx := context.Background()

	out, err := deploy(t, env, a, in)
	if err != nil {
		t.Fatalf("DeployCandidate: %v", err)
	}
	if !strings.HasPrefix(out.ServiceURL, "http://") || !strings.HasSuffix(out.ServiceURL, ":8080") || out.Revision != 1 {
		t.Fatalf("DeployCandidate = %+v, want http://<ClusterIP>:8080 at revision 1", out)
	}
	stacktest.WaitFor(t, 30*time.Second, "GET "+out.ServiceURL, func() error {
		body, err := httpGet(out.ServiceURL + "/")
		if err == nil && body != testPage {
			err = fmt.Errorf("body %q, want %q", body, testPage)
		}
		return err
	})
	nsObj, err := a.kube.CoreV1().Namespaces().Get(ctx, r.Namespace, metav1.GetOptions{})
	if err != nil || nsObj.Labels["conveyor.wikimedia.org/test"] != "activities-helm" {
		t.Errorf("namespace %s: labels %v, error %v; want the input's labels", r.Namespace, nsObj.GetLabels(), err)
	}
	dep, err := a.kube.AppsV1().Deployments(r.Namespace).Get(ctx, "hello-stable", metav1.GetOptions{})
	if err != nil || dep.Spec.Template.Spec.Containers[0].Image != image {
		t.Fatalf("deployment hello-stable: %v; want image %s", err, image)
	}

	t.Run("deploying again upgrades in place", func(t *testing.T) {
		again, err := deploy(t, env, a, in)
		if err != nil {
			t.Fatalf("DeployCandidate again: %v", err)
		}
		if again.ServiceURL != out.ServiceURL || again.Revision != 2 {
			t.Errorf("DeployCandidate again = %+v, want %s at revision 2", again, out.ServiceURL)
		}
	})

	t.Run("an interrupted deploy is taken over", func(t *testing.T) {
		cfg, err := a.cluster.ActionConfig(r.Namespace, helmkit.Logger(ctx))
		if err != nil {
			t.Fatal(err)
		}
		last, err := cfg.Releases.Last(r.Name)
		if err != nil {
			t.Fatal(err)
		}
		last.SetStatus(release.StatusPendingUpgrade, "an attempt that died")
		if err := cfg.Releases.Update(last); err != nil {
			t.Fatal(err)
		}
		again, err := deploy(t, env, a, in)
		if err != nil {
			t.Fatalf("DeployCandidate over a pending release: %v", err)
		}
		if again.Revision != last.Version+1 {
			t.Errorf("revision %d, want %d", again.Revision, last.Version+1)
		}
	})

	t.Run("helm test passes", func(t *testing.T) {
		if _, err := env.ExecuteActivity(a.HelmTest, contract.HelmTestInput{Release: r}); err != nil {
			t.Fatalf("HelmTest: %v", err)
		}
	})

	t.Run("e2e checks pass", func(t *testing.T) {
		v, err := env.ExecuteActivity(a.RunE2E, contract.RunE2EInput{BaseURL: out.ServiceURL, Checks: []contract.Check{
			{Name: "page", Path: "/", ExpectBodyContains: "hello from the candidate"},
			{Name: "missing page", Path: "/missing.html", ExpectStatus: 404},
		}})
		if err != nil {
			t.Fatalf("RunE2E: %v", err)
		}
		var res contract.RunE2EOutput
		if err := v.Get(&res); err != nil {
			t.Fatal(err)
		}
		if len(res.Results) != 2 || !res.Results[0].OK || !res.Results[1].OK {
			t.Errorf("results %+v, want two passed checks", res.Results)
		}
	})

	t.Run("a failing e2e check is reported with what it wanted and got", func(t *testing.T) {
		_, err := env.ExecuteActivity(a.RunE2E, contract.RunE2EInput{BaseURL: out.ServiceURL, Checks: []contract.Check{
			{Name: "page", Path: "/"},
			{Name: "health", Path: "/healthz"},
			{Name: "greeting", Path: "/", ExpectBodyContains: "goodbye"},
		}})
		wantAppError(t, err, contract.ErrE2EFailed, "2 of 3 e2e checks",
			"health: GET "+out.ServiceURL+"/healthz: want status 200, got 404",
			`greeting: GET `+out.ServiceURL+`/: want a body containing "goodbye"`)
		var app *temporal.ApplicationError
		var res contract.RunE2EOutput
		if !errors.As(err, &app) || app.Details(&res) != nil || len(res.Results) != 3 || !res.Results[0].OK {
			t.Errorf("error details %+v, want all three results", res)
		}
	})

	t.Run("a failing helm test carries the test's log", func(t *testing.T) {
		vals := serviceValues()
		vals["test"] = map[string]any{"command": []any{"sh", "-c", "echo failing on purpose; exit 3"}}
		if _, err := deploy(t, env, a, deployInput(r, image, vals)); err != nil {
			t.Fatalf("DeployCandidate with a failing test: %v", err)
		}
		_, err := env.ExecuteActivity(a.HelmTest, contract.HelmTestInput{Release: r})
		wantAppError(t, err, contract.ErrHelmTest, "hello-stable-test", "Failed", "exited 3", "failing on purpose")
	})

	t.Run("teardown removes the namespace, twice", func(t *testing.T) {
		for i := range 2 {
			if _, err := env.ExecuteActivity(a.Teardown, contract.TeardownInput{Release: r}); err != nil {
				t.Fatalf("Teardown #%d: %v", i+1, err)
			}
			if _, err := a.kube.CoreV1().Namespaces().Get(ctx, r.Namespace, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Fatalf("after Teardown #%d namespace %s: %v, want not found", i+1, r.Namespace, err)
			}
		}
	})
}

func TestDeployRejectsValuesFailingTheSchema(t *testing.T) {
	t.Parallel()
	a, _ := newActivities(t)
	r := newRelease(t, a, "schema")
	vals := serviceValues()
	vals["replicaCount"] = -1
	vals["replicas"] = 2
	_, err := deploy(t, activityEnv(a), a, deployInput(r, "localhost:5000/x@sha256:"+strings.Repeat("0", 64), vals))
	wantAppError(t, err, contract.ErrChart, "chart.values in .pipeline/config.yaml", "replicaCount", "replicas")
	if _, err := a.kube.CoreV1().Namespaces().Get(context.Background(), r.Namespace, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace %s: %v; want none created for values that do not fit", r.Namespace, err)
	}
}

func TestDeployRejectsAChartThatDoesNotRender(t *testing.T) {
	t.Parallel()
	a, _ := newActivities(t)
	r := newRelease(t, a, "render")
	vals := serviceValues()
	vals["hpa"] = map[string]any{"enabled": true, "minReplicas": 3, "maxReplicas": 2}
	_, err := deploy(t, activityEnv(a), a, deployInput(r, "localhost:5000/x@sha256:"+strings.Repeat("0", 64), vals))
	wantAppError(t, err, contract.ErrChart, "does not render", "hpa.maxReplicas (2) must be at least hpa.minReplicas (3)")
}

func TestDeployRejectsBadInput(t *testing.T) {
	t.Parallel()
	a, _ := newActivities(t)
	env := activityEnv(a)
	r := contract.Release{Namespace: "test-helm-never-created", Name: "hello"}
	digest := "@sha256:" + strings.Repeat("0", 64)

	_, err := deploy(t, env, a, deployInput(r, "localhost:5000/hello:latest", nil))
	wantAppError(t, err, contract.ErrInvalidConfig, "repository@sha256")

	in := deployInput(r, "localhost:5000/hello"+digest, nil)
	in.Settings.Chart = "../chart"
	_, err = deploy(t, env, a, in)
	wantAppError(t, err, contract.ErrInvalidConfig, `chart.path "../chart"`, "inside the repository")

	in.Settings.Chart, in.Source = "deploy/chart", contract.Source{Repo: t.TempDir(), Commit: strings.Repeat("b", 40)}
	_, err = deploy(t, env, a, in)
	wantAppError(t, err, contract.ErrSource, "fetching the chart of")

	_, err = deploy(t, env, a, deployInput(contract.Release{Namespace: "Bad_NS", Name: "hello"}, "localhost:5000/hello"+digest, nil))
	wantAppError(t, err, contract.ErrInvalidConfig, `namespace "Bad_NS"`)
}

func TestDeployGivesUpOnACrashingCandidate(t *testing.T) {
	t.Parallel()
	a, cfg := newActivities(t, WithCrashLoopLimit(1))
	r := newRelease(t, a, "crash")
	vals := serviceValues()
	vals["command"] = []any{"/bin/busybox", "sh", "-c", "echo boom: no configuration >&2; exit 3"}
	_, err := deploy(t, activityEnv(a), a, deployInput(r, testImage(t, cfg), vals))
	wantAppError(t, err, contract.ErrCandidateNotReady, "CrashLoopBackOff", "last exit code 3", "boom: no configuration")
}

func TestDeployGivesUpOnAMissingImage(t *testing.T) {
	t.Parallel()
	a, cfg := newActivities(t)
	r := newRelease(t, a, "noimage")
	image := cfg.Registry.Address + "/conveyor-test/does-not-exist@sha256:" + strings.Repeat("0", 64)
	_, err := deploy(t, activityEnv(a), a, deployInput(r, image, serviceValues()))
	wantAppError(t, err, contract.ErrCandidateNotReady, "container app", "not found")
}

func TestDeployNotReadyInTimeIsRetryable(t *testing.T) {
	t.Parallel()
	a, cfg := newActivities(t, WithReadyTimeout(8*time.Second))
	r := newRelease(t, a, "notready")
	vals := serviceValues()
	vals["probes"] = map[string]any{
		"readiness": map[string]any{"path": "/healthz", "periodSeconds": 1},
		"liveness":  map[string]any{"enabled": false},
	}
	_, err := deploy(t, activityEnv(a), a, deployInput(r, testImage(t, cfg), vals))
	var app *temporal.ApplicationError
	if err == nil || !errors.As(err, &app) || app.NonRetryable() {
		t.Fatalf("DeployCandidate of a pod that never becomes ready: %v; want a retryable error", err)
	}
	for _, want := range []string{"not ready after 8s", "Deployment/hello-stable", "running, not ready", "Readiness probe failed", "404"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%v", want, err)
		}
	}
}

func TestTeardownOfNothingSucceeds(t *testing.T) {
	t.Parallel()
	a, _ := newActivities(t)
	if _, err := activityEnv(a).ExecuteActivity(a.Teardown, contract.TeardownInput{
		Release: contract.Release{Namespace: "test-helm-never-existed", Name: "hello"}}); err != nil {
		t.Fatalf("Teardown of a namespace that never existed: %v", err)
	}
}

func TestHelmTestOfAMissingReleaseIsRetried(t *testing.T) {
	t.Parallel()
	a, _ := newActivities(t)
	_, err := activityEnv(a).ExecuteActivity(a.HelmTest, contract.HelmTestInput{
		Release: contract.Release{Namespace: "test-helm-never-existed", Name: "hello"}})
	var app *temporal.ApplicationError
	if err == nil || (errors.As(err, &app) && app.NonRetryable()) {
		t.Fatalf("HelmTest of a missing release: %v; want a retryable error", err)
	}
}

func TestNewValidatesOptions(t *testing.T) {
	for name, o := range map[string]Option{
		"chart":        WithDefaultChart(t.TempDir()),
		"ready":        WithReadyTimeout(0),
		"test":         WithTestTimeout(-time.Second),
		"crash":        WithCrashLoopLimit(0),
		"poll":         WithPollInterval(0),
		"e2e":          WithE2EOptions(e2e.WithRequestTimeout(0)),
		"bad kubeconf": nil,
	} {
		cfg := config.Config{StateDir: t.TempDir(), Kubernetes: config.Kubernetes{Kubeconfig: filepath.Join(t.TempDir(), "missing")}}
		opts := []Option{}
		if o != nil {
			opts = append(opts, o)
		}
		if _, err := New(cfg, opts...); err == nil {
			t.Errorf("%s: New succeeded, want an error", name)
		}
	}
}

// TestNewRefusesAnEmptyStateDir: without a state directory New would write the
// chart under the working directory, the source tree when tests run.
func TestNewRefusesAnEmptyStateDir(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(config.Config{})
	if !errors.Is(err, errNoStateDir) {
		t.Fatalf("New without a state directory: %v, want %v", err, errNoStateDir)
	}
	if _, err := os.Stat(filepath.Join(wd, "charts")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("New wrote into the working directory: %v", err)
	}
}

func TestCandidateValuesLeavesTheSettingsAlone(t *testing.T) {
	settings := map[string]any{"image": map[string]any{"pullPolicy": "Always"}, "args": []any{"-v"}}
	got := candidateValues(settings, "hello", "localhost:5000/candidates/hello", "sha256:abc", true)
	img := got["image"].(map[string]any)
	if img["repository"] != "localhost:5000/candidates/hello" || img["digest"] != "sha256:abc" || img["pullPolicy"] != "Always" || got["appName"] != "hello" {
		t.Errorf("values %v", got)
	}
	if _, ok := settings["image"].(map[string]any)["digest"]; ok || settings["appName"] != nil {
		t.Errorf("the settings' values were changed: %v", settings)
	}
	if got := candidateValues(settings, "hello", "r", "sha256:abc", false); got["appName"] != nil {
		t.Errorf("values for a repository's own chart %v, want no appName: the chart may not know it", got)
	}
}

func TestDeployWithTheRepositorysChart(t *testing.T) {
	t.Parallel()
	a, cfg := newActivities(t)
	env := activityEnv(a)
	repoDir, err := stacktest.RepoDir()
	if err != nil {
		t.Fatal(err)
	}
	src := gitRepo(t, func(dir string) {
		copyDir(t, filepath.Join(repoDir, "charts", "service"), filepath.Join(dir, "deploy", "chart"))
		if err := os.MkdirAll(filepath.Join(dir, "leaky", "templates"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "leaky", "Chart.yaml"), "apiVersion: v2\nname: leaky\nversion: 0.1.0\n")
		if err := os.Symlink("/etc/hostname", filepath.Join(dir, "leaky", "templates", "host.yaml")); err != nil {
			t.Fatal(err)
		}
	})
	r := newRelease(t, a, "custom")
	in := deployInput(r, testImage(t, cfg), serviceValues())
	in.Source = src

	t.Run("a missing chart directory", func(t *testing.T) {
		in := in
		in.Settings.Chart = "deploy/nothing"
		_, err := deploy(t, env, a, in)
		wantAppError(t, err, contract.ErrChart, `chart.path "deploy/nothing"`, "no such directory")
	})
	t.Run("a chart that reads the worker's files", func(t *testing.T) {
		in := in
		in.Settings.Chart = "leaky"
		_, err := deploy(t, env, a, in)
		wantAppError(t, err, contract.ErrChart, `chart.path "leaky"`, "templates/host.yaml is a symbolic link")
	})
	t.Run("deploys and answers", func(t *testing.T) {
		in := in
		in.Settings.Chart = "deploy/chart"
		out, err := deploy(t, env, a, in)
		if err != nil {
			t.Fatalf("DeployCandidate with chart.path deploy/chart: %v", err)
		}
		stacktest.WaitFor(t, 30*time.Second, "GET "+out.ServiceURL, func() error {
			_, err := httpGet(out.ServiceURL + "/")
			return err
		})
	})
}

// gitRepo commits what fill writes into a new repository and returns the commit.
func gitRepo(t *testing.T, fill func(dir string)) contract.Source {
	t.Helper()
	dir := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		args = append([]string{"-C", dir, "-c", "user.name=test", "-c", "user.email=test@example.org", "-c", "commit.gpgsign=false"}, args...)
		out, err := exec.Command("git", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	fill(dir)
	git("add", "-A")
	git("commit", "-q", "-m", "chart")
	return contract.Source{Repo: dir, Commit: git("rev-parse", "HEAD")}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
