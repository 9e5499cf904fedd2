package devstack

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

// TestDevServerOnAChosenPortWithItsNamespace starts a dev server on a port picked
// before it runs, with a namespace of its own, as a test of a process started
// before Temporal does; and checks the options refuse what they cannot use.
func TestDevServerOnAChosenPortWithItsNamespace(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	s, err := StartDevServer(context.Background(), WithPort(port), WithNamespace("conveyor-chosen"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	if want := "127.0.0.1:" + strconv.Itoa(port); s.Address != want {
		t.Errorf("Address = %s, want %s", s.Address, want)
	}
	c, err := client.Dial(client.Options{HostPort: s.Address, Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WorkflowService().DescribeNamespace(context.Background(), &workflowservice.DescribeNamespaceRequest{Namespace: "conveyor-chosen"}); err != nil {
		t.Errorf("the namespace of WithNamespace: %v", err)
	}
	for _, tc := range []struct {
		opt  DevServerOption
		want string
	}{
		{WithPort(0), "devstack.WithPort: want a port from 1 to 65535, got 0"},
		{WithPort(70000), "got 70000"},
		{WithNamespace(" "), "devstack.WithNamespace: empty namespace"},
	} {
		if _, err := StartDevServer(context.Background(), tc.opt); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("StartDevServer: %v, want an error containing %q", err, tc.want)
		}
	}
}
