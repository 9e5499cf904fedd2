package integration

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/workflows/changes"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/internal/client/triggers"
	"github.com/wikimedia/conveyor/internal/dev/fakegerrit"
	"github.com/wikimedia/conveyor/internal/dev/gittest"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
)

// gerritNamespace keeps these tests' workflows and activities away from other
// workers of the shared dev server: only the worker started here, configured for
// the fake Gerrit, serves it.
const gerritNamespace = "conveyor-gerrit-it"

const webhookSecret = "it-webhook-secret-0123456789"

// gerritStack is a fake Gerrit, a real worker reporting to it, and the real
// webhook endpoint starting workflows on the dev server.
type gerritStack struct {
	gerrit   *fakegerrit.Server
	client   client.Client
	endpoint string
	worker   *syncBuffer
}

// startGerritStack starts the worker binary for the build and deploy pools in the
// test namespace with the fake Gerrit's address and credentials in its
// environment (never in a workflow's input), and the webhook endpoint for
// project, whose repository is repo.
func startGerritStack(t *testing.T, project, repo string) *gerritStack {
	t.Helper()
	nsCfg := stacktest.Namespace(t, gerritNamespace)
	fake := fakegerrit.New(t, "conveyor-bot", "http-password-"+randomHex(t)[:8])

	out := startLoggedWorker(t, []string{
		"CONVEYOR_GERRIT_URL=" + fake.URL,
		"CONVEYOR_GERRIT_USERNAME=" + fake.Username,
		"CONVEYOR_GERRIT_PASSWORD=" + fake.Password,
	}, "--namespace", gerritNamespace, "--pools", "build,deploy")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := temporalclient.Dial(ctx, nsCfg.Temporal, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("Temporal (make up): %v", err)
	}
	t.Cleanup(c.Close)
	tc, err := triggers.Parse([]byte(fmt.Sprintf("projects: [{name: %q, repo: %q, branches: [main]}]", project, repo)), "")
	if err != nil {
		t.Fatal(err)
	}
	h, err := triggers.NewHandler(c, tc, triggers.WithIgnoredAccounts(fake.Username))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := triggers.NewServer(h, webhookSecret)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &gerritStack{gerrit: fake, client: c, endpoint: ts.URL + triggers.EventsPath + "/" + webhookSecret, worker: out}
}

// patchsetCreated is the webhooks plugin's body for patchset 1 of change in
// project, at revision.
func patchsetCreated(project string, change int, revision string) []byte {
	return fmt.Appendf(nil, `{
  "uploader": {"name": "Ada Lovelace", "email": "ada@example.org", "username": "ada"},
  "patchSet": {"number": 1, "revision": %q, "ref": "refs/changes/%02d/%d/1", "kind": "REWORK",
               "uploader": {"name": "Ada Lovelace", "email": "ada@example.org", "username": "ada"}},
  "change": {"project": %q, "branch": "main", "id": "I%040x", "number": %d, "subject": "Try conveyor",
             "owner": {"name": "Ada Lovelace", "username": "ada"}, "url": "https://gerrit.example.org/r/c/%s/+/%d", "status": "NEW"},
  "project": {"name": %q},
  "refName": "refs/heads/main",
  "type": "patchset-created",
  "eventCreatedOn": %d
}`, revision, change%100, change, project, change, change, project, change, project, time.Now().Unix())
}

