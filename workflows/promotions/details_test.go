package promotions

import (
	"testing"
	"time"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/workflows/internal/wftest"
)

// TestGateDetailsSayWhoMayActAndHow: at the gate the details name the approvers,
// staging's smoke result, the deadline and the exact signal and its input.
func TestGateDetailsSayWhoMayActAndHow(t *testing.T) {
	since := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	st := PromotionStatus{Service: "hello", Image: "registry.example.org/hello@sha256:abc", Stage: PromotionStageGate,
		WaitingSince: since, Deadline: since.Add(72 * time.Hour), Approvers: []string{"alice", "bob"},
		Staging: &contract.PromotionSmokeOutput{Detail: "GET http://10.0.0.1:8080/: 200"},
		Events:  []PromotionEvent{{At: since, Message: "waiting at the gate before production"}}}
	got := promotionDetails(st, "promote/hello/abc")
	wftest.WantContains(t, "gate details", got,
		"**Promotion of hello** to production: `registry.example.org/hello@sha256:abc`",
		"**Waiting at the gate before production** since 2026-12-03 10:00:00 UTC, for one of the approvers: alice, bob.",
		"Staging: GET http://10.0.0.1:8080/: 200.",
		"Nobody approving by 2026-12-06 10:00:00 UTC rejects it",
		"Send a Signal → `approve` with `{\"approver\": \"<your name in the plan>\", \"reason\": \"...\"}`",
		"`conveyor promote approve promote/hello/abc --approver NAME --reason TEXT`",
		"the signal `reject`",
		"Last: waiting at the gate before production (2026-12-03 10:00:00 UTC)")
	st.Stage, st.Cluster, st.Step, st.Steps, st.ApprovedBy = PromotionStageProduction, "eqiad", 1, 3, "alice"
	st.Weights = CanaryWeights{Desired: 10, Actual: 9.5}
	wftest.WantContains(t, "production details", promotionDetails(st, "id"),
		"approved by alice: cluster **eqiad**, canary step 1 of 3, 10% of the traffic wanted on the canary (9.5% ready)", "`rollback`")
}
