package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/activities/contract"
)

// Future is the pending result of an activity started with Execute.
type Future[Out any] struct {
	f workflow.Future
}

// Execute starts activity a with input in, under the activity options of ctx.
func Execute[In, Out any](ctx workflow.Context, a contract.Activity[In, Out], in In) Future[Out] {
	return Future[Out]{f: workflow.ExecuteActivity(ctx, a.Name, in)}
}

// Get waits for the activity and stores its output in *out, unless out is nil.
func (f Future[Out]) Get(ctx workflow.Context, out *Out) error {
	if _, none := any(out).(*contract.Nothing); none || out == nil {
		return f.f.Get(ctx, nil)
	}
	return f.f.Get(ctx, out)
}

// Untyped is the underlying workflow.Future, for a workflow.Selector.
func (f Future[Out]) Untyped() workflow.Future { return f.f }
