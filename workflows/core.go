package workflows

import (
	"errors"
	"strings"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// QueryStatus is the query that the pipeline and the promotion answer with their
// status.
const QueryStatus = "status"

// Signals that every long-running trigger or promotion understands.
const (
	// SignalPause stops the workflow from starting new work (builds, the next
	// promotion step); events are still collected.
	SignalPause = "pause"
	// SignalResume undoes SignalPause.
	SignalResume = "resume"
)

// ErrorDetail is what a status says about err: the message of its outermost
// application error followed by those of the application errors it wraps (an
// activity's own words, e.g. a failed test's output tail, or a VM migration's step
// and the fault that failed it), without the SDK's type and retry notes; or err's
// text when it holds no application error. A cause whose message the outer one
// already quotes is not repeated.
func ErrorDetail(err error) string {
	var app *temporal.ApplicationError
	if !errors.As(err, &app) {
		return err.Error()
	}
	msg := app.Message()
	if cause := app.Unwrap(); cause != nil {
		if c := ErrorDetail(cause); !strings.Contains(msg, c) {
			msg = strings.TrimPrefix(msg+": "+c, ": ")
		}
	}
	if msg == "" {
		return strings.TrimSpace(err.Error())
	}
	return msg
}

// ShortID is the first ten characters of id without its dashes: a run id or a
// commit hash short enough for a tag or a log line.
func ShortID(id string) string {
	id = strings.ReplaceAll(id, "-", "")
	if len(id) > 10 {
		return id[:10]
	}
	return id
}

// HistoryFull says a workflow should continue as new: it has used limit of what
// it may use in one run (events, checks, decisions: used counts them), or Temporal
// suggests it because the history grows large.
func HistoryFull(ctx workflow.Context, used, limit int) bool {
	return used >= limit || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
}
