// Package pools says what runs on which worker pool: the one place a new workflow or
// activities package is added so that `conveyor-worker` serves it.
package pools

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"

	"github.com/wikimedia/conveyor/workflows/changes"
	"github.com/wikimedia/conveyor/workflows/migrations"
	"github.com/wikimedia/conveyor/workflows/promotions"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/activities/baseimages"
	"github.com/wikimedia/conveyor/activities/buildkit"
	"github.com/wikimedia/conveyor/activities/gerrit"
	"github.com/wikimedia/conveyor/activities/health"
	"github.com/wikimedia/conveyor/activities/helm"
	"github.com/wikimedia/conveyor/activities/openstack"
	"github.com/wikimedia/conveyor/activities/promote"
	"github.com/wikimedia/conveyor/activities/registry"
	"github.com/wikimedia/conveyor/activities/source"
	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/workflows"
)

// Deps is what an activities constructor may use. Each pool's worker builds its own.
type Deps struct {
	// Pool is the pool being served.
	Pool string
	// Identity is the pool's worker identity.
	Identity string
	// Config is the whole configuration, for the outside systems' addresses.
	Config config.Config
	// Logger is the worker's logger.
	Logger *slog.Logger
}

// Entry is one line of the registry: workflows and an activities struct that run on
// the same pools.
type Entry struct {
	// Pools lists the pools the entry runs on.
	Pools []string
	// Workflows are workflow functions, registered under their function names.
	Workflows []any
	// Activities builds the activities struct, once per worker, holding its clients;
	// it is registered as a pointer so that each exported method is an activity. If
	// it implements io.Closer it is closed when the worker stops. Nil means none.
	Activities func(ctx context.Context, d Deps) (any, error)
}

// Registry says what runs on which pool. Add a line per workflow or activities
// package; a test checks every workflow in all.Workflows is here.
var Registry = []Entry{
	{
		// The change pipeline's workflow runs on the build pool, with the
		// activities that fetch sources, build images and publish them.
		Pools:     []string{workflows.PoolBuild},
		Workflows: []any{changes.Pipeline},
		Activities: func(_ context.Context, d Deps) (any, error) {
			return source.New(d.Config.StateDir), nil
		},
	},
	{
		Pools: []string{workflows.PoolBuild},
		Activities: func(ctx context.Context, d Deps) (any, error) {
			return buildkit.New(ctx, d.Config)
		},
	},
	{
		Pools: []string{workflows.PoolBuild},
		Activities: func(_ context.Context, d Deps) (any, error) {
			return registry.New(d.Config)
		},
	},
	{
		// The Gerrit triggers' workflows run on the build pool: the verification
		// that runs a patchset's pipeline and reports to Gerrit, the merge batcher
		// and the base image check, with the activities that post reviews and read
		// base images and their digests.
		Pools:     []string{workflows.PoolBuild},
		Workflows: []any{changes.ChangeVerification, changes.MergeBatcher, changes.BaseImageCheck},
		Activities: func(_ context.Context, d Deps) (any, error) {
			return gerrit.New(d.Config)
		},
	},
	{
		Pools: []string{workflows.PoolBuild},
		Activities: func(_ context.Context, d Deps) (any, error) {
			return baseimages.New(d.Config)
		},
	},
	{
		// The deploy pool installs candidates with Helm and checks them from outside
		// the pod: its hosts must reach the cluster's ClusterIPs.
		Pools: []string{workflows.PoolDeploy},
		Activities: func(_ context.Context, d Deps) (any, error) {
			return helm.New(d.Config)
		},
	},
	{
		// The staged promotion's activities run on the deploy pool: they reach every
		// production cluster's API server and pods (promotion.clusters) and read the
		// configuration registry (promotion.configRepo). The Promotion workflow
		// runs there too.
		Pools:     []string{workflows.PoolDeploy},
		Workflows: []any{promotions.Promotion},
		Activities: func(_ context.Context, d Deps) (any, error) {
			return promote.New(d.Config)
		},
	},
	{
		// The OpenStack parallel-cloud migration, its stages and the automatic
		// per-project VM migration, and the stages' task workflows (test battery,
		// projects driver, cleanup) run on the migrate pool, with the OpenStack
		// activities (activities/openstack: one Keystone, a client per deployment).
		Pools: []string{workflows.PoolMigrate},
		Workflows: []any{migrations.CloudMigration, migrations.MigrationStage, migrations.ProjectMigration, migrations.VMMigration,
			migrations.TestBattery, migrations.ProjectsMigration, migrations.Cleanup},
		Activities: func(_ context.Context, d Deps) (any, error) {
			return openstack.New(d.Config)
		},
	},
	{
		// Ping is registered on every pool so that `conveyor ping --pools P` needs
		// only P's worker; it runs on the first pool it pings.
		Pools:     workflows.Pools,
		Workflows: []any{workflows.Ping},
		Activities: func(_ context.Context, d Deps) (any, error) {
			return &health.Activities{Pool: d.Pool, Identity: d.Identity}, nil
		},
	},
}

