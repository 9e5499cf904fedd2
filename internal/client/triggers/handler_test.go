package triggers

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/wikimedia/conveyor/workflows/changes"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/internal/lib/gerrit"
	"github.com/wikimedia/conveyor/workflows"
)

// fakeStarter records the starts and signals and behaves like the server for
// the conflict and reuse policies: a running id joins, a closed one is refused
// under REJECT_DUPLICATE.
type fakeStarter struct {
	mu      sync.Mutex
	starts  []startCall
	signals []startCall
	running map[string]bool
	closed  map[string]bool
	err     error
}

type startCall struct {
	opts client.StartWorkflowOptions
	arg  any
}

func newFakeStarter() *fakeStarter {
	return &fakeStarter{running: map[string]bool{}, closed: map[string]bool{}}
}

func (f *fakeStarter) ExecuteWorkflow(_ context.Context, o client.StartWorkflowOptions, _ any, args ...any) (client.WorkflowRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	switch {
	case f.running[o.ID] && o.WorkflowIDConflictPolicy == enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING:
		return nil, nil
	case f.closed[o.ID] && o.WorkflowIDReusePolicy == enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE:
		return nil, serviceerror.NewWorkflowExecutionAlreadyStarted("already started", "", "run-1")
	}
	f.running[o.ID] = true
	f.starts = append(f.starts, startCall{o, args[0]})
	return nil, nil
}

func (f *fakeStarter) SignalWithStartWorkflow(_ context.Context, id, signal string, arg any, o client.StartWorkflowOptions, _ any, _ ...any) (client.WorkflowRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	f.signals = append(f.signals, startCall{o, arg})
	return nil, nil
}

// finish closes every running workflow.
func (f *fakeStarter) finish() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id := range f.running {
		f.closed[id] = true
	}
	f.running = map[string]bool{}
}

const handlerConfig = `
projects:
  - name: mediawiki/services/hello
    repo: /srv/hello
    branches: [main, master]
    publishBranches: [main, master, hotfix]
    batch: {quietPeriod: 5m, maxWait: 30m}
    refUpdated:
      - {ref: 'refs/tags/v*', action: publish}
      - {ref: refs/heads/hotfix, action: batch}
`

