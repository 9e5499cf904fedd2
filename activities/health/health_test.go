package health_test

import (
	"os"
	"testing"

	"go.temporal.io/sdk/testsuite"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/health"
)

func TestPingAnswersWithPoolIdentityHostAndMessage(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	a := &health.Activities{Pool: "deploy", Identity: "42@test@deploy"}
	env.RegisterActivity(a)

	v, err := env.ExecuteActivity(a.Ping, contract.PingRequest{Message: "hello"})
	if err != nil {
		t.Fatalf("Ping: %v", err)
	}
	var got contract.PingAnswer
	if err := v.Get(&got); err != nil {
		t.Fatalf("decoding the answer: %v", err)
	}
	if got.TaskQueue == "" {
		t.Errorf("Ping answered without a task queue: %+v", got)
	}
	host, _ := os.Hostname()
	want := contract.PingAnswer{Pool: "deploy", TaskQueue: got.TaskQueue, Identity: "42@test@deploy", Host: host, Message: "hello"}
	if got != want {
		t.Errorf("Ping answered %+v, want %+v", got, want)
	}
}
