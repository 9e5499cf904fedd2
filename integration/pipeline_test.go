package integration

import (
	"context"

	"github.com/wikimedia/conveyor/workflows/changes"

	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"go.temporal.io/sdk/client"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/internal/client/launch"
	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/internal/dev/gittest"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// serviceRepo makes a git repository of its own from examples/hello, lets edit change
// it, commits, and points a Gerrit-style change ref at the commit. The image name is
// unique to the test so that runs never see each other's images.
func serviceRepo(t *testing.T, image string, change int, edit func(dir string)) (dir, ref string) {
	t.Helper()
	dir = t.TempDir()
	if out, err := exec.Command("cp", "-a", filepath.Join(repoDir, "examples", "hello")+"/.", dir).CombinedOutput(); err != nil {
		t.Fatalf("copying the example: %v: %s", err, out)
	}
	cfgFile := filepath.Join(dir, ".pipeline", "config.yaml")
	b, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgFile, []byte(strings.Replace(string(b), "image: hello", "image: "+image, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(dir)
	}
	ref = fmt.Sprintf("refs/changes/%02d/%d/1", change%100, change)
	gittest.Commit(t, dir, "change "+image)
	gittest.Git(t, dir, "update-ref", ref, "HEAD")
	return dir, ref
}

func temporalClient(t *testing.T) client.Client {
	t.Helper()
	return dialTemporal(t, cfg.Temporal)
}

// dialTemporal connects to the Temporal tc names; the test's cleanup closes it.
func dialTemporal(t *testing.T, tc config.Temporal) client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := temporalclient.Dial(ctx, tc, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatalf("Temporal at %s (make up): %v", tc.Address, err)
	}
	t.Cleanup(c.Close)
	return c
}

// pipelineCase is one pipeline run on the real stack.
type pipelineCase struct {
	// record names the recorded history (CONVEYOR_RECORD_HISTORIES).
	record string
	image  string
	change int
	edit   func(dir string)
	// serve, when set, serves the change's repository (in dir) and returns the
	// URL the pipeline fetches it from; by default the pipeline reads dir itself.
	serve   func(dir string) string
	publish bool
	// trusted, when set, is the image conveyor's configuration gives the project
	// (PipelineInput.Image, from the triggers file); the repository says image.
	trusted string
	// during, when set, runs once the pipeline is in the named step.
	duringStep string
	during     func()
}

func runPipelineCase(t *testing.T, c client.Client, pc pipelineCase) (changes.PipelineStatus, client.WorkflowRun, error) {
	t.Helper()
	dir, ref := serviceRepo(t, pc.image, pc.change, pc.edit)
	repo := dir
	if pc.serve != nil {
		repo = pc.serve(dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	run, err := launch.Pipeline(ctx, c, changes.PipelineInput{Project: pc.image, Repo: repo, Ref: ref, Publish: pc.publish, Image: pc.trusted})
	if err != nil {
		t.Fatal(err)
	}
	if pc.during != nil {
		stacktest.WaitFor(t, 5*time.Minute, "pipeline reaching "+pc.duringStep, func() error {
			st, err := launch.PipelineStatus(ctx, c, run.GetID(), run.GetRunID())
			if err != nil {
				return err
			}
			if s := st.Step(pc.duringStep); s == nil || s.State != changes.StepRunning {
				return fmt.Errorf("steps %v", st.Steps)
			}
			return nil
		})
		pc.during()
	}
	var st changes.PipelineStatus
	werr := run.Get(ctx, &st)
	if werr != nil {
		// A failed run returns no result: ask it for its status instead.
		if st, err = launch.PipelineStatus(ctx, c, run.GetID(), run.GetRunID()); err != nil {
			t.Fatal(err)
		}
	}
	if pc.record != "" {
		stacktest.RecordHistory(t, c, run.GetID(), run.GetRunID(), "pipeline-"+pc.record+".json")
	}
	return st, run, werr
}

// wantPublished checks that image was published exactly once, at the deployed
// digest: its two public tags (the timestamp-production tag and the change tag)
// both name it. It returns the tags.
func wantPublished(t *testing.T, image, deployed string) map[string]string {
	t.Helper()
	tags := publicTags(t, image)
	if len(tags) != 2 {
		t.Errorf("%s: public tags %v, want exactly the timestamp-production tag and the change tag", image, tags)
	}
	for tag, d := range tags {
		if d != deployed {
			t.Errorf("published %s:%s = %s, want the deployed digest %s", image, tag, d, deployed)
		}
	}
	return tags
}

// publicTags lists the tags of the public repository of image (none if it does not exist).
func publicTags(t *testing.T, image string) map[string]string {
	t.Helper()
	repo, err := name.NewRepository(cfg.Registry.Address + "/" + image)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := remote.List(repo)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, tag := range tags {
		d, err := remote.Head(repo.Tag(tag))
		if err != nil {
			t.Fatal(err)
		}
		out[tag] = d.Digest.String()
	}
	return out
}

// namespaceGone checks that the run's isolated namespace no longer exists.
func namespaceGone(t *testing.T, ns string) {
	t.Helper()
	if ns == "" {
		return
	}
	_, err := kubeClient(t).CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("namespace %s is still there after the pipeline (err %v)", ns, err)
	}
}

func uniqueImage(t *testing.T, what string) string {
	return "it-" + what + "-" + randomHex(t)[:6]
}

func TestPipelinePublishesTestedImage(t *testing.T) {
	startWorker(t, "build,deploy")
	c := temporalClient(t)
	image := uniqueImage(t, "ok")
	st, _, err := runPipelineCase(t, c, pipelineCase{record: "success", image: image, change: 4101, publish: true})
	if err != nil {
		t.Fatalf("pipeline failed: %v\n%+v", err, st)
	}
	deployed := st.Step(changes.StepDeploy).Digest
	if deployed == "" || !strings.HasSuffix(st.Candidate, deployed) {
		t.Fatalf("deployed digest %q, candidate %q", deployed, st.Candidate)
	}
	tags := wantPublished(t, image, deployed)
	if _, ok := tags["change-4101-1"]; !ok {
		t.Errorf("no change tag in %v", tags)
	}
	namespaceGone(t, st.Namespace)
}

func TestPipelineStopsOnFailingTests(t *testing.T) {
	startWorker(t, "build,deploy")
	c := temporalClient(t)
	image := uniqueImage(t, "unit")
	st, _, err := runPipelineCase(t, c, pipelineCase{record: "unit-tests-fail", image: image, change: 4102, publish: true, edit: func(dir string) {
		p := filepath.Join(dir, "test", "expected.txt")
		b, _ := os.ReadFile(p)
		_ = os.WriteFile(p, []byte(strings.Replace(string(b), "hello, e2e", "goodbye, e2e", 1)), 0o644)
	}})
	if err == nil {
		t.Fatal("pipeline succeeded with failing unit tests")
	}
	s := st.Step(changes.StepRunTests)
	if s.State != changes.StepFailed || !strings.Contains(s.Detail, "goodbye, e2e") {
		t.Fatalf("run-tests step %s with detail %q: want failed with the test output", s.State, s.Detail)
	}
	for _, later := range []string{changes.StepBuildProduction, changes.StepDeploy, changes.StepPublish} {
		if got := st.Step(later).State; got != changes.StepSkipped {
			t.Errorf("step %s is %s, want skipped", later, got)
		}
	}
	if tags := publicTags(t, image); len(tags) != 0 {
		t.Errorf("published %v after failing tests", tags)
	}
	if tags := publicTags(t, "candidates/"+image); len(tags) != 0 {
		t.Errorf("pushed candidates %v after failing tests", tags)
	}
}

// TestPipelineRefusesAnImageItWasNotGiven: a repository whose pipeline.image names
// another image than conveyor's configuration gives its project (a patchset
// publishing as, and so promoting, another service) is refused before anything is
// built, naming both images; nothing is pushed under either name.
func TestPipelineRefusesAnImageItWasNotGiven(t *testing.T) {
	startWorker(t, "build,deploy")
	c := temporalClient(t)
	image, trusted := uniqueImage(t, "claims"), uniqueImage(t, "trusted")
	st, _, err := runPipelineCase(t, c, pipelineCase{image: image, trusted: trusted, change: 4104, publish: true})
	if !hasApplicationError(err, contract.ErrInvalidConfig) {
		t.Fatalf("pipeline claiming image %s for a project given %s: %v, want %s", image, trusted, err, contract.ErrInvalidConfig)
	}
	s := st.Step(changes.StepBuildTest)
	if want := fmt.Sprintf("pipeline.image %q in .pipeline/config.yaml is not %q", image, trusted); s.State != changes.StepFailed || !strings.Contains(st.Error, want) {
		t.Errorf("build-test step %s, pipeline error %q: want the step failed and the error saying %s", s.State, st.Error, want)
	}
	for _, later := range []string{changes.StepRunTests, changes.StepBuildProduction, changes.StepDeploy, changes.StepPublish} {
		if got := st.Step(later).State; got != changes.StepSkipped {
			t.Errorf("step %s is %s, want skipped", later, got)
		}
	}
	for _, repo := range []string{image, trusted, "candidates/" + image, "candidates/" + trusted} {
		if tags := publicTags(t, repo); len(tags) != 0 {
			t.Errorf("pushed %s:%v for a refused pipeline", repo, tags)
		}
	}
}

func TestPipelineTearsDownOnFailingE2E(t *testing.T) {
	startWorker(t, "build,deploy")
	c := temporalClient(t)
	image := uniqueImage(t, "e2e")
	st, _, err := runPipelineCase(t, c, pipelineCase{record: "e2e-fail", image: image, change: 4103, publish: true, edit: func(dir string) {
		p := filepath.Join(dir, ".pipeline", "config.yaml")
		b, _ := os.ReadFile(p)
		_ = os.WriteFile(p, []byte(strings.Replace(string(b), `'"greeting":"hello, e2e"'`, `'"greeting":"goodbye, e2e"'`, 1)), 0o644)
	}})
	if err == nil {
		t.Fatal("pipeline succeeded with a failing e2e check")
	}
	if s := st.Step(changes.StepDeploy); s.State != changes.StepFailed || !strings.Contains(s.Detail, "goodbye") {
		t.Fatalf("deploy step %s with detail %q: want failed naming the check", s.State, s.Detail)
	}
	namespaceGone(t, st.Namespace)
	if tags := publicTags(t, image); len(tags) != 0 {
		t.Errorf("published %v after a failing e2e check", tags)
	}
}

// TestPipelineSurvivesWorkerKill kills the worker (SIGKILL) while a step runs, starts
// a new one, and expects the pipeline to finish with exactly one published image and
// no leftover namespace.
func TestPipelineSurvivesWorkerKill(t *testing.T) {
	for i, step := range []string{changes.StepBuildTest, changes.StepDeploy} {
		t.Run(step, func(t *testing.T) {
			worker, _ := startWorker(t, "build,deploy")
			c := temporalClient(t)
			image := uniqueImage(t, "kill"+fmt.Sprint(i))
			st, _, err := runPipelineCase(t, c, pipelineCase{record: "worker-killed-in-" + step, image: image, change: 4110 + i, publish: true,
				duringStep: step, during: func() {
					if err := worker.Process.Signal(syscall.SIGKILL); err != nil {
						t.Fatal(err)
					}
					_, _ = worker.Process.Wait()
					startWorker(t, "build,deploy")
				}})
			if err != nil {
				t.Fatalf("pipeline did not survive the kill: %v\n%+v", err, st)
			}
			tags := publicTags(t, image)
			digests := map[string]bool{}
			for _, d := range tags {
				digests[d] = true
			}
			if len(tags) != 2 || len(digests) != 1 || !digests[st.Step(changes.StepDeploy).Digest] {
				t.Errorf("public tags %v: want two tags of the one deployed digest %s", tags, st.Step(changes.StepDeploy).Digest)
			}
			namespaceGone(t, st.Namespace)
			leftovers, err := kubeClient(t).CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, ns := range leftovers.Items {
				if strings.Contains(ns.Name, image) {
					t.Errorf("leftover namespace %s", ns.Name)
				}
			}
		})
	}
}
