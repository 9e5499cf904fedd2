package launch

import (
	"context"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/workflows"
)

// PingID is the default workflow id of a ping started at now:
// conveyor-ping-<UTC time to the millisecond>.
func PingID(now time.Time) string {
	return "conveyor-ping-" + now.UTC().Format("20060102T150405.000")
}

// Ping starts the Ping workflow with id ("" for PingID of now) on the queue of
// in's first pool (of workflows.Pools' first when in names none, as for the
// workflow empty means every pool), under PolicyServerDefault. The workflow times out after
// timeout: a ping nobody serves should not stay open after its caller gave up.
func Ping(ctx context.Context, s Starter, id string, timeout time.Duration, in workflows.PingInput) (client.WorkflowRun, error) {
	first := workflows.Pools[0]
	if len(in.Pools) > 0 {
		first = in.Pools[0]
	}
	if id == "" {
		id = PingID(time.Now())
	}
	return start{id: id, queue: workflows.TaskQueue(first), policy: PolicyServerDefault,
		workflow: workflows.Ping, input: in, what: "the Ping workflow", timeout: timeout}.execute(ctx, s, nil)
}
