package changes

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wikimedia/conveyor/workflows"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Signal, query and memo of the merge batcher (the memo also of the base image
// check; both pause with workflows.SignalPause).
const (
	// SignalMerged delivers a MergeSignal: a change was merged into the target.
	SignalMerged = "merged"
	// QueryBatcher returns the batcher's BatcherStatus.
	QueryBatcher = "batcher"
	// MemoPaused is the memo field that says whether a trigger workflow is paused,
	// readable from a workflow listing without a worker.
	MemoPaused = "paused"
	// MemoSummary is a one-line memo field describing the trigger's state.
	MemoSummary = "summary"
)

// Defaults of BatchSettings. With about 600 merges a week spread over tens of
// targets and a 45-minute build, a target sees a few merges an hour at peak:
// waiting 10 quiet minutes catches a burst (a stack of changes submitted
// together) and the one-hour cap bounds how long a merged change waits to be
// published when merges keep coming.
const (
	DefaultQuietPeriod      = 10 * time.Minute
	DefaultMaxWait          = time.Hour
	DefaultMaxBatchesPerRun = 25
	DefaultMaxEventsPerRun  = 1000
	// seenKeys bounds the merge keys kept to recognise duplicate deliveries.
	seenKeys = 1000
)

// BatchSettings say when a batch is built.
type BatchSettings struct {
	// QuietPeriod: build once no merge has arrived for this long.
	QuietPeriod time.Duration `json:"quietPeriod,omitempty"`
	// MaxWait: build at the latest this long after the batch's first merge.
	MaxWait time.Duration `json:"maxWait,omitempty"`
	// MaxBatchesPerRun and MaxEventsPerRun bound a run's history: after this many
	// builds or merge signals the batcher continues as new.
	MaxBatchesPerRun int `json:"maxBatchesPerRun,omitempty"`
	MaxEventsPerRun  int `json:"maxEventsPerRun,omitempty"`
}

// WithDefaults fills the unset fields with the package defaults.
func (s BatchSettings) WithDefaults() BatchSettings {
	if s.QuietPeriod <= 0 {
		s.QuietPeriod = DefaultQuietPeriod
	}
	if s.MaxWait <= 0 {
		s.MaxWait = DefaultMaxWait
	}
	if s.MaxBatchesPerRun <= 0 {
		s.MaxBatchesPerRun = DefaultMaxBatchesPerRun
	}
	if s.MaxEventsPerRun <= 0 {
		s.MaxEventsPerRun = DefaultMaxEventsPerRun
	}
	return s
}

// BatchTarget is one branch of one project whose merges are built together.
type BatchTarget struct {
	Project string `json:"project"`
	Repo    string `json:"repo"`
	// Branch is the short branch name, e.g. "main".
	Branch string `json:"branch"`
	// Publish publishes each batch's tested image.
	Publish  bool          `json:"publish"`
	Settings BatchSettings `json:"settings"`
	// Image is PipelineInput.Image of every batch's build.
	Image string `json:"image,omitempty"`
}

// MergedChange is one merge waiting for, or built in, a batch.
type MergedChange struct {
	// Key identifies the merge event: deliveries with a key already seen are
	// ignored.
	Key      string `json:"key"`
	Change   int    `json:"change,omitempty"`
	Patchset int    `json:"patchset,omitempty"`
	// Revision is the merged commit on the branch.
	Revision string    `json:"revision,omitempty"`
	Arrived  time.Time `json:"arrived,omitzero"`
}

// MergeSignal is SignalMerged's payload. It carries the target too, so the
// batcher's repository and settings follow the triggers file.
type MergeSignal struct {
	Target BatchTarget  `json:"target"`
	Change MergedChange `json:"change"`
}

