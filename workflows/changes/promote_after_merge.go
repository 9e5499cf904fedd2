package changes

import (
	"fmt"
	"strings"
	"time"

	"github.com/wikimedia/conveyor/workflows"
	"github.com/wikimedia/conveyor/workflows/promotions"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/activities/contract"
)

// versionPromoteAfterMerge marks the merge batcher's histories that may start
// a promotion after a published build; older histories replay without it.
const versionPromoteAfterMerge = "promote-after-merge"

// promoteAfterMergeOptions: the batcher asks the configuration registry once,
// briefly; when no deploy worker answers it goes on without a promotion.
var promoteAfterMergeOptions = workflow.ActivityOptions{
	TaskQueue:              workflows.TaskQueueDeploy,
	ScheduleToCloseTimeout: 5 * time.Minute,
	StartToCloseTimeout:    time.Minute,
	RetryPolicy: &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumAttempts: 3,
		NonRetryableErrorTypes: []string{contract.ErrPromotionConfig}},
}

// promoteAfterMerge starts the Promotion of a successful change-merged build's
// published image when the configuration registry has a plan for its service,
// and records it (or why not) in bb. The promotion is an abandoned child: it
// outlives the batcher's run, and its id (PromotionID) comes from the image, so
// a retried or repeated start finds it instead of starting a second one.
func promoteAfterMerge(ctx workflow.Context, bb *BatchBuild, st PipelineStatus) {
	image, service, ok := publishedImage(st)
	if !ok {
		return
	}
	if workflow.GetVersion(ctx, versionPromoteAfterMerge, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	logger := workflow.GetLogger(ctx)
	var cfg contract.PromotionConfigOutput
	err := workflows.Execute(workflow.WithActivityOptions(ctx, promoteAfterMergeOptions), contract.PromotionConfig,
		contract.PromotionConfigInput{Service: service, Optional: true}).Get(ctx, &cfg)
	switch {
	case err != nil:
		bb.PromotionNote = "not promoted: reading the promotion plan of " + service + ": " + workflows.ErrorDetail(err)
		logger.Warn("Not promoting the published image", "service", service, "error", err)
		return
	case cfg.Absent:
		bb.PromotionNote = "not promoted: the configuration registry has no promotion plan for " + service
		return
	}
	id := promotions.PromotionID(service, image)
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID: id,
		TaskQueue:  workflows.TaskQueueDeploy,
		// A failed promotion of the same image may run again; a successful one
		// is not repeated when a later merge builds the same digest.
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.ProjectKey.ValueSet(st.Project), workflows.StageKey.ValueSet(promotions.PromotionStageConfig)),
	})
	f := workflow.ExecuteChildWorkflow(cctx, promotions.Promotion, promotions.PromotionInput{
		Service: service, Image: image, ConfigRef: cfg.Commit,
		Source: promotions.PromotionSource{Project: st.Project, Commit: st.Commit, Pipeline: bb.WorkflowID},
	})
	if err := f.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		bb.PromotionNote = fmt.Sprintf("not started: %s: %s", id, workflows.ErrorDetail(err))
		logger.Warn("Starting the promotion failed", "promotion", id, "error", err)
		return
	}
	bb.Promotion = id
	logger.Info("Started the promotion of the published image", "promotion", id, "image", image)
}

// publishedImage is the image a publishing pipeline published, by digest, and
// the service it belongs to: its repository under the registry
// (localhost:5000/hello:tag@sha256:… → localhost:5000/hello@sha256:…, hello).
func publishedImage(st PipelineStatus) (image, service string, ok bool) {
	if len(st.Published) == 0 {
		return "", "", false
	}
	name, digest, found := strings.Cut(st.Published[0], "@")
	if !found || !strings.HasPrefix(digest, "sha256:") {
		return "", "", false
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i]
	}
	service = name
	if host, rest, found := strings.Cut(name, "/"); found && (strings.ContainsAny(host, ".:") || host == "localhost") {
		service = rest
	}
	if service == "" {
		return "", "", false
	}
	return name + "@" + digest, service, true
}
