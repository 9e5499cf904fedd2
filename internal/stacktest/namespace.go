package stacktest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wikimedia/conveyor/internal/config"
	"github.com/wikimedia/conveyor/workflows"
)

// Namespace brings the stack up if needed, makes sure the Temporal namespace ns
// exists with conveyor's custom search attributes, and returns the stack's
// configuration pointed at it. Tests whose workflows must not reach other
// workers on the shared dev server (or whose workflows no worker should run)
// use a namespace of their own.
func Namespace(t testing.TB, ns string) config.Config {
	t.Helper()
	cfg := Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{HostPort: cfg.Temporal.Address, Namespace: cfg.Temporal.Namespace})
	if err != nil {
		t.Fatalf("Temporal at %s (make up): %v", cfg.Temporal.Address, err)
	}
	defer c.Close()
	if err := ensureNamespace(ctx, c, ns); err != nil {
		t.Fatal(err)
	}
	cfg.Temporal.Namespace = ns
	return cfg
}

func ensureNamespace(ctx context.Context, c client.Client, ns string) error {
	_, err := c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace:                        ns,
		Description:                      "conveyor tests",
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