// BatchBuild is one build of a batch.
type BatchBuild struct {
	Seq        int       `json:"seq"`
	WorkflowID string    `json:"workflowId"`
	RunID      string    `json:"runId,omitempty"`
	Changes    []int     `json:"changes"`
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished,omitzero"`
	// Outcome is "running", "succeeded" or "failed".
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`
	// Promotion is the workflow id of the promotion the published image
	// started (promote_after_merge.go); PromotionNote says why none started.
	Promotion     string `json:"promotion,omitempty"`
	PromotionNote string `json:"promotionNote,omitempty"`
}

// BatcherState is what a batcher carries from one run to the next.
type BatcherState struct {
	Paused  bool           `json:"paused,omitempty"`
	Pending []MergedChange `json:"pending,omitempty"`
	// Builds counts the builds started, over all runs.
	Builds    int         `json:"builds"`
	LastBuild *BatchBuild `json:"lastBuild,omitempty"`
	// Seen are the most recent merge keys, oldest first.
	Seen []string `json:"seen,omitempty"`
}

// BatcherInput starts (or continues) a batcher.
type BatcherInput struct {
	Target BatchTarget  `json:"target"`
	State  BatcherState `json:"state"`
}

// BatcherStatus is QueryBatcher's answer.
type BatcherStatus struct {
	Target   BatchTarget  `json:"target"`
	State    BatcherState `json:"state"`
	Building *BatchBuild  `json:"building,omitempty"`
	// Due is when the pending batch will be built, if nothing else arrives.
	Due time.Time `json:"due,omitzero"`
}

// BatcherID is the batcher's workflow id: one per target branch.
func BatcherID(project, branch string) string {
	return "batch/" + project + "/" + branch
}

// MergeBatcher collects the merges of one target branch (SignalMerged, sent with
// signal-with-start) and builds them together: once no merge has come for the
// quiet period, or the batch's first merge has waited the maximum wait, it runs one
// Pipeline, with Publish, of the branch head, which holds every merge of the batch.
// Merges arriving during a build go into the next batch. A key seen before (a
// repeated delivery) is ignored. SignalPause holds builds back without losing
// merges. After MaxBatchesPerRun builds or MaxEventsPerRun merges the batcher
// continues as new, carrying its pending merges, so its history stays bounded.
func MergeBatcher(ctx workflow.Context, in BatcherInput) error {
	b := &batcher{target: in.Target, st: in.State}
	b.target.Settings = b.target.Settings.WithDefaults()
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryBatcher, func() (BatcherStatus, error) {
		return BatcherStatus{Target: b.target, State: b.st, Building: b.building, Due: b.due()}, nil
	}, workflow.QueryHandlerOptions{Description: "The target, the pending merges, the build running and the last one"}); err != nil {
		return err
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, workflows.ProjectKey.ValueSet(b.target.Project))
	b.memo(ctx)

	merged := workflow.GetSignalChannel(ctx, SignalMerged)
	pause := workflow.GetSignalChannel(ctx, workflows.SignalPause)
	resume := workflow.GetSignalChannel(ctx, workflows.SignalResume)
	var build workflow.ChildWorkflowFuture
	var timer workflow.Future
	var timerDue time.Time
	var cancelTimer workflow.CancelFunc
	events, batches := 0, 0
	for {
		if build == nil && (batches >= b.target.Settings.MaxBatchesPerRun || workflows.HistoryFull(ctx, events, b.target.Settings.MaxEventsPerRun)) {
			// Signals already delivered to this run must not be lost.
			for {
				var m MergeSignal
				if !merged.ReceiveAsync(&m) {
					break
				}
				b.add(ctx, m)
			}
			for pause.ReceiveAsync(nil) {
				b.st.Paused = true
			}
			for resume.ReceiveAsync(nil) {
				b.st.Paused = false
			}
			return workflow.NewContinueAsNewError(ctx, MergeBatcher, BatcherInput{Target: b.target, State: b.st})
		}
		if build == nil && !b.st.Paused && len(b.st.Pending) > 0 {
			due := b.due()
			if !workflow.Now(ctx).Before(due) {
				build = b.start(ctx)
				batches++
				continue
			}
			if timer != nil && timerDue.After(due) {
				cancelTimer()
				timer = nil
			}
			if timer == nil {
				var tctx workflow.Context
				tctx, cancelTimer = workflow.WithCancel(ctx)
				timer, timerDue = workflow.NewTimer(tctx, due.Sub(workflow.Now(ctx))), due
			}
		}

		workflow.SetCurrentDetails(ctx, batcherDetails(BatcherStatus{Target: b.target, State: b.st, Building: b.building, Due: b.due()}))
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(merged, func(c workflow.ReceiveChannel, _ bool) {
			var m MergeSignal
			c.Receive(ctx, &m)
			b.add(ctx, m)
			events++
		})
		sel.AddReceive(pause, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			b.st.Paused = true
			b.memo(ctx)
		})
		sel.AddReceive(resume, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			b.st.Paused = false
			b.memo(ctx)
		})
		if build != nil {
			sel.AddFuture(build, func(f workflow.Future) {
				b.finish(ctx, f)
				build = nil
			})
		}
		if timer != nil {
			sel.AddFuture(timer, func(workflow.Future) { timer = nil })
		}
		sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
		sel.Select(ctx)
		if ctx.Err() != nil {
			return temporal.NewCanceledError("the batcher was cancelled")
		}
	}
}

// batcher is one run's state.
type batcher struct {
	target   BatchTarget
	st       BatcherState
	building *BatchBuild
}

// add takes a merge into the pending batch unless its key was seen before.
func (b *batcher) add(ctx workflow.Context, m MergeSignal) {
	if m.Target.Project != "" && m.Target.Repo != "" {
		m.Target.Settings = m.Target.Settings.WithDefaults()
		b.target = m.Target
	}
	c := m.Change
	if c.Key == "" {
		c.Key = fmt.Sprintf("%d/%d/%s", c.Change, c.Patchset, c.Revision)
	}
	if slices.Contains(b.st.Seen, c.Key) {
		workflow.GetLogger(ctx).Info("Ignoring a merge seen before", "key", c.Key, "change", c.Change)
		return
	}
	b.st.Seen = append(b.st.Seen, c.Key)
	if len(b.st.Seen) > seenKeys {
		b.st.Seen = slices.Clone(b.st.Seen[len(b.st.Seen)-seenKeys:])
	}
	c.Arrived = workflow.Now(ctx)
	b.st.Pending = append(b.st.Pending, c)
}

// due is when the pending batch is built: a quiet period after its last merge,
// at most the maximum wait after its first.
func (b *batcher) due() time.Time {
	if len(b.st.Pending) == 0 {
		return time.Time{}
	}
	first, last := b.st.Pending[0].Arrived, b.st.Pending[len(b.st.Pending)-1].Arrived
	quiet := last.Add(b.target.Settings.QuietPeriod)
	capped := first.Add(b.target.Settings.MaxWait)
	if capped.Before(quiet) {
		return capped
	}
	return quiet
}

// start runs the pipeline of the branch head for the pending batch.
func (b *batcher) start(ctx workflow.Context) workflow.ChildWorkflowFuture {
	b.st.Builds++
	bb := &BatchBuild{
		Seq: b.st.Builds,
		// From the input, not the run's own id, so that a replay anywhere
		// produces the same command.
		WorkflowID: fmt.Sprintf("%s/build-%d", BatcherID(b.target.Project, b.target.Branch), b.st.Builds),
		Started:    workflow.Now(ctx),
		Outcome:    "running",
	}
	for _, c := range b.st.Pending {
		bb.Changes = append(bb.Changes, c.Change)
	}
	b.st.Pending = nil
	b.building = bb
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            bb.WorkflowID,
		TaskQueue:             workflows.TaskQueueBuild,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.ProjectKey.ValueSet(b.target.Project)),
	})
	f := workflow.ExecuteChildWorkflow(cctx, Pipeline, PipelineInput{
		Project: b.target.Project, Repo: b.target.Repo, Ref: "refs/heads/" + b.target.Branch, Publish: b.target.Publish,
		Image: b.target.Image,
	})
	var exec workflow.Execution
	if err := f.GetChildWorkflowExecution().Get(ctx, &exec); err == nil {
		bb.RunID = exec.RunID
	}
	workflow.GetLogger(ctx).Info("Building a batch", "build", bb.WorkflowID, "changes", bb.Changes)
	b.memo(ctx)
	return f
}

// finish records the build's end.
func (b *batcher) finish(ctx workflow.Context, f workflow.Future) {
	bb := b.building
	var st PipelineStatus
	err := f.Get(ctx, &st)
	bb.Finished = workflow.Now(ctx)
	bb.Outcome = "succeeded"
	if err != nil {
		bb.Outcome = "failed"
		bb.Error, _, _ = strings.Cut(err.Error(), "\n")
	} else if b.target.Publish {
		promoteAfterMerge(ctx, bb, st)
	}
	b.st.LastBuild, b.building = bb, nil
	b.memo(ctx)
}

// memo publishes the state a listing shows without asking a worker.
func (b *batcher) memo(ctx workflow.Context) {
	summary := fmt.Sprintf("%d builds", b.st.Builds)
	if b.building != nil {
		summary += fmt.Sprintf(", building %d changes", len(b.building.Changes))
	}
	if b.st.LastBuild != nil {
		summary += ", last " + b.st.LastBuild.Outcome
	}
	_ = workflow.UpsertMemo(ctx, map[string]any{MemoPaused: b.st.Paused, MemoSummary: summary})
}
