package triggers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/wikimedia/conveyor/workflows/changes"

	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/internal/client/launch"
	"github.com/wikimedia/conveyor/internal/lib/gerrit"
	"github.com/wikimedia/conveyor/workflows"
)

// Starter starts workflows: the part of client.Client the Handler uses, which it
// hands to launch (tests give it a fake).
type Starter = launch.Starter

// What the Handler did with an event (Result.Action).
const (
	ActionVerify  = "verify"
	ActionRecheck = "recheck"
	ActionBatch   = "batch"
	ActionPublish = "publish"
	ActionIgnore  = "ignore"
)

// Result is what the Handler did with an event. Deliveries of the same event get
// the same Result.
type Result struct {
	Action     string `json:"action"`
	WorkflowID string `json:"workflowId,omitempty"`
	// Reason says why an event was ignored.
	Reason string `json:"reason,omitempty"`
	// Duplicate says the workflow had already run for this event: nothing new was
	// started. It is not part of the HTTP answer, which must not differ.
	Duplicate bool `json:"-"`
}

// EventHandler acts on Gerrit events.
type EventHandler interface {
	Handle(ctx context.Context, e gerrit.Event) (Result, error)
}

// Handler maps Gerrit events to workflow starts, with ids derived from the event
// so that repeated deliveries start nothing new:
//
//   - patchset-created: ChangeVerification (the pipeline without publishing, then
//     the review), id workflows.VerifyID(project, change, patchset, "");
//   - comment-added with a "recheck" line: the same with the event's key in the
//     id, so each recheck comment is a new verification and each of its
//     deliveries the same one; conveyor's own messages (gerrit.Event.IsOwnComment,
//     or by an account of WithIgnoredAccounts) are never rechecks;
//   - change-merged: signal-with-start of the branch's MergeBatcher, which drops
//     merges it has seen;
//   - ref-updated: the project's rule for the ref, if any; a pipeline builds
//     the event's refUpdate.newRev, not the ref's head when it starts.
//
// Verifications and ref pipelines are started with launch.PolicyJoinOrRefuse (a
// delivery during the run joins it, a delivery after the run starts nothing:
// Result.Duplicate).
type Handler struct {
	starter   Starter
	cfg       *Config
	taskQueue string
	ignore    []string
	logger    *slog.Logger
}

// HandlerOption configures a Handler.
type HandlerOption func(*Handler) error

// WithTaskQueue starts the workflows on queue. Default: the build pool's,
// workflows.TaskQueueBuild.
func WithTaskQueue(queue string) HandlerOption {
	return func(h *Handler) error {
		if strings.TrimSpace(queue) == "" {
			return errors.New("triggers.WithTaskQueue: empty task queue")
		}
		h.taskQueue = queue
		return nil
	}
}

// WithIgnoredAccounts ignores comments by these usernames: conveyor's own
// account, whose review messages quote test output that could say "recheck".
// Default: none.
func WithIgnoredAccounts(usernames ...string) HandlerOption {
	return func(h *Handler) error {
		for _, u := range usernames {
			if u = strings.TrimSpace(u); u != "" {
				h.ignore = append(h.ignore, u)
			}
		}
		return nil
	}
}

// WithLogger logs each event's outcome to l. Default: slog.Default().
func WithLogger(l *slog.Logger) HandlerOption {
	return func(h *Handler) error {
		if l == nil {
			return errors.New("triggers.WithLogger: nil logger")
		}
		h.logger = l
		return nil
	}
}

// NewHandler returns a Handler starting workflows through s as cfg says.
func NewHandler(s Starter, cfg *Config, opts ...HandlerOption) (*Handler, error) {
	if s == nil || cfg == nil {
		return nil, errors.New("triggers.NewHandler: a starter and a configuration are required")
	}
	h := &Handler{starter: s, cfg: cfg, taskQueue: workflows.TaskQueueBuild, logger: slog.Default()}
	for _, o := range opts {
		if err := o(h); err != nil {
			return nil, err
		}
	}
	return h, nil
}

func ignore(format string, a ...any) (Result, error) {
	return Result{Action: ActionIgnore, Reason: fmt.Sprintf(format, a...)}, nil
}

// Handle acts on one event. An event conveyor does not act on (unknown type,
// project not enabled, a comment that is not a recheck) is ignored with a reason;
// an error means the workflow could not be started (Temporal unreachable) and the
// event should be delivered again.
func (h *Handler) Handle(ctx context.Context, e gerrit.Event) (Result, error) {
	if e.Type == gerrit.TypeDroppedOutput {
		h.logger.Warn("Gerrit dropped events for a slow reader: changes may need a recheck")
		return ignore("Gerrit dropped events")
	}
	name := e.ProjectName()
	p, ok := h.cfg.Project(name)
	if !ok {
		return ignore("project %q is not enabled in the triggers file", name)
	}
	switch e.Type {
	case gerrit.TypePatchsetCreated:
		return h.verify(ctx, p, e, "")
	case gerrit.TypeCommentAdded:
		if e.IsOwnComment() {
			return ignore("the comment is conveyor's own (tagged %s)", gerrit.Tag)
		}
		for _, u := range h.ignore {
			if e.Account.Username == u {
				return ignore("the comment is conveyor's own (by %s)", u)
			}
		}
		if !e.IsRecheck() {
			return ignore("the comment is not a recheck")
		}
		return h.verify(ctx, p, e, e.Key())
	case gerrit.TypeChangeMerged:
		change, ps := e.ChangeAndPatchset()
		key := e.Key()
		if change > 0 {
			// A change merges once, whichever way the event arrives.
			key = fmt.Sprintf("merged/%d/%d", change, ps)
		}
		rev := e.NewRev
		if rev == "" {
			rev = e.PatchSet.Revision
		}
		if !p.BranchEnabled(e.Branch()) {
			return ignore("branch %q of %s is not enabled", e.Branch(), p.Name)
		}
		if !p.Publishes(e.Branch()) {
			return ignore("%s", notPublished(p, e.Branch()))
		}
		return h.batch(ctx, p, e.Branch(), changes.MergedChange{Key: key, Change: change, Patchset: ps, Revision: rev})
	case gerrit.TypeRefUpdated:
		return h.refUpdated(ctx, p, e)
	}
	return ignore("event type %q is not acted on", e.Type)
}

