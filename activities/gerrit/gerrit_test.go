package gerrit

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/internal/dev/fakegerrit"
	"github.com/wikimedia/conveyor/internal/lib/config"
	libgerrit "github.com/wikimedia/conveyor/internal/lib/gerrit"
)

func newActivities(t *testing.T, fake *fakegerrit.Server, password string) *Activities {
	t.Helper()
	cfg := config.Defaults()
	cfg.Gerrit = config.Gerrit{URL: fake.URL + "/", Username: fake.Username, Password: password}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func post(t *testing.T, a *Activities, in contract.ReviewInput) (contract.ReviewOutput, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	v, err := env.ExecuteActivity(contract.PostReview.Name, in)
	var out contract.ReviewOutput
	if err == nil {
		if gerr := v.Get(&out); gerr != nil {
			t.Fatal(gerr)
		}
	}
	return out, err
}

var failed = contract.ReviewInput{
	Project: "mediawiki/services/hello", Change: 1234, Revision: "3f1c2a9d8e7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d", Patchset: 2,
	BuiltCommit: "3f1c2a9d8e7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d",
	Verified:    -1, Outcome: contract.OutcomeFailed, FailedStep: "run-tests",
	Output:     "tests failed (exit 1):\nok 1 health\nnot ok 2 greeting\n  want: hello, e2e\n  got:  goodbye, e2e",
	WorkflowID: "pipeline/mediawiki/services/hello/1234/2", RunID: "0b1c",
}

func TestPostReviewVotesWithTheFailedStepAndALink(t *testing.T) {
	fake := fakegerrit.New(t, "conveyor-bot", "pw")
	out, err := post(t, newActivities(t, fake, "pw"), failed)
	if err != nil {
		t.Fatal(err)
	}
	if out.Labels["Verified"] != -1 {
		t.Errorf("Gerrit applied %v, want Verified -1", out.Labels)
	}
	rs := fake.Reviews()
	if len(rs) != 1 {
		t.Fatalf("%d reviews, want 1", len(rs))
	}
	r := rs[0]
	if r.Change != "mediawiki/services/hello~1234" || r.Revision != failed.Revision || r.Labels["Verified"] != -1 || r.Tag != Tag {
		t.Errorf("review %+v", r)
	}
	for _, want := range []string{
		"failed at step run-tests",
		"\n> not ok 2 greeting\n",
		"\n>   got:  goodbye, e2e\n",
		"Workflow: http://127.0.0.1:8233/namespaces/default/workflows/pipeline%2Fmediawiki%2Fservices%2Fhello%2F1234%2F2/0b1c",
		`Comment "recheck"`,
	} {
		if !strings.Contains(r.Message, want) {
			t.Errorf("message lacks %q:\n%s", want, r.Message)
		}
	}
}

func TestPostReviewSuccess(t *testing.T) {
	fake := fakegerrit.New(t, "conveyor-bot", "pw")
	const built = "4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e"
	in := contract.ReviewInput{Project: "hello", ChangeID: "I8473b95934b5732ac55d26311a706c9c2bde9940", Branch: "main", Patchset: 3,
		BuiltCommit: built, Verified: 1, Outcome: contract.OutcomeSucceeded, Summary: "candidate localhost:5000/candidates/hello@sha256:abc", WorkflowID: "w"}
	if _, err := post(t, newActivities(t, fake, "pw"), in); err != nil {
		t.Fatal(err)
	}
	r := fake.Reviews()[0]
	if r.Change != "hello~main~I8473b95934b5732ac55d26311a706c9c2bde9940" || r.Revision != built || r.Labels["Verified"] != 1 {
		t.Errorf("review %+v", r)
	}
	if !strings.Contains(r.Message, "verification succeeded") || !strings.Contains(r.Message, "candidate localhost:5000") || strings.Contains(r.Message, "recheck") {
		t.Errorf("message:\n%s", r.Message)
	}
}

// patchsets of change 1234 at the fake: 1 and 2.
var (
	ps1 = "1111111111111111111111111111111111111111"
	ps2 = failed.Revision
)

func fakeWithChange(t *testing.T) *fakegerrit.Server {
	fake := fakegerrit.New(t, "conveyor-bot", "pw")
	fake.AddChange(fakegerrit.Change{Project: failed.Project, Branch: "main", ID: "I8473b95934b5732ac55d26311a706c9c2bde9940",
		Number: failed.Change, Revisions: []string{ps1, ps2}})
	return fake
}

// TestPostReviewAtTheBuiltCommit: the review goes to the commit the pipeline
// built, even when the event named the patchset only by number.
func TestPostReviewAtTheBuiltCommit(t *testing.T) {
	fake := fakeWithChange(t)
	in := failed
	in.Revision, in.Patchset, in.BuiltCommit = "", 2, ps2
	if _, err := post(t, newActivities(t, fake, "pw"), in); err != nil {
		t.Fatal(err)
	}
	if r := fake.Reviews()[0]; r.Revision != ps2 || r.Patchset != 2 || r.Labels["Verified"] != -1 {
		t.Errorf("review %+v, want Verified -1 at %s (patchset 2)", r, ps2)
	}
}

// TestPostReviewRefusesARevisionThatWasNotBuilt: when the event's revision is not
// the commit the pipeline built, nothing is posted (no vote on code that was not
// built) and the error says both commits.
func TestPostReviewRefusesARevisionThatWasNotBuilt(t *testing.T) {
	fake := fakeWithChange(t)
	for _, verified := range []int{1, -1} {
		in := failed
		in.Verified, in.BuiltCommit = verified, ps1 // the event names patchset 2
		_, err := post(t, newActivities(t, fake, "pw"), in)
		var app *temporal.ApplicationError
		if !errors.As(err, &app) || !app.NonRetryable() || app.Type() != contract.ErrRevisionNotBuilt ||
			!strings.Contains(err.Error(), "built commit "+ps1) || !strings.Contains(err.Error(), "names revision "+ps2) {
			t.Errorf("Verified %+d: error %v, want a non-retryable %s naming both commits", verified, err, contract.ErrRevisionNotBuilt)
		}
	}
	if rs := fake.Reviews(); len(rs) != 0 {
		t.Errorf("posted %+v", rs)
	}
}

// TestPostReviewWithoutABuiltCommitDoesNotVote: nothing built (the source could
// not be fetched), nothing vouched for: the message goes without a vote.
func TestPostReviewWithoutABuiltCommitDoesNotVote(t *testing.T) {
	fake := fakeWithChange(t)
	in := failed
	in.BuiltCommit, in.FailedStep, in.Output = "", "build-test", "fetching refs/changes/34/1234/2: couldn't find remote ref"
	if _, err := post(t, newActivities(t, fake, "pw"), in); err != nil {
		t.Fatal(err)
	}
	if r := fake.Reviews()[0]; r.Labels != nil || r.Revision != ps2 || !strings.Contains(r.Message, "No vote: no commit was built") {
		t.Errorf("review %+v, want a message without a vote", r)
	}
}

func TestPostReviewRetriesServerErrorsButNotRefusals(t *testing.T) {
	fake := fakegerrit.New(t, "conveyor-bot", "pw")
	fake.FailNext(http.StatusServiceUnavailable)
	_, err := post(t, newActivities(t, fake, "pw"), failed)
	var app *temporal.ApplicationError
	if err == nil || (errors.As(err, &app) && app.NonRetryable()) {
		t.Errorf("503: error %v, want a retryable one", err)
	}
	if _, err := post(t, newActivities(t, fake, "pw"), failed); err != nil {
		t.Errorf("after the 503: %v", err)
	}

	_, err = post(t, newActivities(t, fake, "wrong"), failed)
	if !errors.As(err, &app) || !app.NonRetryable() || app.Type() != contract.ErrGerritRejected || !strings.Contains(err.Error(), "HTTP password") {
		t.Errorf("bad password: error %v, want non-retryable %s naming the password", err, contract.ErrGerritRejected)
	}
	bad := failed
	bad.Verified = 2
	_, err = post(t, newActivities(t, fake, "pw"), bad)
	if !errors.As(err, &app) || !app.NonRetryable() || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("out-of-range vote: error %v, want non-retryable with Gerrit's reason", err)
	}
}

