package stacktest

import (
	"context"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/internal/client/temporalsetup"
	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/workflows"
)

// Namespace brings the stack up if needed, makes sure the Temporal namespace ns
// exists with conveyor's custom search attributes, and returns the stack's
// configuration pointed at it. Tests whose workflows must not reach other
// workers on the shared dev server (or whose workflows no worker should run)
// use a namespace of their own.
func Namespace(t testing.TB, ns string) config.Config {
	t.Helper()
	return namespaceOn(t, Config(t), ns, false)
}

// ProdNamespace is Namespace on the production Temporal (ProdTemporal). It
// returns once the frontend accepts a workflow with conveyor's search attributes
// in ns: Temporal's server learns a namespace's new attributes when it next
// refreshes its namespace cache (every 10 s by default), and until then refuses
// such starts ("no mapping defined for search attribute"). The probe workflow is
// terminated at once.
func ProdNamespace(t testing.TB, ns string) config.Config {
	t.Helper()
	return namespaceOn(t, ProdTemporal(t), ns, true)
}

func namespaceOn(t testing.TB, cfg config.Config, ns string, probe bool) config.Config {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{HostPort: cfg.Temporal.Address, Namespace: cfg.Temporal.Namespace})
	if err != nil {
		t.Fatalf("Temporal at %s (make up): %v", cfg.Temporal.Address, err)
	}
	defer c.Close()
	if err := temporalsetup.Register(ctx, c, temporalsetup.RegisterOptions{Namespace: ns, Description: "conveyor tests", Retention: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	cfg.Temporal.Namespace = ns
	if probe {
		probeSearchAttributes(t, cfg, ns)
	}
	return cfg
}

// probeSearchAttributes waits until a start with conveyor's search attributes is
// accepted in ns.
func probeSearchAttributes(t testing.TB, cfg config.Config, ns string) {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: cfg.Temporal.Address, Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	WaitFor(t, time.Minute, "namespace "+ns+" accepting conveyor's search attributes", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: "stacktest-search-attribute-probe", TaskQueue: "stacktest-probe",
			TypedSearchAttributes: temporal.NewSearchAttributes(workflows.ChangeKey.ValueSet(1), workflows.ApproverKey.ValueSet([]string{"probe"})),
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING,
		}, "StacktestProbe")
		if err != nil {
			return err
		}
		return c.TerminateWorkflow(ctx, run.GetID(), run.GetRunID(), "stacktest: search attribute probe")
	})
}
