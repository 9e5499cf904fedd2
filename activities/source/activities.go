// Package source holds the PrepareSource activity: it fetches a repository at a ref
// into a workspace and reads its pipeline settings with internal/lib/pipelineconfig.
package source

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/heartbeat"
	"github.com/wikimedia/conveyor/internal/lib/pipelineconfig"
	"github.com/wikimedia/conveyor/internal/lib/workspace"
)

// Activities prepares sources in the workspaces of one state directory. The worker
// builds one and registers it as a pointer; workflows call PrepareSource by name
// (contract.PrepareSource.Name).
type Activities struct {
	stateDir string
}

// New returns the activities keeping their workspaces under
// <stateDir>/workspaces.
func New(stateDir string) *Activities {
	return &Activities{stateDir: stateDir}
}

// PrepareSource resolves in.Ref in in.Repo, makes sure the commit is checked out in
// the workspace, and reads and checks the repository's pipeline settings and
// Blubber config. Calling it again is cheap: an existing checkout is reused.
//
// A repository or ref that does not exist fails with the non-retryable type
// contract.ErrSource; invalid settings or Blubber config with
// contract.ErrInvalidConfig or contract.ErrInvalidBlubber and every problem, one a
// line. Other failures (network, disk) are retried by policy.
func (a *Activities) PrepareSource(ctx context.Context, in contract.PrepareSourceInput) (contract.PrepareSourceOutput, error) {
	logger := activity.GetLogger(ctx)
	// A fetch of a large repository may outlast the activity's heartbeat timeout.
	detail := "fetching " + in.Ref + " from " + in.Repo
	stop := func() {}
	if every := heartbeat.ForTimeout(ctx, time.Second); every > 0 {
		heartbeat.Record(ctx, detail)
		stop = heartbeat.Every(ctx, every, func() any { return detail })
	}
	src, dir, err := workspace.Ensure(ctx, a.stateDir, in.Repo, in.Ref)
	if commit := strings.ToLower(in.Commit); commit != "" && (errors.Is(err, workspace.ErrNotFound) || (err == nil && src.Commit != commit)) {
		// The ref moved on (or went) since the event that named the commit.
		logger.Info("The ref no longer points at the commit to build; building the commit alone", "ref", in.Ref, "commit", commit)
		src, dir, err = workspace.Ensure(ctx, a.stateDir, in.Repo, commit)
	}
	stop()
	if err != nil {
		if errors.Is(err, workspace.ErrNotFound) || errors.Is(err, workspace.ErrInvalidRef) {
			// The message says it all; a cause would repeat it in the failure.
			return contract.PrepareSourceOutput{}, temporal.NewNonRetryableApplicationError(err.Error(), contract.ErrSource, nil)
		}
		return contract.PrepareSourceOutput{}, err
	}
	parsed, err := pipelineconfig.ParseSettings(dir, src.Repo)
	if err != nil {
		var invalid *pipelineconfig.InvalidError
		if errors.As(err, &invalid) {
			msg := fmt.Sprintf("the pipeline settings of %s at %s are invalid:\n%s", in.Ref, shortCommit(src.Commit), invalid.Error())
			return contract.PrepareSourceOutput{}, temporal.NewNonRetryableApplicationError(msg, invalid.Type(), nil)
		}
		return contract.PrepareSourceOutput{}, fmt.Errorf("reading the pipeline settings of %s: %w", src.Commit, err)
	}
	logger.Info("Prepared source", "repo", src.Repo, "ref", in.Ref, "commit", src.Commit, "workspace", dir,
		"testVariant", parsed.Settings.TestVariant, "productionVariant", parsed.Settings.ProductionVariant, "image", parsed.Settings.Image)
	return contract.PrepareSourceOutput{Source: contract.Source(src), Settings: parsed.Settings, Variants: parsed.Variants}, nil
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}
