// Package wftest holds what the workflow packages' tests share: checks on the test
// environment and sample inputs. Only tests import it.
package wftest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/activities/contract"
)

// PromoCommit is the configuration registry's commit that the sample promotion plan
// is read at.
const PromoCommit = "c0ffee0000000000000000000000000000000000"

// ContinuedAsNew fails the test unless the workflow under env continued as new
// (when says where, for the message), and decodes the next run's input into
// next.
func ContinuedAsNew(t *testing.T, env *testsuite.TestWorkflowEnvironment, when string, next any) {
	t.Helper()
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("error %v, want continue-as-new%s", err, when)
	}
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, next); err != nil {
		t.Fatal(err)
	}
}

// PromotionPlan is a sample promotion plan: staging, two production clusters with
// canary steps.
func PromotionPlan() contract.PromotionPlan {
	return contract.PromotionPlan{
		Service:    "hello",
		Staging:    contract.Target{Cluster: "eqiad", Namespace: "hello-staging"},
		Production: []contract.Target{{Cluster: "eqiad", Namespace: "hello"}, {Cluster: "codfw", Namespace: "hello"}},
		Replicas:   4,
		Steps:      []contract.CanaryStep{{Weight: 10}, {Weight: 50, Pause: 10 * time.Minute}, {Weight: 100}},
		Analysis:   contract.AnalysisPlan{Requests: 50, MaxErrorRatio: 0.01, MaxLatencyP95: 500 * time.Millisecond},
		Approvers:  []string{"alice", "bob"}, ReminderEvery: time.Hour, HistoryMax: 5, SmokePath: "/healthz",
	}
}

// WantContains fails t for each of wants that got, the text of what, lacks.
func WantContains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(got, want) {
			t.Errorf("%s lack %q:\n%s", what, want, got)
		}
	}
}
