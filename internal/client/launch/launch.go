// Package launch is conveyor's one client-side gateway to its workflows: every
// start, signal, update and query sent from outside Temporal (the command line,
// the Gerrit triggers, the migrate verbs, ping) goes through it, so a workflow
// gets the same id, task queue, id policies and search attributes whichever way
// it is asked for. A test of this package keeps the other client-side packages
// from calling the Temporal client's start, signal, update and query methods
// themselves.
//
// There is one function per intent (Pipeline, Verification, MergeSignal,
// Promotion, CloudMigration, Ping…), each knowing its workflow's id function,
// task queue, Policy and search attributes, and three generic ones for the rest:
// Signal, Query and Update.
package launch

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// Starter starts workflows: the part of client.Client the start functions use.
type Starter interface {
	ExecuteWorkflow(ctx context.Context, options client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error)
	SignalWithStartWorkflow(ctx context.Context, workflowID, signalName string, signalArg any,
		options client.StartWorkflowOptions, workflow any, workflowArgs ...any) (client.WorkflowRun, error)
}

var _ Starter = client.Client(nil)

// Policy is what a start does when a workflow of its id already exists: Conflict
// for a running one, Reuse for a closed one. The start functions each use one of
// the Policy variables below; they are the only places the id policies are set.
type Policy struct {
	Conflict enumspb.WorkflowIdConflictPolicy
	Reuse    enumspb.WorkflowIdReusePolicy
	// ErrorWhenRunning makes a start that a running workflow refuses an error
	// (serviceerror.WorkflowExecutionAlreadyStarted) instead of that run.
	ErrorWhenRunning bool
}

// The id policies of conveyor's starts.
var (
	// PolicyJoinOrRerun joins a running workflow of the id and runs a closed one
	// again: asking twice while it runs is one run, asking after it finished is a
	// new one. The command line's pipeline and promotion starts.
	PolicyJoinOrRerun = Policy{
		Conflict: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		Reuse:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}
	// PolicyJoinOrRefuse joins a running workflow of the id and refuses to run a
	// closed one again (WorkflowExecutionAlreadyStarted): the ids derived from a
	// Gerrit event, whose every redelivery must start nothing new. The triggers'
	// verifications and ref pipelines.
	PolicyJoinOrRefuse = Policy{
		Conflict: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		Reuse:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
	}
	// PolicyOnce refuses, with an error, a start while the workflow runs and after
	// it closed: a pair of deployments is migrated once. CloudMigration.
	PolicyOnce = Policy{
		Conflict:         enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		Reuse:            enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		ErrorWhenRunning: true,
	}
	// PolicyRefuseRunning refuses, with an error, a start while the workflow runs;
	// a closed one is left to the server's default reuse policy (allow duplicate):
	// a project's migration can be started again once it ended. ProjectMigration.
	PolicyRefuseRunning = Policy{
		Conflict:         enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		ErrorWhenRunning: true,
	}
	// PolicySignalOrRestart is for signal-with-start, which signals a running
	// workflow whatever the conflict policy: a closed one is started again with the
	// signal. The branch's merge batcher.
	PolicySignalOrRestart = Policy{
		Reuse: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}
	// PolicyServerDefault sets nothing: the server's defaults apply. The base
	// image check's signal-with-start, whose one id is always signalled, and ping,
	// whose id is new each time.
	PolicyServerDefault = Policy{}
)

// Option changes a start.
type Option func(*settings) error

type settings struct {
	queue string
}

// OnTaskQueue starts the workflow on queue. Default: the queue of the pool that
// runs the workflow, as each start function says. An empty queue is refused.
func OnTaskQueue(queue string) Option {
	return func(s *settings) error {
		if queue == "" {
			return errors.New("launch.OnTaskQueue: empty task queue")
		}
		s.queue = queue
		return nil
	}
}

// start is one ExecuteWorkflow of a start function.
type start struct {
	id, queue string
	policy    Policy
	attrs     []temporal.SearchAttributeUpdate
	workflow  any
	input     any
	// what names the workflow in the error of a failed start ("starting
	// <what>"), and is its static summary.
	what string
	// timeout is the workflow's execution timeout; 0 for none.
	timeout time.Duration
}

// execute starts st with its options changed by opts.
func (st start) execute(ctx context.Context, s Starter, opts []Option) (client.WorkflowRun, error) {
	o, err := startOptions(st.id, st.queue, st.policy, st.attrs, opts)
	if err != nil {
		return nil, err
	}
	o.WorkflowExecutionTimeout = st.timeout
	// The Web UI and `temporal workflow describe` show it beside the id.
	o.StaticSummary = st.what
	run, err := s.ExecuteWorkflow(ctx, o, st.workflow, st.input)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", st.what, err)
	}
	return run, nil
}

// startOptions are the options of a start of id on queue (unless an option says
// another) under p, with attrs (none: no search attributes).
func startOptions(id, queue string, p Policy, attrs []temporal.SearchAttributeUpdate, opts []Option) (client.StartWorkflowOptions, error) {
	s := settings{queue: queue}
	for _, o := range opts {
		if err := o(&s); err != nil {
			return client.StartWorkflowOptions{}, fmt.Errorf("starting %s: %w", id, err)
		}
	}
	o := client.StartWorkflowOptions{
		ID:                                       id,
		TaskQueue:                                s.queue,
		WorkflowIDConflictPolicy:                 p.Conflict,
		WorkflowIDReusePolicy:                    p.Reuse,
		WorkflowExecutionErrorWhenAlreadyStarted: p.ErrorWhenRunning,
	}
	if len(attrs) > 0 {
		o.TypedSearchAttributes = temporal.NewSearchAttributes(attrs...)
	}
	return o, nil
}
