package workflows_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/mock"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/health"
	"github.com/wikimedia/conveyor/workflows"
)

// answerOnQueue mocks health's Ping as a worker of the pool behind each task queue
// would answer it, and records the order of the task queues it was called on.
func answerOnQueue(env *testsuite.TestWorkflowEnvironment, queues *[]string) {
	env.OnActivity(contract.Ping.Name, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req contract.PingRequest) (contract.PingAnswer, error) {
			q := activity.GetInfo(ctx).TaskQueue
			*queues = append(*queues, q)
			return contract.PingAnswer{Pool: strings.TrimPrefix(q, "conveyor-"), TaskQueue: q, Identity: "test", Host: "localhost", Message: req.Message}, nil
		})
}

func TestPingVisitsEveryPoolInOrderByDefault(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&health.Activities{})
	var queues []string
	answerOnQueue(env, &queues)

	env.ExecuteWorkflow(workflows.Ping, workflows.PingInput{Message: "hello"})

	if !env.IsWorkflowCompleted() {
		t.Fatal("Ping did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("Ping failed: %v", err)
	}
	var res workflows.PingResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatalf("decoding the result: %v", err)
	}
	wantQueues := []string{workflows.TaskQueueBuild, workflows.TaskQueueDeploy, workflows.TaskQueueMigrate}
	if strings.Join(queues, " ") != strings.Join(wantQueues, " ") {
		t.Errorf("Ping ran on task queues %v, want %v", queues, wantQueues)
	}
	if len(res.Answers) != len(workflows.Pools) {
		t.Fatalf("Ping returned %d answers, want %d: %+v", len(res.Answers), len(workflows.Pools), res)
	}
	for i, p := range workflows.Pools {
		if a := res.Answers[i]; a.Pool != p || a.Message != "hello" {
			t.Errorf("answer %d = %+v, want pool %q and message %q", i, a, p, "hello")
		}
	}
}

func TestPingVisitsOnlyTheRequestedPoolsInTheGivenOrder(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&health.Activities{})
	var queues []string
	answerOnQueue(env, &queues)

	env.ExecuteWorkflow(workflows.Ping, workflows.PingInput{Pools: []string{"migrate", "build"}, Message: "x"})

	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("Ping failed: %v", err)
	}
	if want := "conveyor-migrate conveyor-build"; strings.Join(queues, " ") != want {
		t.Errorf("Ping ran on task queues %v, want %s", queues, want)
	}
}

func TestPingRejectsAnUnknownPoolWithoutRunningAnything(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&health.Activities{})
	var queues []string
	answerOnQueue(env, &queues)

	env.ExecuteWorkflow(workflows.Ping, workflows.PingInput{Pools: []string{"build", "biuld"}})

	err := env.GetWorkflowError()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != contract.ErrInvalidPool || !appErr.NonRetryable() {
		t.Fatalf("Ping failed with %v, want a non-retryable InvalidPool application error", err)
	}
	for _, want := range []string{`"biuld"`, "build, deploy, migrate"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if len(queues) != 0 {
		t.Errorf("Ping ran activities on %v before rejecting its input", queues)
	}
}

func TestPingFailsNamingThePoolWhoseActivityFailed(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&health.Activities{})
	env.OnActivity(contract.Ping.Name, mock.Anything, mock.Anything).Return(contract.PingAnswer{Pool: "build"}, nil).Once()
	env.OnActivity(contract.Ping.Name, mock.Anything, mock.Anything).Return(contract.PingAnswer{},
		temporal.NewNonRetryableApplicationError("no worker", "Test", nil)).Once()

	env.ExecuteWorkflow(workflows.Ping, workflows.PingInput{Pools: []string{"build", "deploy"}})

	err := env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "pinging pool deploy on task queue conveyor-deploy") {
		t.Fatalf("Ping failed with %v, want an error naming pool deploy", err)
	}
}

func TestPingSaysWhichPoolHasNoWorker(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&health.Activities{})
	env.OnActivity(contract.Ping.Name, mock.Anything, mock.Anything).Return(contract.PingAnswer{Pool: "build"}, nil).Once()
	env.OnActivity(contract.Ping.Name, mock.Anything, mock.Anything).Return(contract.PingAnswer{},
		temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil)).Once()

	env.ExecuteWorkflow(workflows.Ping, workflows.PingInput{Pools: []string{"build", "migrate"}})

	var appErr *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &appErr) || appErr.Type() != contract.ErrPoolUnavailable {
		t.Fatalf("Ping failed with %v, want a PoolUnavailable application error", err)
	}
	if want := "pool migrate did not answer within 30s: no worker serves task queue conveyor-migrate"; appErr.Message() != want {
		t.Errorf("message = %q, want %q", appErr.Message(), want)
	}
}