// handlerFor is a handler of the triggers file text on a fake starter.
func handlerFor(t *testing.T, text string) (*Config, *fakeStarter, *Handler) {
	t.Helper()
	cfg, err := Parse([]byte(text), "")
	if err != nil {
		t.Fatal(err)
	}
	s := newFakeStarter()
	h, err := NewHandler(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, s, h
}

func newTestHandler(t *testing.T, s Starter) *Handler {
	t.Helper()
	cfg, err := Parse([]byte(handlerConfig), "")
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(s, cfg, WithIgnoredAccounts("conveyor-bot"))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func sample(t *testing.T, name string) gerrit.Event {
	t.Helper()
	e, err := gerrit.ParseEvent(mustRead(t, gerritTestdata(name)))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func streamSamples(t *testing.T) []gerrit.Event {
	t.Helper()
	var out []gerrit.Event
	for _, line := range strings.Split(strings.TrimSpace(string(mustRead(t, gerritTestdata("stream", "events.jsonl")))), "\n") {
		e, err := gerrit.ParseEvent([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func TestPatchsetCreatedStartsAVerification(t *testing.T) {
	s := newFakeStarter()
	h := newTestHandler(t, s)
	res, err := h.Handle(context.Background(), sample(t, "webhook/patchset-created.json"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Action != ActionVerify || res.WorkflowID != "verify/mediawiki/services/hello/1234/2" || res.Duplicate {
		t.Errorf("result %+v", res)
	}
	if len(s.starts) != 1 {
		t.Fatalf("%d starts", len(s.starts))
	}
	o, in := s.starts[0].opts, s.starts[0].arg.(changes.VerifyInput)
	if o.TaskQueue != workflows.TaskQueueBuild || o.WorkflowIDConflictPolicy != enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING ||
		o.WorkflowIDReusePolicy != enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE || o.TypedSearchAttributes.Size() != 3 {
		t.Errorf("options %+v", o)
	}
	want := changes.VerifyInput{
		Pipeline: changes.PipelineInput{Project: "mediawiki/services/hello", Repo: "/srv/hello", Ref: "refs/changes/34/1234/2", Image: "hello"},
		Change: changes.ChangeTarget{Project: "mediawiki/services/hello", Branch: "main", Change: 1234, Patchset: 2,
			ChangeID: "I8473b95934b5732ac55d26311a706c9c2bde9940", Revision: "3f1c2a9d8e7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d"},
		Report: true, Trigger: changes.TriggerPatchset,
	}
	if in != want {
		t.Errorf("input\n got %+v\nwant %+v", in, want)
	}
}

func TestRecheckStartsANewVerificationPerComment(t *testing.T) {
	s := newFakeStarter()
	h := newTestHandler(t, s)
	ctx := context.Background()
	first, _ := h.Handle(ctx, sample(t, "webhook/patchset-created.json"))
	re, err := h.Handle(ctx, sample(t, "webhook/comment-added-recheck.json"))
	if err != nil {
		t.Fatal(err)
	}
	if re.Action != ActionRecheck || re.WorkflowID != "verify/mediawiki/services/hello/1234/2/t1767226000" || re.WorkflowID == first.WorkflowID {
		t.Errorf("recheck %+v", re)
	}
	if in := s.starts[1].arg.(changes.VerifyInput); in.Trigger != changes.TriggerRecheck || in.Pipeline.Ref != "refs/changes/34/1234/2" {
		t.Errorf("recheck input %+v", in)
	}
	// The stream's shape of the same recheck (numbers as strings, refName "main")
	// is the same event: the same workflow.
	if res, _ := h.Handle(ctx, streamSamples(t)[1]); res.WorkflowID != re.WorkflowID {
		t.Errorf("the stream's recheck went to %s, the webhook's to %s", res.WorkflowID, re.WorkflowID)
	}
	if len(s.starts) != 2 {
		t.Errorf("%d starts, want 2", len(s.starts))
	}
}

func TestDuplicateDeliveriesGetTheSameResult(t *testing.T) {
	s := newFakeStarter()
	h := newTestHandler(t, s)
	ctx := context.Background()
	e := sample(t, "webhook/patchset-created.json")
	first, _ := h.Handle(ctx, e)
	again, _ := h.Handle(ctx, e) // while it runs: joins
	s.finish()
	late, err := h.Handle(ctx, e) // after it finished: refused
	if err != nil {
		t.Fatal(err)
	}
	if len(s.starts) != 1 || !late.Duplicate || again.Duplicate {
		t.Errorf("%d starts, duplicate flags %v %v", len(s.starts), again.Duplicate, late.Duplicate)
	}
	late.Duplicate = false
	if first != again || first != late {
		t.Errorf("results differ: %+v %+v %+v", first, again, late)
	}
}

func TestChangeMergedSignalsTheBranchBatcher(t *testing.T) {
	s := newFakeStarter()
	h := newTestHandler(t, s)
	ctx := context.Background()
	res, err := h.Handle(ctx, sample(t, "webhook/change-merged.json"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Action != ActionBatch || res.WorkflowID != "batch/mediawiki/services/hello/main" || len(s.signals) != 1 {
		t.Fatalf("result %+v, %d signals", res, len(s.signals))
	}
	m := s.signals[0].arg.(changes.MergeSignal)
	if m.Change.Key != "merged/1234/3" || m.Change.Revision != "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f" ||
		m.Target.Branch != "main" || m.Target.Repo != "/srv/hello" || !m.Target.Publish || m.Target.Settings.QuietPeriod.Minutes() != 5 {
		t.Errorf("signal %+v", m)
	}
	// The stream's change-merged is on master.
	res, _ = h.Handle(ctx, streamSamples(t)[3])
	if res.WorkflowID != "batch/mediawiki/services/hello/master" {
		t.Errorf("stream merge went to %s", res.WorkflowID)
	}
}

func TestRefUpdatedFollowsTheRules(t *testing.T) {
	s := newFakeStarter()
	h := newTestHandler(t, s)
	ctx := context.Background()
	res, err := h.Handle(ctx, sample(t, "webhook/ref-updated.json"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Action != ActionPublish || res.WorkflowID != "pipeline/mediawiki/services/hello/refs/tags/v1.4.0@5e6f7a8b9c0d" {
		t.Errorf("tag: %+v", res)
	}
	if in := s.starts[0].arg.(changes.PipelineInput); in.Ref != "refs/tags/v1.4.0" || in.Commit != "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f" || !in.Publish {
		t.Errorf("tag pipeline %+v, want it to build refUpdate.newRev", in)
	}
	hotfix := gerrit.Event{Type: gerrit.TypeRefUpdated, RefUpdate: gerrit.RefUpdate{Project: "mediawiki/services/hello",
		RefName: "hotfix", NewRev: "abcdef0123456789abcdef0123456789abcdef01"}}
	res, _ = h.Handle(ctx, hotfix)
	if res.Action != ActionBatch || res.WorkflowID != "batch/mediawiki/services/hello/hotfix" {
		t.Errorf("hotfix: %+v", res)
	}
}

// TestOnlyPublishBranchesPublish: with every branch enabled and no
// publishBranches, a merge publishes from main and master only; a merge to a
// branch anyone may push (sandbox/…) or a batch rule matching one is not acted on,
// saying where to allow it.
func TestOnlyPublishBranchesPublish(t *testing.T) {
	cfg, _, h := handlerFor(t, `
projects:
  - name: hello
    repo: /srv/hello
    refUpdated: [{ref: 'refs/heads/*', action: batch}]
  - name: release
    repo: /srv/release
    publishBranches: [release/1.x]
`)
	merged := func(project, branch string) gerrit.Event {
		e := sample(t, "webhook/change-merged.json")
		e.Change.Project, e.Change.Branch = project, branch
		return e
	}
	pushed := func(project, branch string) gerrit.Event {
		return gerrit.Event{Type: gerrit.TypeRefUpdated, RefUpdate: gerrit.RefUpdate{Project: project,
			RefName: "refs/heads/" + branch, NewRev: "abcdef0123456789abcdef0123456789abcdef01"}}
	}
	ctx := context.Background()
	for name, tc := range map[string]struct {
		e       gerrit.Event
		publish bool
	}{
		"merge to main":          {merged("hello", "main"), true},
		"merge to master":        {merged("hello", "master"), true},
		"merge to sandbox":       {merged("hello", "sandbox/mallory"), false},
		"push to a branch":       {pushed("hello", "experiment"), false},
		"push to main":           {pushed("hello", "main"), true},
		"merge to a listed one":  {merged("release", "release/1.x"), true},
		"merge to main unlisted": {merged("release", "main"), false},
	} {
		res, err := h.Handle(ctx, tc.e)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := res.Action == ActionBatch; got != tc.publish {
			t.Errorf("%s: %+v, want published %v", name, res, tc.publish)
		}
		if !tc.publish && !strings.Contains(res.Reason, "publishBranches") {
			t.Errorf("%s: ignored because %q, want the reason to name publishBranches", name, res.Reason)
		}
	}
	hello, _ := cfg.Project("hello")
	if hello.Publishes("sandbox/mallory") || !hello.Publishes("main") {
		t.Errorf("hello publishes sandbox/mallory %v, main %v; nightly and base-image rebuilds follow the same rule", hello.Publishes("sandbox/mallory"), hello.Publishes("main"))
	}
	if _, err := Parse([]byte("projects: [{name: a, repo: /a, publishBranches: ['sandbox/*']}]\n"), ""); err == nil || !strings.Contains(err.Error(), "publishBranches[0]") {
		t.Errorf("a pattern in publishBranches: %v, want refused naming publishBranches[0]", err)
	}
}

// TestTheTriggersFileGivesTheImage: a project's image in the triggers file goes
// with every pipeline the events start (verification, batch, ref rule), and a
// bad one is refused when the file is read.
func TestTheTriggersFileGivesTheImage(t *testing.T) {
	_, s, h := handlerFor(t, `
projects:
  - name: mediawiki/services/hello
    repo: /srv/hello
    image: hello
    refUpdated: [{ref: 'refs/tags/v*', action: publish}]
`)
	ctx := context.Background()
	for _, name := range []string{"webhook/patchset-created.json", "webhook/change-merged.json", "webhook/ref-updated.json"} {
		if _, err := h.Handle(ctx, sample(t, name)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if len(s.starts) != 2 || len(s.signals) != 1 {
		t.Fatalf("%d starts and %d signals, want a verification, a tag pipeline and a batch", len(s.starts), len(s.signals))
	}
	if in := s.starts[0].arg.(changes.VerifyInput); in.Pipeline.Image != "hello" {
		t.Errorf("verification's pipeline image %q, want hello", in.Pipeline.Image)
	}
	if in := s.starts[1].arg.(changes.PipelineInput); in.Image != "hello" {
		t.Errorf("tag pipeline's image %q, want hello", in.Image)
	}
	if m := s.signals[0].arg.(changes.MergeSignal); m.Target.Image != "hello" {
		t.Errorf("batch target's image %q, want hello", m.Target.Image)
	}
	if _, err := Parse([]byte("projects: [{name: a, repo: /a, image: 'Not An Image'}]\n"), ""); err == nil || !strings.Contains(err.Error(), "projects[0] (a).image") {
		t.Errorf("a bad image: %v, want refused naming projects[0] (a).image", err)
	}
}

// TestTheImageIsNeverTheRepositorys: a project without image in the triggers file
// publishes the image its (trusted) name gives, whatever its repository is called
// or says, and two projects may not publish the same image.
func TestTheImageIsNeverTheRepositorys(t *testing.T) {
	c, err := Parse([]byte("projects: [{name: mediawiki/services/Citoid_Service, repo: /srv/payments.git}]\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Projects[0].Image; got != "citoid_service" {
		t.Errorf("derived image %q, want citoid_service (from the project's name, not the repository's)", got)
	}
	_, err = Parse([]byte(`
projects:
  - {name: mediawiki/services/hello, repo: /a}
  - {name: operations/hello, repo: /b}
  - {name: other, repo: /c, image: hello}
`), "")
	for _, want := range []string{
		`projects[1] (operations/hello).image: "hello" is also the image of projects[0] (mediawiki/services/hello)`,
		`projects[2] (other).image: "hello" is also the image of projects[0] (mediawiki/services/hello)`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("two projects publishing hello: %v, want %q", err, want)
		}
	}
}

// TestRefUpdatedBuildsNewRev: the pipeline of a ref update builds the update's
// commit, refUpdate.newRev, and not the ref, whose head may have moved on (or
// been moved by someone else) by the time the pipeline fetches it.
func TestRefUpdatedBuildsNewRev(t *testing.T) {
	s := newFakeStarter()
	h := newTestHandler(t, s)
	const newRev = "0123456789abcdef0123456789abcdef01234567"
	e := gerrit.Event{Type: gerrit.TypeRefUpdated, RefUpdate: gerrit.RefUpdate{Project: "mediawiki/services/hello",
		RefName: "refs/tags/v2.0.0", OldRev: strings.Repeat("0", 40), NewRev: newRev}}
	res, err := h.Handle(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	if res.WorkflowID != "pipeline/mediawiki/services/hello/refs/tags/v2.0.0@0123456789ab" || len(s.starts) != 1 {
		t.Fatalf("result %+v, %d starts", res, len(s.starts))
	}
	if in := s.starts[0].arg.(changes.PipelineInput); in.Commit != newRev || in.Ref != "refs/tags/v2.0.0" {
		t.Errorf("the pipeline builds %q of %q, want the update's newRev %s of refs/tags/v2.0.0", in.Commit, in.Ref, newRev)
	}
	e.RefUpdate.NewRev = "refs/heads/main"
	if res, err := h.Handle(context.Background(), e); err != nil || res.Action != ActionIgnore || !strings.Contains(res.Reason, "not a full commit hash") {
		t.Errorf("a newRev that is not a commit: %+v, %v", res, err)
	}
}

// TestOwnAndQuotedCommentsDoNotRecheck: conveyor's own messages (tagged
// autogenerated:conveyor, or by their text, whichever account posted them) and a
// "recheck" that only appears in quoted or preformatted output start nothing.
func TestOwnAndQuotedCommentsDoNotRecheck(t *testing.T) {
	s := newFakeStarter()
	cfg, err := Parse([]byte(handlerConfig), "")
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(s, cfg) // no ignored accounts: the event alone must say it
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tagged := sample(t, "webhook/comment-added-recheck.json")
	tagged.Tag = gerrit.Tag
	own := sample(t, "webhook/comment-added-recheck.json")
	own.Comment = "Patch Set 2: Verified-1\n\n" + gerrit.MessagePrefix + "verification failed at step run-tests.\n\nOutput (last lines):\n\n> recheck\nrecheck"
	quoted := sample(t, "webhook/comment-added-recheck.json")
	quoted.Comment = "Patch Set 2:\n\n> recheck\n\n  recheck\n\nthe test prints that, weird"
	for name, tc := range map[string]struct {
		e    gerrit.Event
		want string
	}{
		"tagged":          {tagged, "conveyor's own"},
		"conveyor's text": {own, "conveyor's own"},
		"quoted output":   {quoted, "not a recheck"},
	} {
		res, err := h.Handle(ctx, tc.e)
		if err != nil || res.Action != ActionIgnore || !strings.Contains(res.Reason, tc.want) {
			t.Errorf("%s: %+v, %v; want ignored because %q", name, res, err, tc.want)
		}
	}
	if len(s.starts) != 0 {
		t.Errorf("%d verifications started", len(s.starts))
	}
	if res, _ := h.Handle(ctx, sample(t, "webhook/comment-added-recheck.json")); res.Action != ActionRecheck {
		t.Errorf("a reviewer's recheck: %+v", res)
	}
}

func TestEventsNotActedOn(t *testing.T) {
	s := newFakeStarter()
	h := newTestHandler(t, s)
	ctx := context.Background()
	bot := sample(t, "webhook/comment-added-recheck.json")
	bot.Account.Username = "conveyor-bot"
	other := sample(t, "webhook/patchset-created.json")
	other.Change.Project = "not/enabled"
	stable := sample(t, "webhook/patchset-created.json")
	stable.Change.Branch = "stable"
	deleted := sample(t, "webhook/ref-updated.json")
	deleted.RefUpdate.NewRev = strings.Repeat("0", 40)
	stream := streamSamples(t)
	for name, tc := range map[string]struct {
		e    gerrit.Event
		want string
	}{
		"unknown type":     {sample(t, "webhook/reviewer-added.json"), `event type "reviewer-added" is not acted on`},
		"own comment":      {bot, "conveyor's own"},
		"not a recheck":    {stream[5], "not a recheck"},
		"dropped output":   {stream[2], "dropped"},
		"no ref rule":      {stream[4], "no refUpdated rule"},
		"disabled project": {other, `project "not/enabled" is not enabled`},
		"disabled branch":  {stable, `branch "stable"`},
		"deleted ref":      {deleted, "was deleted"},
		"no numbers":       {gerrit.Event{Type: gerrit.TypePatchsetCreated, Change: gerrit.Change{Project: "mediawiki/services/hello", Branch: "main"}}, "no change and patchset"},
	} {
		res, err := h.Handle(ctx, tc.e)
		if err != nil || res.Action != ActionIgnore || !strings.Contains(res.Reason, tc.want) {
			t.Errorf("%s: %+v, %v; want ignored because %q", name, res, err, tc.want)
		}
	}
	if len(s.starts)+len(s.signals) != 0 {
		t.Errorf("ignored events started %d workflows", len(s.starts)+len(s.signals))
	}
}

func TestTemporalErrorsAreReturned(t *testing.T) {
	s := newFakeStarter()
	s.err = serviceerror.NewUnavailable("connection refused")
	h := newTestHandler(t, s)
	for _, name := range []string{"webhook/patchset-created.json", "webhook/change-merged.json"} {
		_, err := h.Handle(context.Background(), sample(t, name))
		var unavailable *serviceerror.Unavailable
		if !errors.As(err, &unavailable) {
			t.Errorf("%s: error %v, want Temporal's", name, err)
		}
	}
}
