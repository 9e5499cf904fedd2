// Package replay replays workflow histories against the workflow code compiled
// into the running binary, with the data and failure converters and the
// interceptors its workers use: what `conveyor history replay` and the test
// suite's replay of what ran on the stack share. A history replays OK when
// today's code makes the same commands the recorded run made; otherwise the
// result names the first event that disagrees.
package replay

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"regexp"
	"runtime"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/internal/client/telemetry"
)

// Replayer replays histories against a fixed set of workflows.
type Replayer struct {
	workflows []any
	types     map[string]bool
	dc        converter.DataConverter
	fc        converter.FailureConverter
	logger    tlog.Logger
}

// New returns a Replayer of workflows (registered under their functions' names,
// as the workers register them) decoding payloads with dc and failures with fc
// (nil: the SDK's defaults).
func New(workflows []any, dc converter.DataConverter, fc converter.FailureConverter) *Replayer {
	r := &Replayer{workflows: workflows, types: map[string]bool{}, dc: dc, fc: fc,
		logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}
	for _, wf := range workflows {
		r.types[FunctionName(wf)] = true
	}
	return r
}

// FunctionName is the name Temporal registers a workflow function under: its
// name without the package.
func FunctionName(fn any) string {
	name := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
	if i := strings.LastIndex(name, "."); i >= 0 {
		name = name[i+1:]
	}
	return strings.TrimSuffix(name, "-fm")
}

// Knows says whether the replayer has workflow type typ.
func (r *Replayer) Knows(typ string) bool { return r.types[typ] }

// Result is the outcome of one replay.
type Result struct {
	// Name is what was replayed: a file, or a workflow id and run.
	Name string
	// Type is the workflow type; Events the number of events.
	Type   string
	Events int
	// Skipped says why the history was not replayed (a type this binary does not
	// have); Err why it failed (nil: OK).
	Skipped string
	Err     error
	// EventID and EventType locate the first event that disagrees with the
	// replayed code, when the failure is a mismatch (0 otherwise).
	EventID   int64
	EventType string
}

// OK says whether the history replayed without a mismatch.
func (res Result) OK() bool { return res.Err == nil && res.Skipped == "" }

// String is the result as `conveyor history replay` prints it: one line, then
// the failure's details indented.
func (res Result) String() string {
	switch {
	case res.Skipped != "":
		return fmt.Sprintf("SKIP  %s: %s", res.Name, res.Skipped)
	case res.Err == nil:
		return fmt.Sprintf("OK    %s (%s, %d events)", res.Name, res.Type, res.Events)
	case res.EventID > 0:
		return fmt.Sprintf("FAIL  %s (%s, %d events): the first mismatch is at event %d (%s)\n      %v",
			res.Name, res.Type, res.Events, res.EventID, res.EventType, res.Err)
	}
	return fmt.Sprintf("FAIL  %s (%s, %d events): %v", res.Name, res.Type, res.Events, res.Err)
}

// Replay replays h, the history of the execution exec (its id and run id, as
// the workflow saw them: code that reads its own id replays as it ran; zero
// values use the SDK's placeholders).
func (r *Replayer) Replay(name string, h *historypb.History, exec workflow.Execution) Result {
	res := Result{Name: name, Events: len(h.GetEvents())}
	first := h.GetEvents()
	if len(first) == 0 || first[0].GetEventType() != enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED {
		res.Err = errors.New("not a workflow history: the first event is not WorkflowExecutionStarted")
		return res
	}
	res.Type = first[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName()
	if !r.Knows(res.Type) {
		res.Skipped = fmt.Sprintf("workflow type %q is not one of this binary's workflows", res.Type)
		return res
	}
	if res.Err = r.replay(h, exec); res.Err == nil {
		return res
	}
	res.EventID, res.EventType = locate(h, res.Err)
	return res
}

// replay runs one replay with a new replayer (a replayer keeps the state of the
// executions it replayed).
func (r *Replayer) replay(h *historypb.History, exec workflow.Execution) error {
	ics, err := telemetry.ReplayInterceptors()
	if err != nil {
		return err
	}
	wr, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{DataConverter: r.dc, FailureConverter: r.fc, Interceptors: ics})
	if err != nil {
		return err
	}
	for _, wf := range r.workflows {
		wr.RegisterWorkflow(wf)
	}
	return wr.ReplayWorkflowHistoryWithOptions(r.logger, h, worker.ReplayWorkflowHistoryOptions{OriginalExecution: exec})
}

// locate finds the event a mismatch is about from the SDK's message (err): one it
// prints ("history event is ActivityTaskScheduled: (ActivityId:5, …)", "missing
// replay command for …"), found by its type and the attribute that tells events
// of that type apart (activity, timer, child workflow id, marker name…), or one
// whose id it quotes ("scheduleEventID: 17"). 0 when the message names none (an
// extra command the code makes, say).
func locate(h *historypb.History, err error) (int64, string) {
	events := h.GetEvents()
	msg := err.Error()
	for _, m := range printedEventRE.FindAllStringSubmatch(msg, -1) {
		typ, attrs := m[1], m[2]
		for _, ev := range events {
			if ev.GetEventType().String() != typ {
				continue
			}
			if key := eventKey(ev); key == "" || strings.Contains(attrs, key) {
				return ev.GetEventId(), typ
			}
		}
	}
	for _, m := range eventIDRE.FindAllStringSubmatch(msg, -1) {
		for _, ev := range events {
			if fmt.Sprint(ev.GetEventId()) == m[1] {
				return ev.GetEventId(), ev.GetEventType().String()
			}
		}
	}
	return 0, ""
}

// printedEventRE finds the history events the SDK's mismatch messages print.
var printedEventRE = regexp.MustCompile(`(?:history event is|missing replay command for) ([A-Za-z]+): \(([^)]*)`)

// eventIDRE finds the event ids the SDK's messages quote ("scheduleEventID: 17"),
// not the ids inside the events they print ("WorkflowTaskCompletedEventId:4").
var eventIDRE = regexp.MustCompile(`(?i)\b(?:scheduled?EventID|event position|event ID)[:= ]+(\d+)`)

// eventKey is the attribute, as the SDK prints it, that tells a command event
// from the others of its type; "" for a type that has none.
func eventKey(ev *historypb.HistoryEvent) string {
	switch {
	case ev.GetActivityTaskScheduledEventAttributes() != nil:
		return "ActivityId:" + ev.GetActivityTaskScheduledEventAttributes().GetActivityId() + ","
	case ev.GetTimerStartedEventAttributes() != nil:
		return "TimerId:" + ev.GetTimerStartedEventAttributes().GetTimerId() + ","
	case ev.GetStartChildWorkflowExecutionInitiatedEventAttributes() != nil:
		return "WorkflowId:" + ev.GetStartChildWorkflowExecutionInitiatedEventAttributes().GetWorkflowId() + ","
	case ev.GetMarkerRecordedEventAttributes() != nil:
		return "MarkerName:" + ev.GetMarkerRecordedEventAttributes().GetMarkerName() + ","
	case ev.GetSignalExternalWorkflowExecutionInitiatedEventAttributes() != nil:
		return "SignalName:" + ev.GetSignalExternalWorkflowExecutionInitiatedEventAttributes().GetSignalName() + ","
	}
	return ""
}
