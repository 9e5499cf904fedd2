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

	"github.com/wikimedia/conveyor/activities/contract"
)

// Names of the base image check. It also answers SignalPause and SignalResume.
const (
	// BaseCheckID is the workflow id of the one base image check of a namespace.
	BaseCheckID = "basecheck"
	// SignalBaseCheckConfig delivers a BaseCheckConfig that replaces the current one.
	SignalBaseCheckConfig = "config"
	// SignalCheckNow runs a check at once (the interval then restarts).
	SignalCheckNow = "check-now"
	// QueryBaseCheck returns the BaseCheckStatus.
	QueryBaseCheck = "basecheck"
)

// Defaults of the base image check.
const (
	DefaultBaseCheckEvery = time.Hour
	// baseChecksPerRun bounds a run's history: the check continues as new after.
	baseChecksPerRun = 100
	// rebuildsKept bounds the rebuilds the state remembers.
	rebuildsKept = 50
)

// RebuildTarget is a branch of a project rebuilt when one of its base images
// changes.
type RebuildTarget struct {
	Project string `json:"project"`
	Repo    string `json:"repo"`
	Branch  string `json:"branch"`
	// Publish publishes the rebuilt image.
	Publish bool `json:"publish"`
	// Image is PipelineInput.Image of the rebuild.
	Image string `json:"image,omitempty"`
}

// BaseCheckConfig is what the check watches and how often.
type BaseCheckConfig struct {
	Targets []RebuildTarget `json:"targets"`
	// Every is the interval between checks (DefaultBaseCheckEvery when unset).
	Every time.Duration `json:"every,omitempty"`
}

// BaseRebuild is one rebuild the check started.
type BaseRebuild struct {
	Project    string    `json:"project"`
	Branch     string    `json:"branch"`
	Image      string    `json:"image"`
	From       string    `json:"from"`
	To         string    `json:"to"`
	WorkflowID string    `json:"workflowId"`
	At         time.Time `json:"at"`
	Error      string    `json:"error,omitempty"`
}

// BaseCheckState is what the check carries from one run to the next.
type BaseCheckState struct {
	Paused bool `json:"paused,omitempty"`
	// Digests are the last digests seen, by image, sorted by image.
	Digests   []contract.ImageDigest `json:"digests,omitempty"`
	Checks    int                    `json:"checks"`
	LastCheck time.Time              `json:"lastCheck,omitzero"`
	// Rebuilds are the most recent rebuilds, oldest first.
	Rebuilds []BaseRebuild `json:"rebuilds,omitempty"`
	// Problems are the last check's unreadable targets and images.
	Problems []string `json:"problems,omitempty"`
}

// BaseCheckInput starts (or continues) the check.
type BaseCheckInput struct {
	Config BaseCheckConfig `json:"config"`
	State  BaseCheckState  `json:"state"`
}

// BaseCheckStatus is QueryBaseCheck's answer.
type BaseCheckStatus struct {
	Config    BaseCheckConfig `json:"config"`
	State     BaseCheckState  `json:"state"`
	NextCheck time.Time       `json:"nextCheck,omitzero"`
}

// RebuildID is the workflow id of the rebuild of a target for a base image's new
// digest: a digest rebuilds each target once.
func RebuildID(project, branch, digest string) string {
	d := strings.TrimPrefix(digest, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return fmt.Sprintf("rebuild/%s/%s/%s", project, branch, d)
}

var baseCheckOptions = workflow.ActivityOptions{
	TaskQueue:           workflows.TaskQueueBuild,
	StartToCloseTimeout: 30 * time.Minute,
	HeartbeatTimeout:    2 * time.Minute,
	RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 10 * time.Second, BackoffCoefficient: 2, MaximumAttempts: 5},
}

