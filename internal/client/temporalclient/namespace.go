package temporalclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wikimedia/conveyor/workflows"
)

// EnsureNamespace registers the Temporal namespace ns (description says whose it
// is) if it does not exist, adds conveyor's custom search attributes
// (workflows.SearchAttributes) it lacks, and waits until the frontend serves it.
func EnsureNamespace(ctx context.Context, c client.Client, ns, description string) error {
	_, err := c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace:                        ns,
		Description:                      description,
		WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour),
	})
	var exists *serviceerror.NamespaceAlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("creating the namespace %s: %w", ns, err)
	}
	attrs := map[string]enumspb.IndexedValueType{}
	for _, a := range workflows.SearchAttributes {
		v, err := enumspb.IndexedValueTypeFromString(a.Type)
		if err != nil {
			return err
		}
		attrs[a.Name] = v
	}
	// The frontend learns of a new namespace on its next cache refresh, and a
	// search attribute can only be added once the namespace is known.
	deadline := time.Now().Add(45 * time.Second)
	for {
		err = addMissingSearchAttributes(ctx, c, ns, attrs)
		if err == nil {
			_, err = c.WorkflowService().CountWorkflowExecutions(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: ns})
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the namespace %s is not usable after 45s: %w", ns, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func addMissingSearchAttributes(ctx context.Context, c client.Client, ns string, want map[string]enumspb.IndexedValueType) error {
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	if err != nil {
		return err
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range want {
		if _, ok := have.GetCustomAttributes()[name]; !ok {
			missing[name] = typ
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: ns, SearchAttributes: missing})
	var already *serviceerror.AlreadyExists
	if errors.As(err, &already) {
		return nil
	}
	return err
}
