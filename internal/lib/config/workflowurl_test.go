package config_test

import (
	"testing"

	"github.com/wikimedia/conveyor/internal/lib/config"
)

func TestWorkflowURL(t *testing.T) {
	withUI := config.Temporal{UIURL: "http://127.0.0.1:8233/", Namespace: "default"}
	if got, want := withUI.WorkflowURL("ping 1", "run"), "http://127.0.0.1:8233/namespaces/default/workflows/ping%201/run"; got != want {
		t.Errorf("WorkflowURL = %q, want %q", got, want)
	}
	if got := (config.Temporal{}).WorkflowURL("id", "run"); got != "" {
		t.Errorf("WorkflowURL without a UI = %q, want empty", got)
	}
}
