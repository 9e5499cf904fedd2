package launch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/wikimedia/conveyor/workflows/promotions"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/workflows"
)

// Promotion starts the promotion of in.Image, or returns the one already running
// for the same image: the workflow id comes from the service and the digest.
func Promotion(ctx context.Context, c client.Client, in promotions.PromotionInput) (client.WorkflowRun, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	attrs := []temporal.SearchAttributeUpdate{workflows.StageKey.ValueSet(promotions.PromotionStageConfig)}
	if in.Source.Project != "" {
		attrs = append(attrs, workflows.ProjectKey.ValueSet(in.Source.Project))
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       promotions.PromotionID(in.Service, in.Image),
		TaskQueue:                workflows.TaskQueueDeploy,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		TypedSearchAttributes:    temporal.NewSearchAttributes(attrs...),
	}, promotions.Promotion, in)
	if err != nil {
		return nil, fmt.Errorf("starting the promotion of %s: %w", in.Image, err)
	}
	return run, nil
}

// PromotionStatus asks a promotion for its status query.
func PromotionStatus(ctx context.Context, c client.Client, workflowID, runID string) (promotions.PromotionStatus, error) {
	var st promotions.PromotionStatus
	v, err := c.QueryWorkflow(ctx, workflowID, runID, workflows.QueryStatus)
	if err != nil {
		return st, fmt.Errorf("querying %s: %w", workflowID, err)
	}
	if err := v.Get(&st); err != nil {
		return st, fmt.Errorf("decoding the status of %s: %w", workflowID, err)
	}
	return st, nil
}

// ErrRefused wraps a promotion's refusal of a verb (its update validator's
// answer): nothing was recorded.
var ErrRefused = errors.New("refused")

// PromotionDecide sends verb (approve, reject, pause, resume, promote-full,
// rollback) to a running promotion as an update and returns the status after
// it was applied. A refusal is an error wrapping ErrRefused with the reason.
func PromotionDecide(ctx context.Context, c client.Client, workflowID, verb string, d promotions.PromotionDecision) (promotions.PromotionStatus, error) {
	var st promotions.PromotionStatus
	if !slices.Contains(promotions.PromotionVerbs, verb) {
		return st, fmt.Errorf("unknown verb %q: want one of %s", verb, strings.Join(promotions.PromotionVerbs, ", "))
	}
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   workflowID,
		UpdateName:   verb,
		Args:         []any{d},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = h.Get(ctx, &st)
	}
	if err != nil {
		var app *temporal.ApplicationError
		if errors.As(err, &app) {
			return st, fmt.Errorf("%w: %s", ErrRefused, app.Message())
		}
		return st, fmt.Errorf("sending %s to %s: %w", verb, workflowID, err)
	}
	return st, nil
}