// AutoUpgrade are the workflows that, under worker versioning, move to the
// current worker build at their next workflow task: those that live for
// months (the migration and its children, the merge batcher, the base image
// check), whose changes therefore go behind workflow.GetVersion as they always
// have. Every other workflow is Pinned: it finishes on the build it started on
// (docs/operating.md, "Rolling out a worker build").
var AutoUpgrade = []any{
	changes.MergeBatcher, changes.BaseImageCheck,
	migrations.CloudMigration, migrations.MigrationStage, migrations.ProjectsMigration, migrations.ProjectMigration,
	migrations.VMMigration, migrations.TestBattery, migrations.Cleanup,
}

// Behavior is wf's versioning behavior: AutoUpgrade for those listed there,
// Pinned for the others.
func Behavior(wf any) workflow.VersioningBehavior {
	p := reflect.ValueOf(wf).Pointer()
	if slices.ContainsFunc(AutoUpgrade, func(a any) bool { return reflect.ValueOf(a).Pointer() == p }) {
		return workflow.VersioningBehaviorAutoUpgrade
	}
	return workflow.VersioningBehaviorPinned
}

// Set is what one pool's worker registers.
type Set struct {
	Workflows  []any
	Activities []any
}

// For builds what runs on pool from the Registry.
func For(ctx context.Context, pool string, d Deps) (Set, error) {
	if workflows.TaskQueue(pool) == "" {
		return Set{}, fmt.Errorf("unknown pool %q", pool)
	}
	var s Set
	for _, e := range Registry {
		if !slices.Contains(e.Pools, pool) {
			continue
		}
		s.Workflows = append(s.Workflows, e.Workflows...)
		if e.Activities == nil {
			continue
		}
		a, err := e.Activities(ctx, d)
		if err != nil {
			_ = s.Close()
			return Set{}, fmt.Errorf("building the activities of pool %s: %w", pool, err)
		}
		s.Activities = append(s.Activities, a)
	}
	return s, nil
}

// Register registers the set's workflows and activities with r; versioned (the
// worker uses worker deployment versioning) gives each workflow its Behavior.
func (s Set) Register(r worker.Registry, versioned bool) {
	for _, w := range s.Workflows {
		if !versioned {
			r.RegisterWorkflow(w)
			continue
		}
		r.RegisterWorkflowWithOptions(w, workflow.RegisterOptions{VersioningBehavior: Behavior(w)})
	}
	for _, a := range s.Activities {
		// Each struct's exported methods become activities under their names, the
		// contract's names; Close, which every closer has, is never called as one.
		r.RegisterActivityWithOptions(a, activity.RegisterOptions{DisableAlreadyRegisteredCheck: true, SkipInvalidStructFunctions: true})
	}
}

// Close closes every activities struct that is an io.Closer.
func (s Set) Close() error {
	var errs []error
	for _, a := range s.Activities {
		if c, ok := a.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}
