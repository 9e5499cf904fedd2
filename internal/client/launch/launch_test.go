package launch

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/workflows/changes"
	"github.com/wikimedia/conveyor/workflows/migrations"
	"github.com/wikimedia/conveyor/workflows/promotions"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/workflows"
)

// call is one start a recordingStarter received.
type call struct {
	signal    string
	signalArg any
	opts      client.StartWorkflowOptions
	workflow  any
	args      []any
}

// recordingStarter records the starts and signal-with-starts it is asked for and
// starts nothing.
type recordingStarter struct {
	calls []call
	err   error
}

func (r *recordingStarter) ExecuteWorkflow(_ context.Context, o client.StartWorkflowOptions, wf any, args ...any) (client.WorkflowRun, error) {
	r.calls = append(r.calls, call{opts: o, workflow: wf, args: args})
	return nil, r.err
}

func (r *recordingStarter) SignalWithStartWorkflow(_ context.Context, id, signal string, arg any, o client.StartWorkflowOptions, wf any, args ...any) (client.WorkflowRun, error) {
	if id != o.ID {
		return nil, errors.New("signal-with-start of " + id + " with options for " + o.ID)
	}
	r.calls = append(r.calls, call{signal: signal, signalArg: arg, opts: o, workflow: wf, args: args})
	return nil, r.err
}

var _ Starter = (*recordingStarter)(nil)

func sameFunc(a, b any) bool { return reflect.ValueOf(a).Pointer() == reflect.ValueOf(b).Pointer() }

