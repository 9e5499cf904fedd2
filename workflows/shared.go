// Package workflows is the core of conveyor's Temporal workflows: the names the
// workflows share with the workers, the command line and the local stack (worker
// pools, task queues, custom search attributes, the status query, pause and resume),
// the typed call of an activity through its contract handle (Execute), the one
// error text of a status (ErrorDetail), the continue-as-new test (HistoryFull), and
// Ping. The workflows themselves live in one package per domain: workflows/changes,
// workflows/promotions, workflows/migrations; workflows/all lists them.
package workflows

import (
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/sdk/temporal"
)

// The worker pools. Each pool is one task queue served by `conveyor-worker --pools`;
// a pool groups the activities that need the same outside systems and privileges.
const (
	// PoolBuild runs image builds (BuildKit, the registry).
	PoolBuild = "build"
	// PoolDeploy runs deployments (Helm, Kubernetes).
	PoolDeploy = "deploy"
	// PoolMigrate runs migrations (OpenStack).
	PoolMigrate = "migrate"
)

// Pools lists every pool, in the order workers start them and ping visits them.
var Pools = []string{PoolBuild, PoolDeploy, PoolMigrate}

// The task queues, one per pool.
const (
	// TaskQueueBuild is the build pool's task queue.
	TaskQueueBuild = "conveyor-build"
	// TaskQueueDeploy is the deploy pool's task queue.
	TaskQueueDeploy = "conveyor-deploy"
	// TaskQueueMigrate is the migrate pool's task queue.
	TaskQueueMigrate = "conveyor-migrate"
)

// TaskQueue returns the task queue of pool, or "" for a name that is not a pool.
func TaskQueue(pool string) string {
	switch pool {
	case PoolBuild:
		return TaskQueueBuild
	case PoolDeploy:
		return TaskQueueDeploy
	case PoolMigrate:
		return TaskQueueMigrate
	}
	return ""
}

// ParsePools turns a list of pool names, each of which may itself be comma-separated
// ("build,deploy"), into the pools it names, without duplicates and in the order
// given. An empty list means every pool. An unknown name is an error that lists the
// valid ones.
func ParsePools(names []string) ([]string, error) {
	var pools []string
	for _, n := range names {
		for p := range strings.SplitSeq(n, ",") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			if TaskQueue(p) == "" {
				return nil, fmt.Errorf("unknown pool %q: valid pools are %s", p, strings.Join(Pools, ", "))
			}
			if !slices.Contains(pools, p) {
				pools = append(pools, p)
			}
		}
	}
	if len(pools) == 0 {
		return slices.Clone(Pools), nil
	}
	return pools, nil
}

// Names of the custom search attributes the local stack registers with Temporal.
// Workflows set them through the typed keys below; operators filter on them in the
// Web UI and with `temporal workflow list --query`.
const (
	// SearchAttributeProject is the Gerrit project a workflow works for.
	SearchAttributeProject = "ConveyorProject"
	// SearchAttributeChange is the Gerrit change number.
	SearchAttributeChange = "ConveyorChange"
	// SearchAttributePatchset is the Gerrit patchset number.
	SearchAttributePatchset = "ConveyorPatchset"
	// SearchAttributeStep is the step the workflow is in (e.g. "build", "deploy").
	SearchAttributeStep = "ConveyorStep"
	// SearchAttributeStage is the stage being deployed to (e.g. "staging").
	SearchAttributeStage = "ConveyorStage"
	// SearchAttributeApprover lists who approved the workflow's gated steps.
	SearchAttributeApprover = "ConveyorApprover"
)

// Typed keys of the custom search attributes, for workflow.UpsertTypedSearchAttributes
// and client.StartWorkflowOptions.TypedSearchAttributes.
var (
	// ProjectKey is SearchAttributeProject, a Keyword.
	ProjectKey = temporal.NewSearchAttributeKeyKeyword(SearchAttributeProject)
	// ChangeKey is SearchAttributeChange, an Int.
	ChangeKey = temporal.NewSearchAttributeKeyInt64(SearchAttributeChange)
	// PatchsetKey is SearchAttributePatchset, an Int.
	PatchsetKey = temporal.NewSearchAttributeKeyInt64(SearchAttributePatchset)
	// StepKey is SearchAttributeStep, a Keyword.
	StepKey = temporal.NewSearchAttributeKeyKeyword(SearchAttributeStep)
	// StageKey is SearchAttributeStage, a Keyword.
	StageKey = temporal.NewSearchAttributeKeyKeyword(SearchAttributeStage)
	// ApproverKey is SearchAttributeApprover, a KeywordList.
	ApproverKey = temporal.NewSearchAttributeKeyKeywordList(SearchAttributeApprover)
)

// SearchAttribute is a custom search attribute as the temporal CLI registers it.
type SearchAttribute struct {
	// Name is the attribute's name, e.g. "ConveyorProject".
	Name string
	// Type is the type as the temporal CLI spells it: Text, Keyword, Int, Double,
	// Bool, Datetime or KeywordList.
	Type string
}

// Flag returns the attribute as `temporal server start-dev --search-attribute` and
// `temporal operator search-attribute create` take it: NAME=TYPE.
func (a SearchAttribute) Flag() string { return a.Name + "=" + a.Type }

// SearchAttributes lists every custom search attribute with its type, in a fixed
// order, for the local stack to register. A test keeps it in step with the typed keys.
var SearchAttributes = []SearchAttribute{
	{SearchAttributeProject, "Keyword"},
	{SearchAttributeChange, "Int"},
	{SearchAttributePatchset, "Int"},
	{SearchAttributeStep, "Keyword"},
	{SearchAttributeStage, "Keyword"},
	{SearchAttributeApprover, "KeywordList"},
}

// Names of conveyor's own metrics, which workflows record through
// workflow.GetMetricsHandler (never on replay) and the workers serve on /metrics
// (internal/client/telemetry; a timer becomes a histogram in seconds, NAME_seconds,
// a counter NAME_total). docs/operating.md, "Metrics", lists them with their labels.
const (
	// MetricPipelineStepDuration is each pipeline step's duration, by step and
	// outcome (succeeded, failed).
	MetricPipelineStepDuration = "conveyor_pipeline_step_duration"
	// MetricPromotionGateWait is how long a promotion waited at its gate, by
	// service and outcome (approved, rejected, timed-out).
	MetricPromotionGateWait = "conveyor_promotion_gate_wait"
	// MetricPromotionReminders counts the reminders of promotions still waiting
	// (at the gate, or paused), by service and stage.
	MetricPromotionReminders = "conveyor_promotion_reminders"
	// MetricMigrationVMs is how many VMs of a project's migration are in each
	// state (pending, running, done, failed), a gauge.
	MetricMigrationVMs = "conveyor_migration_vms"
)