// BaseImageCheck watches the base images the targets build on. Every interval it
// reads each target's base images (the Blubber config's base of each stage of its
// test and production variants, at the branch head) and asks the registry for their
// digests; a target with a base whose digest differs from the last one seen is
// rebuilt (a Pipeline of the branch head, abandoned to run on its own, id
// RebuildID). An image seen for the first time is recorded, not rebuilt, so the
// first check only records. An image the registry does not answer for keeps its
// last digest: an outage is not a change. The state (the digests) lives in the
// workflow and goes along when it continues as new.
func BaseImageCheck(ctx workflow.Context, in BaseCheckInput) error {
	c := &baseCheck{cfg: in.Config, st: in.State}
	var next time.Time
	if !c.st.LastCheck.IsZero() {
		next = c.st.LastCheck.Add(c.every())
	}
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryBaseCheck, func() (BaseCheckStatus, error) {
		return BaseCheckStatus{Config: c.cfg, State: c.st, NextCheck: next}, nil
	}, workflow.QueryHandlerOptions{Description: "The targets, the digests last seen, the recent rebuilds and the next check"}); err != nil {
		return err
	}
	c.memo(ctx)
	config := workflow.GetSignalChannel(ctx, SignalBaseCheckConfig)
	pause := workflow.GetSignalChannel(ctx, workflows.SignalPause)
	resume := workflow.GetSignalChannel(ctx, workflows.SignalResume)
	now := workflow.GetSignalChannel(ctx, SignalCheckNow)
	checks := 0
	for {
		if workflows.HistoryFull(ctx, checks, baseChecksPerRun) {
			for {
				var cfg BaseCheckConfig
				if !config.ReceiveAsync(&cfg) {
					break
				}
				c.cfg = cfg
			}
			return workflow.NewContinueAsNewError(ctx, BaseImageCheck, BaseCheckInput{Config: c.cfg, State: c.st})
		}
		if !c.st.Paused && !workflow.Now(ctx).Before(next) {
			c.check(ctx)
			checks++
			next = workflow.Now(ctx).Add(c.every())
			continue
		}
		workflow.SetCurrentDetails(ctx, baseCheckDetails(BaseCheckStatus{Config: c.cfg, State: c.st, NextCheck: next}))
		tctx, cancelTimer := workflow.WithCancel(ctx)
		sel := workflow.NewSelector(ctx)
		if !c.st.Paused {
			sel.AddFuture(workflow.NewTimer(tctx, next.Sub(workflow.Now(ctx))), func(workflow.Future) {})
		}
		sel.AddReceive(config, func(ch workflow.ReceiveChannel, _ bool) {
			ch.Receive(ctx, &c.cfg)
			if !c.st.LastCheck.IsZero() {
				next = c.st.LastCheck.Add(c.every())
			}
		})
		sel.AddReceive(pause, func(ch workflow.ReceiveChannel, _ bool) {
			ch.Receive(ctx, nil)
			c.st.Paused = true
			c.memo(ctx)
		})
		sel.AddReceive(resume, func(ch workflow.ReceiveChannel, _ bool) {
			ch.Receive(ctx, nil)
			c.st.Paused = false
			c.memo(ctx)
		})
		sel.AddReceive(now, func(ch workflow.ReceiveChannel, _ bool) {
			ch.Receive(ctx, nil)
			next = workflow.Now(ctx)
		})
		sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
		sel.Select(ctx)
		cancelTimer()
		if ctx.Err() != nil {
			return temporal.NewCanceledError("the base image check was cancelled")
		}
	}
}

// baseCheck is one run's state.
type baseCheck struct {
	cfg BaseCheckConfig
	st  BaseCheckState
}

func (c *baseCheck) every() time.Duration {
	if c.cfg.Every > 0 {
		return c.cfg.Every
	}
	return DefaultBaseCheckEvery
}