// verifyChange delivers patchset-created for a change of examples/hello (edited
// by edit) and waits for the review the fake Gerrit receives. With
// recheckDuringRun, a reviewer's "recheck" comment arrives while the pipeline
// runs: its verification joins that run, and the change still gets one review.
func verifyChange(t *testing.T, what string, change int, edit func(dir string), recheckDuringRun bool) (fakegerrit.Review, changes.VerifyResult, string) {
	t.Helper()
	image := uniqueImage(t, what)
	project := "it/" + image
	dir, ref := serviceRepo(t, image, change, edit)
	s := startGerritStack(t, project, dir)
	revision := gittest.Git(t, dir, "rev-parse", ref)

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	code, err := fakegerrit.Deliver(ctx, http.DefaultClient, s.endpoint, "https://gerrit.example.org/r/", patchsetCreated(project, change, revision))
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("delivering patchset-created: %d %v", code, err)
	}
	if recheckDuringRun {
		recheckJoins(ctx, t, s, project, change, revision, ref)
	}
	review, err := s.gerrit.WaitForReview(ctx, func(r fakegerrit.Review) bool { return r.Change == fmt.Sprintf("%s~%d", project, change) })
	if err != nil {
		t.Fatalf("no review for %s~%d: %v", project, change, err)
	}
	if review.Revision != revision {
		t.Errorf("review on revision %s, want the patchset's %s", review.Revision, revision)
	}
	var res changes.VerifyResult
	id := changes.VerifyID(project, change, 1, "")
	if err := s.client.GetWorkflow(ctx, id, "").Get(ctx, &res); err != nil {
		t.Fatalf("the verification %s: %v", id, err)
	}
	if !res.Reported || res.PipelineRunID == "" {
		t.Errorf("verification result %+v", res)
	}
	if len(s.gerrit.Reviews()) != 1 {
		t.Errorf("%d reviews, want 1", len(s.gerrit.Reviews()))
	}
	stacktest.RecordHistory(t, s.client, id, "", "verify-"+what+".json")
	link := fmt.Sprintf("%s/namespaces/%s/workflows/%s/%s", strings.TrimRight(cfg.Temporal.UIURL, "/"), gerritNamespace,
		url.PathEscape(changes.PipelineID(project, ref)), res.PipelineRunID)
	return review, res, link
}

// TestGerritVerifiedPlusOne: a new patchset of examples/hello goes through the real
// pipeline (build, tests, isolated deploy and e2e) on the real worker, and Gerrit
// gets Verified +1 with a link to the run; a recheck during the run joins it.
func TestGerritVerifiedPlusOne(t *testing.T) {
	review, res, link := verifyChange(t, "gerrit-ok", 4201, nil, true)
	if review.Labels["Verified"] != 1 || res.Outcome != contract.OutcomeSucceeded {
		t.Fatalf("vote %v, outcome %s; want Verified +1\n%s", review.Labels, res.Outcome, review.Message)
	}
	for _, want := range []string{"verification succeeded", "deploy-and-test succeeded", "publish skipped", "Workflow: " + link} {
		if !strings.Contains(review.Message, want) {
			t.Errorf("message lacks %q:\n%s", want, review.Message)
		}
	}
	if review.Tag != "autogenerated:conveyor" {
		t.Errorf("tag %q", review.Tag)
	}
}

// TestGerritVerifiedMinusOne: a patchset whose unit tests fail gets Verified -1
// naming the failed step, with the tests' output tail.
func TestGerritVerifiedMinusOne(t *testing.T) {
	review, res, link := verifyChange(t, "gerrit-fail", 4202, breakTests, false)
	if review.Labels["Verified"] != -1 || res.Outcome != contract.OutcomeFailed || res.FailedStep != changes.StepRunTests {
		t.Fatalf("vote %v, outcome %s at %q; want Verified -1 at run-tests\n%s", review.Labels, res.Outcome, res.FailedStep, review.Message)
	}
	for _, want := range []string{"failed at step run-tests", "Output (last lines):", "goodbye, e2e", "Workflow: " + link, `Comment "recheck"`} {
		if !strings.Contains(review.Message, want) {
			t.Errorf("message lacks %q:\n%s", want, review.Message)
		}
	}
}