// TestStartOptions checks the options of every start function: id, task queue,
// id policies and search attributes.
func TestStartOptions(t *testing.T) {
	ctx := context.Background()
	pipeline := changes.PipelineInput{Project: "mediawiki/services/hello", Repo: "/srv/hello", Ref: "refs/changes/34/1234/2"}
	verify := changes.VerifyInput{Pipeline: pipeline, Change: changes.ChangeTarget{Project: "mediawiki/services/hello", Branch: "main", Change: 1234, Patchset: 2}}
	tag := changes.PipelineInput{Project: "mediawiki/services/hello", Repo: "/srv/hello", Ref: "refs/tags/v1.4.0", Publish: true}
	target := changes.BatchTarget{Project: "mediawiki/services/hello", Repo: "/srv/hello", Branch: "main", Publish: true}
	promotion := promotions.PromotionInput{Service: "hello", Image: "localhost:5000/hello@sha256:" + strings.Repeat("3f", 32),
		Source: promotions.PromotionSource{Project: "mediawiki/services/hello"}}
	plan := migrations.MigrationPlan{From: "codfw1dev", To: "codfw2dev", Stages: migrations.DefaultMigrationStages()}
	project := migrations.ProjectMigrationInput{From: "eqiad1", To: "eqiad2", Project: "tools"}
	ping := workflows.PingInput{Pools: []string{workflows.PoolDeploy, workflows.PoolBuild}, Message: "hi"}
	for _, tc := range []struct {
		name     string
		start    func(Starter) error
		id       string
		queue    string
		policy   Policy
		workflow any
		signal   string
		// The expected search attributes: project "" and change and patch -1 for none.
		project          string
		change, patch    int64
		stage            string
		executionTimeout time.Duration
	}{
		{name: "Pipeline", start: func(s Starter) error { _, err := Pipeline(ctx, s, pipeline); return err },
			id: "pipeline/mediawiki/services/hello/1234/2", queue: workflows.TaskQueueBuild, policy: PolicyJoinOrRerun,
			workflow: changes.Pipeline, project: pipeline.Project, change: 1234, patch: 2},
		{name: "Verification", start: func(s Starter) error { _, err := Verification(ctx, s, verify, ""); return err },
			id: "verify/mediawiki/services/hello/1234/2", queue: workflows.TaskQueueBuild, policy: PolicyJoinOrRefuse,
			workflow: changes.ChangeVerification, project: pipeline.Project, change: 1234, patch: 2},
		{name: "Verification of a recheck", start: func(s Starter) error {
			_, err := Verification(ctx, s, verify, "t1767226000", OnTaskQueue("other"))
			return err
		},
			id: "verify/mediawiki/services/hello/1234/2/t1767226000", queue: "other", policy: PolicyJoinOrRefuse,
			workflow: changes.ChangeVerification, project: pipeline.Project, change: 1234, patch: 2},
		{name: "RefPipeline", start: func(s Starter) error {
			_, err := RefPipeline(ctx, s, tag, "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f")
			return err
		},
			id: "pipeline/mediawiki/services/hello/refs/tags/v1.4.0@5e6f7a8b9c0d", queue: workflows.TaskQueueBuild, policy: PolicyJoinOrRefuse,
			workflow: changes.Pipeline, project: tag.Project, change: -1, patch: -1},
		{name: "MergeSignal", start: func(s Starter) error {
			_, err := MergeSignal(ctx, s, target, changes.MergedChange{Key: "merged/1234/3"})
			return err
		},
			id: "batch/mediawiki/services/hello/main", queue: workflows.TaskQueueBuild, policy: PolicySignalOrRestart,
			workflow: changes.MergeBatcher, signal: changes.SignalMerged, project: target.Project, change: -1, patch: -1},
		{name: "BaseCheck", start: func(s Starter) error {
			_, err := BaseCheck(ctx, s, changes.BaseCheckConfig{Every: time.Hour})
			return err
		},
			id: changes.BaseCheckID, queue: workflows.TaskQueueBuild, policy: PolicyServerDefault,
			workflow: changes.BaseImageCheck, signal: changes.SignalBaseCheckConfig, change: -1, patch: -1},
		{name: "Promotion", start: func(s Starter) error { _, err := Promotion(ctx, s, promotion); return err },
			id: promotions.PromotionID(promotion.Service, promotion.Image), queue: workflows.TaskQueueDeploy, policy: PolicyJoinOrRerun,
			workflow: promotions.Promotion, project: "mediawiki/services/hello", change: -1, patch: -1, stage: promotions.PromotionStageConfig},
		{name: "CloudMigration", start: func(s Starter) error { _, err := CloudMigration(ctx, s, plan); return err },
			id: "migration/codfw1dev-codfw2dev", queue: workflows.TaskQueueMigrate, policy: PolicyOnce,
			workflow: migrations.CloudMigration, change: -1, patch: -1},
		{name: "ProjectMigration", start: func(s Starter) error { _, err := ProjectMigration(ctx, s, project); return err },
			id: migrations.ProjectMigrationID("eqiad1", "eqiad2", "tools"), queue: workflows.TaskQueueMigrate, policy: PolicyRefuseRunning,
			workflow: migrations.ProjectMigration, change: -1, patch: -1},
		{name: "Ping", start: func(s Starter) error { _, err := Ping(ctx, s, "ping-1", time.Minute, ping); return err },
			id: "ping-1", queue: workflows.TaskQueue(workflows.PoolDeploy), policy: PolicyServerDefault,
			workflow: workflows.Ping, change: -1, patch: -1, executionTimeout: time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &recordingStarter{}
			if err := tc.start(s); err != nil {
				t.Fatal(err)
			}
			if len(s.calls) != 1 {
				t.Fatalf("%d calls, want 1", len(s.calls))
			}
			c := s.calls[0]
			o := c.opts
			if o.ID != tc.id || o.TaskQueue != tc.queue {
				t.Errorf("id %q on %q, want %q on %q", o.ID, o.TaskQueue, tc.id, tc.queue)
			}
			if got := (Policy{o.WorkflowIDConflictPolicy, o.WorkflowIDReusePolicy, o.WorkflowExecutionErrorWhenAlreadyStarted}); got != tc.policy {
				t.Errorf("policy %+v, want %+v", got, tc.policy)
			}
			if !sameFunc(c.workflow, tc.workflow) || c.signal != tc.signal {
				t.Errorf("workflow %v with signal %q, want %v with %q", c.workflow, c.signal, tc.workflow, tc.signal)
			}
			if o.WorkflowExecutionTimeout != tc.executionTimeout {
				t.Errorf("execution timeout %s, want %s", o.WorkflowExecutionTimeout, tc.executionTimeout)
			}
			sa := o.TypedSearchAttributes
			want := 0
			if p, ok := sa.GetKeyword(workflows.ProjectKey); tc.project != "" {
				want++
				if p != tc.project {
					t.Errorf("project attribute %q, %v; want %q", p, ok, tc.project)
				}
			}
			for _, a := range []struct {
				key  temporal.SearchAttributeKeyInt64
				want int64
			}{{workflows.ChangeKey, tc.change}, {workflows.PatchsetKey, tc.patch}} {
				if v, ok := sa.GetInt64(a.key); a.want >= 0 {
					want++
					if v != a.want {
						t.Errorf("%s attribute %d, %v; want %d", a.key.GetName(), v, ok, a.want)
					}
				}
			}
			if st, ok := sa.GetKeyword(workflows.StageKey); tc.stage != "" {
				want++
				if st != tc.stage {
					t.Errorf("stage attribute %q, %v; want %q", st, ok, tc.stage)
				}
			}
			if sa.Size() != want {
				t.Errorf("%d search attributes, want %d: %v", sa.Size(), want, sa.GetUntypedValues())
			}
		})
	}
}

