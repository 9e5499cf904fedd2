package workflows_test

import (
	"errors"
	"fmt"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/workflows"
)

func TestErrorDetail(t *testing.T) {
	fault := temporal.NewNonRetryableApplicationError("No valid host was found", "DestinationServerError", nil)
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"plain", errors.New("disk full"), "disk full"},
		{"activity words without the SDK's notes", temporal.NewNonRetryableApplicationError("3 tests failed:\nFAIL x", "TestsFailed", nil), "3 tests failed:\nFAIL x"},
		{"a step and its fault", temporal.NewApplicationErrorWithOptions("wait-active", "VMStepFailed", temporal.ApplicationErrorOptions{Cause: fault}), "wait-active: No valid host was found"},
		{"a cause the message quotes", temporal.NewNonRetryableApplicationError("reading x: boom", "InvalidChart", errors.New("boom")), "reading x: boom"},
		{"wrapped by the workflow", fmt.Errorf("deploying: %w", fault), "No valid host was found"},
		{"an empty message", temporal.NewApplicationError("", "Empty"), "(type: Empty, retryable: true)"},
	} {
		if got := workflows.ErrorDetail(tt.err); got != tt.want {
			t.Errorf("%s: ErrorDetail = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestShortID(t *testing.T) {
	if got := workflows.ShortID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"); got != "0f1e2d3c4b" {
		t.Errorf("ShortID = %q", got)
	}
	if got := workflows.ShortID("abc"); got != "abc" {
		t.Errorf("ShortID(abc) = %q", got)
	}
}