// recheckJoins waits for the patchset's pipeline to run, delivers a reviewer's
// "recheck" comment on the patchset, and checks that its verification joined
// the running pipeline instead of starting another.
func recheckJoins(ctx context.Context, t *testing.T, s *gerritStack, project string, change int, revision, ref string) {
	t.Helper()
	pipeline := changes.PipelineID(project, ref)
	stacktest.WaitFor(t, 2*time.Minute, "the pipeline "+pipeline+" running", func() error {
		d, err := s.client.DescribeWorkflowExecution(ctx, pipeline, "")
		if err != nil {
			return err
		}
		if st := d.GetWorkflowExecutionInfo().GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			t.Fatalf("the pipeline is %s before the recheck could join it", st)
		}
		return nil
	})
	created := time.Now().Unix()
	body := fmt.Appendf(nil, `{
  "author": {"name": "Grace Hopper", "email": "grace@example.org", "username": "grace"},
  "comment": "Patch Set 1:\n\nrecheck",
  "patchSet": {"number": 1, "revision": %q, "ref": %q, "kind": "REWORK"},
  "change": {"project": %q, "branch": "main", "id": "I%040x", "number": %d, "subject": "Try conveyor",
             "owner": {"name": "Ada Lovelace", "username": "ada"}, "status": "NEW"},
  "project": {"name": %q},
  "refName": "refs/heads/main",
  "type": "comment-added",
  "eventCreatedOn": %d
}`, revision, ref, project, change, change, project, created)
	code, err := fakegerrit.Deliver(ctx, http.DefaultClient, s.endpoint, "https://gerrit.example.org/r/", body)
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("delivering the recheck: %d %v", code, err)
	}
	id := changes.VerifyID(project, change, 1, fmt.Sprintf("t%d", created))
	var res changes.VerifyResult
	if err := s.client.GetWorkflow(ctx, id, "").Get(ctx, &res); err != nil {
		t.Fatalf("the recheck's verification %s: %v", id, err)
	}
	if res.Outcome != changes.OutcomeJoined || res.PipelineID != pipeline || res.Reported {
		t.Errorf("the recheck's verification: %+v, want it joined %s without a report", res, pipeline)
	}
	stacktest.RecordHistory(t, s.client, id, "", "verify-recheck-joined.json")
}

// breakTests edits examples/hello so that its unit tests fail.
func breakTests(dir string) {
	p := filepath.Join(dir, "test", "expected.txt")
	b, _ := os.ReadFile(p)
	_ = os.WriteFile(p, []byte(strings.Replace(string(b), "hello, e2e", "goodbye, e2e", 1)), 0o644)
}

// TestGerritRefusesToVoteOnARevisionNotBuilt: an event whose revision is not the
// commit its change ref points at (here: another commit of the repository) gets
// no review at all: the pipeline builds the ref's commit, and the review of that
// commit is refused because the event named another (RevisionNotBuilt).
func TestGerritRefusesToVoteOnARevisionNotBuilt(t *testing.T) {
	const change = 4203
	image := uniqueImage(t, "gerrit-not-built")
	project := "it/" + image
	// Failing tests keep the run short: the pipeline stops after run-tests.
	dir, ref := serviceRepo(t, image, change, breakTests)
	s := startGerritStack(t, project, dir)
	built := gittest.Git(t, dir, "rev-parse", ref)
	other := gittest.Git(t, dir, "commit-tree", "-m", "a commit nobody built", ref+"^{tree}")

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	code, err := fakegerrit.Deliver(ctx, http.DefaultClient, s.endpoint, "https://gerrit.example.org/r/", patchsetCreated(project, change, other))
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("delivering patchset-created: %d %v", code, err)
	}
	id := changes.VerifyID(project, change, 1, "")
	var res changes.VerifyResult
	err = s.client.GetWorkflow(ctx, id, "").Get(ctx, &res)
	if err == nil || !strings.Contains(err.Error(), contract.ErrRevisionNotBuilt) ||
		!strings.Contains(err.Error(), "built commit "+built) || !strings.Contains(err.Error(), "names revision "+other) {
		t.Errorf("the verification %s: %v; want it refused as %s naming both commits", id, err, contract.ErrRevisionNotBuilt)
	}
	if rs := s.gerrit.Reviews(); len(rs) != 0 {
		t.Errorf("Gerrit got %d reviews, want none: %+v", len(rs), rs)
	}
}
