package launch

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/wikimedia/conveyor/workflows/promotions"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/workflows"
)

// Promotion starts the promotion of in.Image, or returns the one already running
// for the same image: the workflow id comes from the service and the digest
// (promotions.PromotionID), and PolicyJoinOrRerun applies. It runs on the deploy
// pool's queue unless an option says another.
func Promotion(ctx context.Context, s Starter, in promotions.PromotionInput, opts ...Option) (client.WorkflowRun, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	attrs := []temporal.SearchAttributeUpdate{workflows.StageKey.ValueSet(promotions.PromotionStageConfig)}
	if in.Source.Project != "" {
		attrs = append(attrs, workflows.ProjectKey.ValueSet(in.Source.Project))
	}
	return start{id: promotions.PromotionID(in.Service, in.Image), queue: workflows.TaskQueueDeploy, policy: PolicyJoinOrRerun,
		attrs: attrs, workflow: promotions.Promotion, input: in, what: "the promotion of " + in.Image}.execute(ctx, s, opts)
}

// PromotionStatus asks a promotion for its status query.
func PromotionStatus(ctx context.Context, q Querier, workflowID, runID string) (promotions.PromotionStatus, error) {
	return Query[promotions.PromotionStatus](ctx, q, workflowID, runID, workflows.QueryStatus)
}

// PromotionDecide sends verb (approve, reject, pause, resume, promote-full,
// rollback) to a running promotion as an update and returns the status after
// it was applied. A refusal is a *RefusedError (errors.Is ErrRefused) with the
// reason.
func PromotionDecide(ctx context.Context, u Updater, workflowID, verb string, d promotions.PromotionDecision) (promotions.PromotionStatus, error) {
	if !slices.Contains(promotions.PromotionVerbs, verb) {
		return promotions.PromotionStatus{}, fmt.Errorf("unknown verb %q: want one of %s", verb, strings.Join(promotions.PromotionVerbs, ", "))
	}
	return Update[promotions.PromotionStatus](ctx, u, workflowID, verb, d)
}
