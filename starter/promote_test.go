package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/workflows/promotions"

	"github.com/wikimedia/conveyor/activities/contract"
)

// TestPromoteArgumentErrors checks that the promote commands refuse bad
// arguments before dialing Temporal, with a message that says what to give.
func TestPromoteArgumentErrors(t *testing.T) {
	const id = "promote/hello/3f2a9c0d1e4b"
	wantCLIErrors(t, []cliError{
		{[]string{"promote", "approve", id}, "--approver is required: give your name as the promotion plan's approvers list it"},
		{[]string{"promote", "reject", id, "--approver", "  "}, "--approver is required"},
		{[]string{"promote", "rollback", "--approver", "alice"}, "give one promotion id, e.g. promote/hello/3f2a9c0d1e4b"},
		{[]string{"promote", "pause", "pipeline/hello/main", "--approver", "alice"}, `"pipeline/hello/main" is not a promotion id`},
		{[]string{"promote", "status"}, "give one promotion id"},
		{[]string{"promote", "status", id, "extra"}, "got 2 arguments"},
		{[]string{"promote", "start", "--image", "localhost:5000/hello@sha256:abc"}, "service is empty"},
		{[]string{"promote", "start", "--service", "hello", "--image", "localhost:5000/hello:latest"}, "is not by digest"},
		{[]string{"promote", "start", "--service", "hello", "extra"}, `unexpected arguments ["extra"]`},
		{[]string{"promote", "list", "extra"}, `unexpected arguments ["extra"]`},
		// Flags after the id are read: the approver passes, the address is used.
		{[]string{"promote", "approve", id, "--approver", "alice", "--reason", "ok", "--address", "127.0.0.1:1"}, "cannot reach Temporal at 127.0.0.1:1"},
		{[]string{"promote", "approve", id, "--approver", "alice", "--bogus"}, "flag provided but not defined: -bogus"},
	})
}

func TestPromoteHasEveryVerb(t *testing.T) {
	var names []string
	for _, c := range promoteCommand().Subcommands {
		names = append(names, c.Name)
	}
	for _, want := range append([]string{"start", "status", "list"}, promotions.PromotionVerbs...) {
		if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+want+" ") {
			t.Errorf("conveyor promote has no %s (has %v)", want, names)
		}
	}
}

func TestRenderPromotion(t *testing.T) {
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	st := promotions.PromotionStatus{
		Service: "hello", Image: "localhost:5000/hello@sha256:1111", ConfigCommit: "c0ffee", Stage: promotions.PromotionStageProduction,
		Cluster: "codfw", Step: 2, Steps: 4, Approvers: []string{"alice", "bob"}, ApprovedBy: "alice",
		Weights: promotions.CanaryWeights{Desired: 10, CanaryReplicas: 1, StableReplicas: 3, CanaryReady: 1, StableReady: 3, Actual: 25},
		LastAnalysis: &promotions.AnalysisRecord{Analysis: contract.Analysis{Requests: 50, Passed: true, Reason: "readiness only: simulated nodes"},
			Cluster: "codfw", Step: 1, Weight: 1, At: at},
		Clusters: []promotions.ClusterProgress{{Name: "eqiad", Namespace: "hello", State: promotions.ClusterPromoted, Revision: 3},
			{Name: "codfw", Namespace: "hello", Simulated: true, State: promotions.ClusterCanary}},
		Decisions: []promotions.DecisionRecord{
			{Verb: "approve", Approver: "mallory", At: at, Via: "signal", Note: `"mallory" is not an approver`},
			{Verb: "approve", Approver: "alice", Reason: "staging ok", At: at, Via: "update", Accepted: true}},
		Events: []promotions.PromotionEvent{{At: at, Message: "first"}, {At: at, Message: "second"}, {At: at, Message: "third"}},
	}
	var b bytes.Buffer
	if err := renderPromotion(&b, "promote/hello/1111", st, 2); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	wantLines(t, "status", out,
		"production (codfw, step 2 of 4)", "commit c0ffee", "10 % wanted: canary 1 pods (1 ready), stable 3 (3 ready): canary gets 25.0 % of ready pods",
		"codfw step 1 (1 %) passed", "codfw (simulated: readiness only)", "ignored: \"mallory\" is not an approver", "staging ok",
		"second", "third",
	)
	if !regexp.MustCompile(`(?m)^approved by +alice$`).MatchString(out) {
		t.Errorf("status does not say who approved:\n%s", out)
	}
	if strings.Contains(out, "first") {
		t.Errorf("status shows more events than asked:\n%s", out)
	}
}
