package triggers

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/wikimedia/conveyor/internal/stacktest"
)

// recordHistoryAs keeps the history of workflow id for the replay tests of
// workflows/ when CONVEYOR_RECORD_HISTORIES is set (see
// workflows/testdata/histories/README.md).
func recordHistoryAs(t *testing.T, c client.Client, id, file string) {
	t.Helper()
	if os.Getenv("CONVEYOR_RECORD_HISTORIES") == "" {
		return
	}
	var h historypb.History
	it := c.GetWorkflowHistory(context.Background(), id, "", false, 0)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&h)
	if err != nil {
		t.Fatal(err)
	}
	root, err := stacktest.RepoDir()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "workflows", "testdata", "histories", file)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s", path)
}