// TestThePoliciesAreTheCallersOwn pins the enum values of each named policy: they
// are what the command line and the triggers have always used.
func TestThePoliciesAreTheCallersOwn(t *testing.T) {
	for name, tc := range map[string]struct {
		p                Policy
		conflict         enumspb.WorkflowIdConflictPolicy
		reuse            enumspb.WorkflowIdReusePolicy
		errorWhenRunning bool
	}{
		"JoinOrRerun":     {PolicyJoinOrRerun, enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING, enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE, false},
		"JoinOrRefuse":    {PolicyJoinOrRefuse, enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING, enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE, false},
		"Once":            {PolicyOnce, enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL, enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE, true},
		"RefuseRunning":   {PolicyRefuseRunning, enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL, enumspb.WORKFLOW_ID_REUSE_POLICY_UNSPECIFIED, true},
		"SignalOrRestart": {PolicySignalOrRestart, enumspb.WORKFLOW_ID_CONFLICT_POLICY_UNSPECIFIED, enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE, false},
		"ServerDefault":   {PolicyServerDefault, enumspb.WORKFLOW_ID_CONFLICT_POLICY_UNSPECIFIED, enumspb.WORKFLOW_ID_REUSE_POLICY_UNSPECIFIED, false},
	} {
		if tc.p != (Policy{tc.conflict, tc.reuse, tc.errorWhenRunning}) {
			t.Errorf("Policy%s is %+v", name, tc.p)
		}
	}
}

func TestScheduledPipelineHasThePipelinesAttributes(t *testing.T) {
	in := changes.PipelineInput{Project: "p", Repo: "/srv/p", Ref: "refs/heads/main", Publish: true}
	a, err := ScheduledPipeline("nightly/p/main", in, OnTaskQueue("q"))
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := a.TypedSearchAttributes.GetKeyword(workflows.ProjectKey); a.ID != "nightly/p/main" || a.TaskQueue != "q" ||
		!sameFunc(a.Workflow, changes.Pipeline) || a.Args[0] != in || p != "p" || a.TypedSearchAttributes.Size() != 1 {
		t.Errorf("action %+v", a)
	}
}

func TestStartErrors(t *testing.T) {
	ctx := context.Background()
	s := &recordingStarter{}
	if _, err := Pipeline(ctx, s, changes.PipelineInput{Project: "p", Ref: "main"}); err == nil || !strings.Contains(err.Error(), "repo is empty") {
		t.Errorf("an invalid pipeline input: %v", err)
	}
	if _, err := Verification(ctx, s, changes.VerifyInput{}, "", OnTaskQueue("")); err == nil || !strings.Contains(err.Error(), "empty task queue") {
		t.Errorf("an empty task queue: %v", err)
	}
	if len(s.calls) != 0 {
		t.Errorf("invalid starts reached the client: %+v", s.calls)
	}
	s.err = serviceerror.NewWorkflowExecutionAlreadyStarted("already started", "", "run-1")
	_, err := CloudMigration(ctx, s, migrations.MigrationPlan{From: "a", To: "b"})
	if !temporal.IsWorkflowExecutionAlreadyStartedError(err) || !strings.HasPrefix(err.Error(), "starting migration/a-b: ") {
		t.Errorf("a refused start: %v, want Temporal's error behind the workflow id", err)
	}
}

// fakeUpdater answers every update with result or err, from UpdateWorkflow itself
// (admission) or from the handle's Get (the update's outcome).
type fakeUpdater struct {
	got       client.UpdateWorkflowOptions
	result    any
	admission error
	outcome   error
}

func (f *fakeUpdater) UpdateWorkflow(_ context.Context, o client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	f.got = o
	if f.admission != nil {
		return nil, f.admission
	}
	return fakeHandle{f}, nil
}

type fakeHandle struct{ f *fakeUpdater }

func (h fakeHandle) WorkflowID() string { return h.f.got.WorkflowID }
func (h fakeHandle) RunID() string      { return "" }
func (h fakeHandle) UpdateID() string   { return "u1" }
func (h fakeHandle) Get(_ context.Context, ptr any) error {
	if h.f.outcome != nil {
		return h.f.outcome
	}
	return roundTrip(h.f.result, ptr)
}

func roundTrip(v, ptr any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, ptr)
}

