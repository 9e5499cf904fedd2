package replay

import (
	"context"
	"fmt"
	"os"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"
)

// Fetch reads the whole history of a workflow run from the server (run "": the
// latest run), payloads as the server keeps them, and the execution it belongs
// to.
func Fetch(ctx context.Context, c client.Client, id, run string) (*historypb.History, workflow.Execution, error) {
	if run == "" {
		d, err := c.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			return nil, workflow.Execution{}, fmt.Errorf("workflow %s: %w", id, err)
		}
		run = d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	}
	var h historypb.History
	it := c.GetWorkflowHistory(ctx, id, run, false, 0)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return nil, workflow.Execution{}, fmt.Errorf("reading the history of %s (run %s): %w", id, run, err)
		}
		h.Events = append(h.Events, ev)
	}
	return &h, workflow.Execution{ID: id, RunID: run}, nil
}

// Executions lists up to n executions of namespace matching a visibility query
// (newest first, as the server lists them; "" lists all).
func Executions(ctx context.Context, c client.Client, namespace, query string, n int) ([]workflow.Execution, error) {
	var out []workflow.Execution
	var token []byte
	for n <= 0 || len(out) < n {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: namespace, Query: query, NextPageToken: token})
		if err != nil {
			return out, fmt.Errorf("listing the workflows of namespace %s (query %q): %w", namespace, query, err)
		}
		for _, ex := range resp.GetExecutions() {
			out = append(out, workflow.Execution{ID: ex.GetExecution().GetWorkflowId(), RunID: ex.GetExecution().GetRunId()})
			if n > 0 && len(out) == n {
				break
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	return out, nil
}

// ReadFile reads a history file in the form `temporal workflow show --output
// json` and `conveyor history export` write.
func ReadFile(path string) (*historypb.History, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	if err != nil {
		return nil, fmt.Errorf("%s: not a workflow history in JSON (temporal workflow show --output json): %w", path, err)
	}
	return h, nil
}

// Marshal writes h in that form, indented.
func Marshal(h *historypb.History) ([]byte, error) {
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