func TestPostReviewNeedsConfiguration(t *testing.T) {
	a, err := New(config.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	_, err = post(t, a, failed)
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || !app.NonRetryable() || !strings.Contains(err.Error(), "gerrit.url is not configured") {
		t.Errorf("error %v, want a non-retryable one naming gerrit.url", err)
	}
}

func TestTail(t *testing.T) {
	var lines []string
	for i := range 100 {
		lines = append(lines, strings.Repeat("x", i))
	}
	got := Tail(strings.Join(lines, "\n")+"\n\n", 30, 3000)
	if n := strings.Count(got, "\n") + 1; n > 30 || !strings.HasSuffix(got, strings.Repeat("x", 99)) || len(got) > 3000 {
		t.Errorf("tail has %d lines, %d bytes, ends %q", n, len(got), got[len(got)-5:])
	}
	if Tail("\n\n", 3, 10) != "" {
		t.Error("blank output gave a tail")
	}
}

// TestOutputCannotRecheck: a failing test that prints "recheck" (in any of the
// ways a line can break) does not make the message a recheck: every line of the
// output is quoted, and the comment-added event Gerrit sends for the review is
// not a recheck.
func TestOutputCannotRecheck(t *testing.T) {
	fake := fakegerrit.New(t, "conveyor-bot", "pw")
	fake.AddChange(fakegerrit.Change{Project: failed.Project, Branch: "main", ID: "I8473b95934b5732ac55d26311a706c9c2bde9940",
		Number: failed.Change, Revisions: []string{"1111111111111111111111111111111111111111", failed.Revision}})
	in := failed
	in.Output = "not ok 3 flaky\nrecheck\n  recheck\nRECHECK \nsetup\rrecheck\nx\vrecheck\ny\u2028recheck\n\nrecheck"
	if _, err := post(t, newActivities(t, fake, "pw"), in); err != nil {
		t.Fatal(err)
	}
	r := fake.Reviews()[0]
	_, output, ok := strings.Cut(r.Message, "Output (last lines):\n\n")
	output, _, _ = strings.Cut(output, "\n\nWorkflow:")
	if !ok || strings.Count(output, "\n") < 9 {
		t.Fatalf("message without its output:\n%s", r.Message)
	}
	for line := range strings.SplitSeq(output, "\n") {
		if !strings.HasPrefix(line, ">") {
			t.Errorf("output line %q is not quoted", line)
		}
	}
	body, err := fake.CommentAdded(r)
	if err != nil {
		t.Fatal(err)
	}
	e, err := libgerrit.ParseEvent(body)
	if err != nil {
		t.Fatal(err)
	}
	if e.IsRecheck() || libgerrit.IsRecheckComment(r.Message) {
		t.Errorf("conveyor's message is a recheck:\n%s", e.Comment)
	}
	if !e.IsOwnComment() {
		t.Errorf("conveyor's message is not recognised as its own:\n%s", e.Comment)
	}
}
