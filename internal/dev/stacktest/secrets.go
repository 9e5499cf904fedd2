package stacktest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/internal/client/replay"
	"github.com/wikimedia/conveyor/internal/lib/config"
	commonpb "go.temporal.io/api/common/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/proxy"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"
)

// History returns the whole history of a workflow run ("" runID: the latest),
// as the server keeps it: payloads as they were stored, encrypted or not.
func History(t testing.TB, c client.Client, workflowID, runID string) *historypb.History {
	t.Helper()
	h, _, err := replay.Fetch(context.Background(), c, workflowID, runID)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// SecretFinding is a secret found in the clear in a history event.
type SecretFinding struct {
	// Secret is the index of the secret in the list SecretsInClear was given.
	Secret int
	// EventID and EventType say where it is.
	EventID   int64
	EventType string
	// Form is how it was written: "raw", "json-escaped" or "base64".
	Form string
}

func (f SecretFinding) String() string {
	return fmt.Sprintf("secret #%d (%s) in event %d %s", f.Secret, f.Form, f.EventID, f.EventType)
}

// SecretsInClear returns where h holds any of secrets in a form that needs no
// key to read: in any field of any event (payload data and metadata, failure
// messages, memos, headers, identities), as its bytes, JSON-escaped (a string
// in a json/plain payload) or base64-encoded (a []byte in one).
func SecretsInClear(h *historypb.History, secrets ...string) []SecretFinding {
	var out []SecretFinding
	for _, ev := range h.GetEvents() {
		b, err := proto.Marshal(ev)
		if err != nil {
			panic(err) // a message that came off the wire marshals
		}
		for i, s := range secrets {
			if form := clearForm(b, s); form != "" {
				out = append(out, SecretFinding{Secret: i, EventID: ev.GetEventId(), EventType: ev.GetEventType().String(), Form: form})
			}
		}
	}
	return out
}

// clearForm returns the first form in which b holds secret, or "".
func clearForm(b []byte, secret string) string {
	if secret == "" {
		return ""
	}
	if bytes.Contains(b, []byte(secret)) {
		return "raw"
	}
	if q, _ := json.Marshal(secret); !bytes.Equal(q[1:len(q)-1], []byte(secret)) && bytes.Contains(b, q[1:len(q)-1]) {
		return "json-escaped"
	}
	// At each of the three alignments a base64 text of the secret holds a run
	// of characters that depends on the secret alone.
	for shift := range 3 {
		enc := base64.StdEncoding.EncodeToString(append(make([]byte, shift), secret...))
		lead, trail := (shift*4+2)/3, 4
		if len(enc) <= lead+trail+4 {
			continue
		}
		if bytes.Contains(b, []byte(enc[lead:len(enc)-trail])) {
			return "base64"
		}
	}
	return ""
}

// AssertNoSecretsInClear fails t for each place where h, the history of what,
// holds one of secrets in the clear.
func AssertNoSecretsInClear(t testing.TB, what string, h *historypb.History, secrets ...string) {
	t.Helper()
	for _, f := range SecretsInClear(h, secrets...) {
		t.Errorf("the history of %s holds %s", what, f)
	}
}

// DecodeHistory decodes every payload of h in place with codec (payloads it did
// not encode pass through), as the replay tests need a recorded history.
func DecodeHistory(h *historypb.History, codec converter.PayloadCodec) error {
	return proxy.VisitPayloads(context.Background(), h, proxy.VisitPayloadsOptions{
		Visitor: func(_ *proxy.VisitPayloadsContext, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
			return codec.Decode(ps)
		},
	})
}

// EachHistory calls visit with the history of every workflow run started since
// `since` in each namespace, payloads as the server keeps them, and returns how
// many it read.
func EachHistory(ctx context.Context, namespaces []config.Temporal, since time.Time, visit func(config.Temporal, workflow.Execution, *historypb.History)) (int, error) {
	read := 0
	for _, tc := range namespaces {
		c, err := client.DialContext(ctx, client.Options{HostPort: tc.Address, Namespace: tc.Namespace})
		if err != nil {
			return read, fmt.Errorf("Temporal at %s: %w", tc.Address, err)
		}
		query := fmt.Sprintf("StartTime >= %q", since.UTC().Format(time.RFC3339))
		var token []byte
		for {
			resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: tc.Namespace, Query: query, NextPageToken: token})
			if err != nil {
				c.Close()
				return read, fmt.Errorf("listing the workflows of namespace %s: %w", tc.Namespace, err)
			}
			for _, ex := range resp.GetExecutions() {
				h, exec, err := replay.Fetch(ctx, c, ex.GetExecution().GetWorkflowId(), ex.GetExecution().GetRunId())
				if err != nil {
					c.Close()
					return read, fmt.Errorf("namespace %s: %w", tc.Namespace, err)
				}
				read++
				visit(tc, exec, h)
			}
			if token = resp.GetNextPageToken(); len(token) == 0 {
				break
			}
		}
		c.Close()
	}
	return read, nil
}

// StackSecrets are the credentials and keys the stack keeps under
// <stateDir>/secrets, one a file (a payload key file's keys, one a line): what
// no history may hold in the clear.
func StackSecrets(stateDir string) ([]string, error) {
	dir := filepath.Join(stateDir, "secrets")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading the stack's secrets in %s (make up makes them): %w", dir, err)
	}
	var out []string
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(f[0], "#") {
				out = append(out, f[len(f)-1])
			}
		}
	}
	return out, nil
}
