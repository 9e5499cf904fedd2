package temporalsetup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/internal/client/launch"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wikimedia/conveyor/workflows"
)

// RegisterOptions configures Register.
type RegisterOptions struct {
	// Namespace is conveyor's namespace, created when absent.
	Namespace string
	// Description is the new namespace's description. Default "conveyor's workflows".
	Description string
	// Retention is how long a new namespace keeps closed workflows' histories.
	// Default 30 days: long enough for an SRE to replay last month's promotions.
	Retention time.Duration
	// SearchAttributes are the custom search attributes to register. Default
	// workflows.SearchAttributes.
	SearchAttributes []workflows.SearchAttribute
	// Usable is how long to wait for a new namespace to be served by the
	// frontend with its search attributes. Default 45s.
	Usable time.Duration
	// Progress receives one line per decision. Default io.Discard.
	Progress io.Writer
}

// ErrSearchAttributeType says a search attribute exists with another type than
// conveyor needs; Temporal cannot change a type, so a person must decide.
var ErrSearchAttributeType = errors.New("search attribute registered with another type")

// Register creates o.Namespace when it does not exist, adds the search attributes
// it lacks, and returns once the namespace is usable (workflows can be listed in
// it). c must reach the frontend; its own namespace does not matter.
func Register(ctx context.Context, c client.Client, o RegisterOptions) error {
	if o.Namespace == "" {
		return errors.New("register: no namespace given")
	}
	if o.Description == "" {
		o.Description = "conveyor's workflows"
	}
	if o.Retention == 0 {
		o.Retention = 30 * 24 * time.Hour
	}
	if o.SearchAttributes == nil {
		o.SearchAttributes = workflows.SearchAttributes
	}
	if o.Usable == 0 {
		o.Usable = 45 * time.Second
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	say := func(format string, args ...any) { fmt.Fprintf(o.Progress, "temporal register: "+format+"\n", args...) }
	want := map[string]enumspb.IndexedValueType{}
	for _, sa := range o.SearchAttributes {
		t, err := enumspb.IndexedValueTypeFromString(sa.Type)
		if err != nil {
			return fmt.Errorf("search attribute %s: type %q: %w", sa.Name, sa.Type, err)
		}
		want[sa.Name] = t
	}

	_, err := c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace:                        o.Namespace,
		Description:                      o.Description,
		WorkflowExecutionRetentionPeriod: durationpb.New(o.Retention),
	})
	var exists *serviceerror.NamespaceAlreadyExists
	switch {
	case errors.As(err, &exists):
		say("namespace %s exists", o.Namespace)
	case err != nil:
		return fmt.Errorf("creating the namespace %s: %w", o.Namespace, err)
	default:
		say("namespace %s created (retention %s)", o.Namespace, o.Retention)
	}
	// The frontend learns of a new namespace on its next cache refresh, and a
	// search attribute can only be added once the namespace is known.
	deadline := time.Now().Add(o.Usable)
	// probe: attributes were added, which the frontend applies to starts only
	// from its next namespace cache refresh (10 s by default): until a start
	// carrying them is accepted, the namespace is not usable by conveyor.
	probe := false
	for {
		var added []string
		added, err = addMissing(ctx, c, o.Namespace, want)
		if errors.Is(err, ErrSearchAttributeType) {
			return err
		}
		if err == nil {
			if len(added) > 0 {
				say("search attributes added: %v", added)
				probe = true
			}
			_, err = c.WorkflowService().CountWorkflowExecutions(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: o.Namespace})
		}
		if err == nil && probe {
			err = probeStart(ctx, c, o.Namespace, want)
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the namespace %s is not usable after %s: %w", o.Namespace, o.Usable, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// probeID is the workflow probeStart starts and terminates at once.
const probeID = "conveyor-register-probe"

// probeStart starts a workflow carrying every attribute of want in namespace, on
// a task queue no worker polls, and terminates it: the start is refused until the
// frontend maps the namespace's new attributes.
func probeStart(ctx context.Context, c client.Client, namespace string, want map[string]enumspb.IndexedValueType) error {
	var updates []temporal.SearchAttributeUpdate
	for name, typ := range want {
		switch typ {
		case enumspb.INDEXED_VALUE_TYPE_KEYWORD:
			updates = append(updates, temporal.NewSearchAttributeKeyKeyword(name).ValueSet("probe"))
		case enumspb.INDEXED_VALUE_TYPE_TEXT:
			updates = append(updates, temporal.NewSearchAttributeKeyString(name).ValueSet("probe"))
		case enumspb.INDEXED_VALUE_TYPE_INT:
			updates = append(updates, temporal.NewSearchAttributeKeyInt64(name).ValueSet(0))
		case enumspb.INDEXED_VALUE_TYPE_DOUBLE:
			updates = append(updates, temporal.NewSearchAttributeKeyFloat64(name).ValueSet(0))
		case enumspb.INDEXED_VALUE_TYPE_BOOL:
			updates = append(updates, temporal.NewSearchAttributeKeyBool(name).ValueSet(false))
		case enumspb.INDEXED_VALUE_TYPE_DATETIME:
			updates = append(updates, temporal.NewSearchAttributeKeyTime(name).ValueSet(time.Unix(0, 0)))
		case enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST:
			updates = append(updates, temporal.NewSearchAttributeKeyKeywordList(name).ValueSet([]string{"probe"}))
		}
	}
	nc, err := client.NewClientFromExisting(c, client.Options{Namespace: namespace})
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := launch.ProbeStart(ctx, nc, probeID, temporal.NewSearchAttributes(updates...), "conveyor temporal register: the search attributes are usable"); err != nil {
		return fmt.Errorf("a start with the new search attributes: %w", err)
	}
	return nil
}

// addMissing adds the attributes of want that namespace lacks and returns their
// names; an attribute there with another type is ErrSearchAttributeType.
func addMissing(ctx context.Context, c client.Client, namespace string, want map[string]enumspb.IndexedValueType) ([]string, error) {
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return nil, err
	}
	missing := map[string]enumspb.IndexedValueType{}
	var names []string
	for name, typ := range want {
		got, ok := have.GetCustomAttributes()[name]
		if !ok {
			missing[name] = typ
			names = append(names, name)
			continue
		}
		if got != typ {
			return nil, fmt.Errorf("namespace %s: %s is a %s, conveyor needs a %s: %w", namespace, name, got, typ, ErrSearchAttributeType)
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	slices.Sort(names)
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing})
	var already *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &already) {
		return nil, err
	}
	return names, nil
}

// Dial connects to the frontend with o, retrying until it answers a health check
// or ctx ends. Unlike temporalclient.Dial it does not need o's namespace to exist.
func Dial(ctx context.Context, o client.Options) (client.Client, error) {
	for {
		c, err := client.DialContext(ctx, o)
		if err == nil {
			if _, err = c.CheckHealth(ctx, &client.CheckHealthRequest{}); err == nil {
				return c, nil
			}
			c.Close()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("Temporal's frontend at %s did not answer: %w", o.HostPort, err)
		case <-time.After(time.Second):
		}
	}
}