// notPublished says why a build of branch does not publish.
func notPublished(p *Project, branch string) string {
	if !p.PublishOnMerge {
		return fmt.Sprintf("publishOnMerge is off for %s", p.Name)
	}
	return fmt.Sprintf("branch %q of %s does not publish: publishBranches is %v (only reviewed branches publish; add it there to publish it)", branch, p.Name, p.PublishBranches)
}

// verify starts the verification of the event's patchset; key "" for a new
// patchset, the event's key for a recheck.
func (h *Handler) verify(ctx context.Context, p *Project, e gerrit.Event, key string) (Result, error) {
	action := ActionVerify
	if e.Type == gerrit.TypeCommentAdded {
		action = ActionRecheck
	}
	if !p.Verify {
		return ignore("verify is off for %s", p.Name)
	}
	branch := e.Branch()
	if !p.BranchEnabled(branch) {
		return ignore("branch %q of %s is not enabled", branch, p.Name)
	}
	change, ps := e.ChangeAndPatchset()
	if change <= 0 || ps <= 0 {
		return ignore("the event names no change and patchset number")
	}
	if key == "" && action == ActionRecheck {
		return ignore("the recheck carries no creation time or body to tell it from others")
	}
	in := changes.VerifyInput{
		Pipeline: changes.PipelineInput{Project: p.Name, Repo: p.Repo, Ref: gerrit.MakeChangeRef(change, ps), Image: p.Image},
		Change: changes.ChangeTarget{Project: p.Name, Branch: branch, Change: change, Patchset: ps,
			ChangeID: e.Change.ID, Revision: e.PatchSet.Revision},
		Report:  p.Report,
		Trigger: changes.TriggerPatchset,
	}
	if action == ActionRecheck {
		in.Trigger = changes.TriggerRecheck
	}
	_, err := launch.Verification(ctx, h.starter, in, key, launch.OnTaskQueue(h.taskQueue))
	return started(action, changes.VerifyID(p.Name, change, ps, key), err)
}

// batch signals the branch's merge batcher, starting it if needed.
func (h *Handler) batch(ctx context.Context, p *Project, branch string, m changes.MergedChange) (Result, error) {
	target := changes.BatchTarget{Project: p.Name, Repo: p.Repo, Branch: branch, Publish: true, Settings: p.Batch, Image: p.Image}
	id, err := launch.MergeSignal(ctx, h.starter, target, m, launch.OnTaskQueue(h.taskQueue))
	if err != nil {
		return Result{}, err
	}
	return Result{Action: ActionBatch, WorkflowID: id}, nil
}

// refUpdated applies the project's rule for the updated ref.
func (h *Handler) refUpdated(ctx context.Context, p *Project, e gerrit.Event) (Result, error) {
	ref := gerrit.FullRef(e.RefUpdate.RefName)
	action, ok := p.RefAction(ref)
	if !ok {
		return ignore("no refUpdated rule of %s matches %s", p.Name, ref)
	}
	rev := e.RefUpdate.NewRev
	if rev == "" || strings.Trim(rev, "0") == "" {
		return ignore("%s was deleted", ref)
	}
	if !gerrit.IsCommit(rev) {
		return ignore("refUpdate.newRev %q of %s is not a full commit hash", rev, ref)
	}
	if branch, ok := strings.CutPrefix(ref, "refs/heads/"); ok && action != RefVerify && !p.Publishes(branch) {
		return ignore("%s", notPublished(p, branch))
	}
	if action == RefBatch {
		return h.batch(ctx, p, gerrit.ShortBranch(ref), changes.MergedChange{Key: "ref/" + rev, Revision: rev})
	}
	in := changes.PipelineInput{Project: p.Name, Repo: p.Repo, Ref: ref, Publish: action == RefPublish, Image: p.Image}
	_, err := launch.RefPipeline(ctx, h.starter, in, rev, launch.OnTaskQueue(h.taskQueue))
	return started(ActionPublish, launch.RefPipelineID(p.Name, ref, rev), err)
}

// started is the Result of the start of workflow id for action, which returned
// err: an event-derived id is started under launch.PolicyJoinOrRefuse, whose
// refusal says the event's workflow has already run.
func started(action, id string, err error) (Result, error) {
	res := Result{Action: action, WorkflowID: id}
	switch {
	case err == nil:
	case temporal.IsWorkflowExecutionAlreadyStartedError(err):
		res.Duplicate = true
	default:
		return Result{}, err
	}
	return res, nil
}