// check reads the targets' base images and their digests and rebuilds the
// targets of the images that changed.
func (c *baseCheck) check(ctx workflow.Context) {
	logger := workflow.GetLogger(ctx)
	started := workflow.Now(ctx)
	// A check counts once it is over, so that a query never sees half of one.
	defer func() {
		c.st.Checks++
		c.st.LastCheck = started
		c.memo(ctx)
	}()
	var problems []string
	defer func() { c.st.Problems = problems }()
	actx := workflow.WithActivityOptions(ctx, baseCheckOptions)
	var targets []contract.BaseTarget
	for _, t := range c.cfg.Targets {
		targets = append(targets, contract.BaseTarget{Project: t.Project, Repo: t.Repo, Branch: t.Branch})
	}
	if len(targets) == 0 {
		return
	}
	var bases contract.ResolveBaseImagesOutput
	if err := workflows.Execute(actx, contract.ResolveBaseImages, contract.ResolveBaseImagesInput{Targets: targets}).Get(ctx, &bases); err != nil {
		problems = append(problems, "reading the base images: "+err.Error())
		return
	}
	var images []string
	for _, tb := range bases.Targets {
		if tb.Error != "" {
			problems = append(problems, tb.Error)
		}
		for _, img := range tb.Images {
			if !slices.Contains(images, img) {
				images = append(images, img)
			}
		}
	}
	slices.Sort(images)
	var digests contract.ImageDigestsOutput
	if len(images) > 0 {
		if err := workflows.Execute(actx, contract.ImageDigests, contract.ImageDigestsInput{Images: images}).Get(ctx, &digests); err != nil {
			problems = append(problems, "reading the digests: "+err.Error())
			return
		}
	}

	// changed maps an image to its previous digest; only images seen before count.
	type change struct{ from, to string }
	changed := map[string]change{}
	var seen []contract.ImageDigest
	for _, d := range digests.Digests {
		prev := c.lastDigest(d.Image)
		switch {
		case d.Error != "" || d.Digest == "":
			problems = append(problems, d.Error)
			if prev != "" {
				seen = append(seen, contract.ImageDigest{Image: d.Image, Digest: prev})
			}
		case prev == "":
			logger.Info("Recording a base image seen for the first time", "image", d.Image, "digest", d.Digest)
			seen = append(seen, contract.ImageDigest{Image: d.Image, Digest: d.Digest})
		default:
			if prev != d.Digest {
				changed[d.Image] = change{prev, d.Digest}
			}
			seen = append(seen, contract.ImageDigest{Image: d.Image, Digest: d.Digest})
		}
	}
	slices.SortFunc(seen, func(a, b contract.ImageDigest) int { return strings.Compare(a.Image, b.Image) })
	c.st.Digests = seen

	for i, tb := range bases.Targets {
		if i >= len(c.cfg.Targets) {
			break
		}
		var image string
		for _, img := range tb.Images { // sorted: the first changed image names the rebuild
			if _, ok := changed[img]; ok {
				image = img
				break
			}
		}
		if image == "" {
			continue
		}
		t := c.cfg.Targets[i]
		ch := changed[image]
		rb := BaseRebuild{Project: t.Project, Branch: t.Branch, Image: image, From: ch.from, To: ch.to,
			WorkflowID: RebuildID(t.Project, t.Branch, ch.to), At: workflow.Now(ctx)}
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:            rb.WorkflowID,
			TaskQueue:             workflows.TaskQueueBuild,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
			// The rebuild outlives the check's run (and its continue-as-new).
			ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
			TypedSearchAttributes: temporal.NewSearchAttributes(workflows.ProjectKey.ValueSet(t.Project)),
		})
		f := workflow.ExecuteChildWorkflow(cctx, Pipeline, PipelineInput{
			Project: t.Project, Repo: t.Repo, Ref: "refs/heads/" + t.Branch, Publish: t.Publish, Image: t.Image,
		})
		if err := f.GetChildWorkflowExecution().Get(ctx, nil); err != nil && !temporal.IsWorkflowExecutionAlreadyStartedError(err) {
			rb.Error = err.Error()
		}
		logger.Info("Rebuilding after a base image changed", "project", t.Project, "branch", t.Branch, "image", image,
			"from", ch.from, "to", ch.to, "workflow", rb.WorkflowID)
		c.st.Rebuilds = append(c.st.Rebuilds, rb)
	}
	if len(c.st.Rebuilds) > rebuildsKept {
		c.st.Rebuilds = slices.Clone(c.st.Rebuilds[len(c.st.Rebuilds)-rebuildsKept:])
	}
}

func (c *baseCheck) lastDigest(image string) string {
	for _, d := range c.st.Digests {
		if d.Image == image {
			return d.Digest
		}
	}
	return ""
}

// memo publishes the state a listing shows without asking a worker.
func (c *baseCheck) memo(ctx workflow.Context) {
	summary := fmt.Sprintf("%d targets, %d images, %d checks, %d rebuilds", len(c.cfg.Targets), len(c.st.Digests), c.st.Checks, len(c.st.Rebuilds))
	_ = workflow.UpsertMemo(ctx, map[string]any{MemoPaused: c.st.Paused, MemoSummary: summary})
}
