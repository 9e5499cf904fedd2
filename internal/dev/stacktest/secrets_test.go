package stacktest

import (
	"path/filepath"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/converter"

	"github.com/wikimedia/conveyor/internal/client/payloadcrypt"
)

const testSecret = "Pa$$w0rd\"quoted\"-0123456789"

// started is a history whose first event's input is in.
func started(in ...*commonpb.Payload) *historypb.History {
	return &historypb.History{Events: []*historypb.HistoryEvent{{
		EventId: 1, EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
		Attributes: &historypb.HistoryEvent_WorkflowExecutionStartedEventAttributes{
			WorkflowExecutionStartedEventAttributes: &historypb.WorkflowExecutionStartedEventAttributes{Input: &commonpb.Payloads{Payloads: in}},
		},
	}}}
}

func TestSecretsInClearFindsEachForm(t *testing.T) {
	dc := converter.GetDefaultDataConverter()
	asString, _ := dc.ToPayload(map[string]string{"password": testSecret})
	asBytes, _ := dc.ToPayload(struct{ Key []byte }{[]byte("xx" + testSecret)})
	failed := &historypb.History{Events: []*historypb.HistoryEvent{{
		EventId: 7, EventType: enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED,
		Attributes: &historypb.HistoryEvent_ActivityTaskFailedEventAttributes{
			ActivityTaskFailedEventAttributes: &historypb.ActivityTaskFailedEventAttributes{Failure: &failurepb.Failure{Message: "login as admin/" + testSecret + " refused"}},
		},
	}}}
	for name, tc := range map[string]struct {
		h    *historypb.History
		form string
	}{
		"json string": {started(asString), "json-escaped"},
		"[]byte":      {started(asBytes), "base64"},
		"failure":     {failed, "raw"},
	} {
		got := SecretsInClear(tc.h, "not-there", testSecret)
		if len(got) != 1 || got[0].Secret != 1 || got[0].Form != tc.form || got[0].EventID != tc.h.Events[0].EventId {
			t.Errorf("%s: SecretsInClear = %v, want secret #1 found %s", name, got, tc.form)
		}
	}
}

func TestSecretsInClearAndDecodeHistoryWithTheCodec(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	if err := payloadcrypt.EnsureKeyFile(keys, "k"); err != nil {
		t.Fatal(err)
	}
	codec, err := payloadcrypt.Load("test", keys)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := converter.GetDefaultDataConverter().ToPayload(map[string]string{"password": testSecret})
	enc, err := codec.Encode([]*commonpb.Payload{plain})
	if err != nil {
		t.Fatal(err)
	}
	h := started(enc...)
	if got := SecretsInClear(h, testSecret); len(got) != 0 {
		t.Errorf("SecretsInClear(encrypted) = %v, want nothing", got)
	}
	if err := DecodeHistory(h, codec); err != nil {
		t.Fatal(err)
	}
	if got := SecretsInClear(h, testSecret); len(got) != 1 {
		t.Errorf("after DecodeHistory SecretsInClear = %v, want the secret found", got)
	}
}
