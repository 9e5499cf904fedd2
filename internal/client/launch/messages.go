package launch

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
)

// Signaller signals workflows: the part of client.Client Signal uses.
type Signaller interface {
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg any) error
}

// Querier queries workflows: the part of client.Client Query uses.
type Querier interface {
	QueryWorkflow(ctx context.Context, workflowID, runID, queryType string, args ...any) (converter.EncodedValue, error)
}

// Updater sends updates to workflows: the part of client.Client Update uses.
type Updater interface {
	UpdateWorkflow(ctx context.Context, options client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error)
}

var (
	_ Signaller = client.Client(nil)
	_ Querier   = client.Client(nil)
	_ Updater   = client.Client(nil)
)

// Signal sends signal with arg (nil for none) to the current run of workflowID.
func Signal(ctx context.Context, s Signaller, workflowID, signal string, arg any) error {
	if err := s.SignalWorkflow(ctx, workflowID, "", signal, arg); err != nil {
		return fmt.Errorf("signalling %s to %s: %w", signal, workflowID, err)
	}
	return nil
}

// Query asks run runID of workflowID ("" for its latest run) the query with args
// and decodes the answer into a fresh Out. The Temporal error of a failed query
// stays reachable with errors.As (serviceerror.NotFound for no such workflow).
func Query[Out any](ctx context.Context, q Querier, workflowID, runID, query string, args ...any) (Out, error) {
	var out Out
	v, err := q.QueryWorkflow(ctx, workflowID, runID, query, args...)
	if err != nil {
		return out, fmt.Errorf("querying %s: %w", workflowID, err)
	}
	if err := v.Get(&out); err != nil {
		return out, fmt.Errorf("decoding the answer of %s to %s: %w", workflowID, query, err)
	}
	return out, nil
}

// ErrRefused is what a workflow's refusal of an update wraps: its validator (or
// its handler) answered with an error, and nothing was recorded.
var ErrRefused = errors.New("refused")

// RefusedError is a workflow's refusal of an update, with the workflow's own
// reason. It wraps ErrRefused.
type RefusedError struct {
	WorkflowID, Update string
	// Reason is the message of the validator's error.
	Reason string
}

// Error returns "refused: " and the reason.
func (e *RefusedError) Error() string { return ErrRefused.Error() + ": " + e.Reason }

// Unwrap returns ErrRefused.
func (e *RefusedError) Unwrap() error { return ErrRefused }

// Update sends the update updateName with arg to the current run of workflowID,
// waits for it to complete and returns its result decoded into Out. A refusal
// (the update's validator or handler returned an error) is a *RefusedError, which
// wraps ErrRefused; any other failure keeps Temporal's error reachable with
// errors.As (serviceerror.NotFound for no such workflow).
func Update[Out any](ctx context.Context, u Updater, workflowID, updateName string, arg any) (Out, error) {
	var out Out
	h, err := u.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   workflowID,
		UpdateName:   updateName,
		Args:         []any{arg},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = h.Get(ctx, &out)
	}
	if err != nil {
		var app *temporal.ApplicationError
		if errors.As(err, &app) {
			return out, &RefusedError{WorkflowID: workflowID, Update: updateName, Reason: app.Message()}
		}
		return out, fmt.Errorf("sending %s to %s: %w", updateName, workflowID, err)
	}
	return out, nil
}