func TestUpdateClassifiesARefusal(t *testing.T) {
	ctx := context.Background()
	u := &fakeUpdater{result: migrations.StageStatus{Name: "procure", ApprovedBy: "bob"}}
	st, err := Update[migrations.StageStatus](ctx, u, "migration/a-b/1-procure", migrations.UpdateApproveStage, migrations.StageApproval{By: "bob"})
	if err != nil || st.ApprovedBy != "bob" {
		t.Fatalf("accepted update: %+v, %v", st, err)
	}
	if o := u.got; o.WorkflowID != "migration/a-b/1-procure" || o.UpdateName != migrations.UpdateApproveStage ||
		o.WaitForStage != client.WorkflowUpdateStageCompleted || len(o.Args) != 1 {
		t.Errorf("update options %+v", o)
	}

	// The validator's refusal, as the SDK returns it from the handle.
	u = &fakeUpdater{outcome: temporal.NewApplicationError("2 tasks are open: order, sign off", "")}
	_, err = Update[migrations.StageStatus](ctx, u, "migration/a-b/1-procure", migrations.UpdateApproveStage, nil)
	var r *RefusedError
	if !errors.Is(err, ErrRefused) || !errors.As(err, &r) || r.Reason != "2 tasks are open: order, sign off" ||
		err.Error() != "refused: 2 tasks are open: order, sign off" || r.WorkflowID != "migration/a-b/1-procure" {
		t.Errorf("refusal: %v (%+v), want ErrRefused with the validator's message", err, r)
	}

	// Not a refusal: no such workflow.
	u = &fakeUpdater{admission: serviceerror.NewNotFound("workflow not found")}
	_, err = PromotionDecide(ctx, u, "promote/hello/3f2a", "approve", promotions.PromotionDecision{Approver: "alice"})
	var nf *serviceerror.NotFound
	if errors.Is(err, ErrRefused) || !errors.As(err, &nf) || !strings.HasPrefix(err.Error(), "sending approve to promote/hello/3f2a: ") {
		t.Errorf("a missing workflow: %v, want Temporal's NotFound, not a refusal", err)
	}
	if _, err := PromotionDecide(ctx, u, "promote/hello/3f2a", "bless", promotions.PromotionDecision{}); err == nil || !strings.Contains(err.Error(), `unknown verb "bless"`) {
		t.Errorf("an unknown verb: %v", err)
	}
}

// fakeQuerier answers every query with answer, or fails with err.
type fakeQuerier struct {
	id, runID, query string
	answer           any
	err              error
}

func (f *fakeQuerier) QueryWorkflow(_ context.Context, id, runID, query string, _ ...any) (converter.EncodedValue, error) {
	f.id, f.runID, f.query = id, runID, query
	if f.err != nil {
		return nil, f.err
	}
	p, err := converter.GetDefaultDataConverter().ToPayloads(f.answer)
	if err != nil {
		return nil, err
	}
	return encoded{p}, nil
}

type encoded struct{ p *commonpb.Payloads }

func (e encoded) HasValue() bool { return e.p != nil }
func (e encoded) Get(ptr any) error {
	return converter.GetDefaultDataConverter().FromPayloads(e.p, ptr)
}

func TestQueryDecodesTheAnswer(t *testing.T) {
	ctx := context.Background()
	q := &fakeQuerier{answer: changes.PipelineStatus{Project: "p", Ref: "refs/heads/main"}}
	st, err := PipelineStatus(ctx, q, "pipeline/p/main", "run-1")
	if err != nil || st.Project != "p" || q.query != workflows.QueryStatus || q.runID != "run-1" {
		t.Fatalf("%+v, %v (asked %s %s)", st, err, q.query, q.runID)
	}
	q = &fakeQuerier{err: serviceerror.NewNotFound("workflow not found")}
	_, err = Query[migrations.MigrationStatus](ctx, q, "migration/a-b", "", migrations.QueryPlan)
	var nf *serviceerror.NotFound
	if !errors.As(err, &nf) || !strings.HasPrefix(err.Error(), "querying migration/a-b: ") {
		t.Errorf("a missing workflow: %v", err)
	}
}

type recordingSignaller struct{ id, runID, signal string }

func (r *recordingSignaller) SignalWorkflow(_ context.Context, id, runID, signal string, _ any) error {
	r.id, r.runID, r.signal = id, runID, signal
	return nil
}

func TestSignalGoesToTheCurrentRun(t *testing.T) {
	s := &recordingSignaller{runID: "stale"}
	if err := Signal(context.Background(), s, "batch/p/main", workflows.SignalPause, nil); err != nil {
		t.Fatal(err)
	}
	if s.id != "batch/p/main" || s.runID != "" || s.signal != workflows.SignalPause {
		t.Errorf("signalled %+v", s)
	}
}

func TestPingID(t *testing.T) {
	at := time.Date(2026, 12, 2, 10, 4, 5, 123e6, time.FixedZone("x", 3600))
	if got := PingID(at); got != "conveyor-ping-20261202T090405.123" {
		t.Errorf("PingID = %q", got)
	}
}
