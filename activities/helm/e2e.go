package helm

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/heartbeat"
	"github.com/wikimedia/conveyor/activities/internal/helmkit"
	"github.com/wikimedia/conveyor/internal/lib/e2e"
)

// RunE2E runs the repository's smoke checks in order against in.BaseURL from the
// worker host, which reaches ClusterIPs through kube-proxy. Each check is retried for
// a few seconds with a fresh connection per attempt; all are run and reported. Any
// failure is a non-retryable contract.ErrE2EFailed whose message lists each failed
// check with what it wanted and got, and whose details are the RunE2EOutput.
func (a *Activities) RunE2E(ctx context.Context, in contract.RunE2EInput) (contract.RunE2EOutput, error) {
	logger := helmkit.Logger(ctx)
	if len(in.Checks) == 0 {
		logger.Info("No e2e checks configured", "baseURL", in.BaseURL)
		return contract.RunE2EOutput{Results: []contract.CheckResult{}}, nil
	}
	heartbeat.Record(ctx, Progress{Step: "running e2e checks", Detail: fmt.Sprintf("0 of %d done", len(in.Checks))})
	results, err := a.e2e.Run(ctx, in.BaseURL, in.Checks, func(done int, last contract.CheckResult) {
		logger.Info("E2E check done", "check", last.Name, "ok", last.OK, "detail", last.Detail)
		heartbeat.Record(ctx, Progress{Step: "running e2e checks", Detail: fmt.Sprintf("%d of %d done; last: %s", done, len(in.Checks), last.Detail)})
	})
	if err != nil {
		if ctx.Err() != nil {
			return contract.RunE2EOutput{}, ctx.Err()
		}
		return contract.RunE2EOutput{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("running the e2e checks: %v", err), contract.ErrInvalidConfig, err)
	}
	out := contract.RunE2EOutput{Results: results}
	if failed := e2e.Failed(results); len(failed) > 0 {
		msg := fmt.Sprintf("%d of %d e2e checks (e2e in .pipeline/config.yaml) failed against %s:\n%s",
			len(failed), len(results), in.BaseURL, e2e.Summary(failed))
		return out, temporal.NewNonRetryableApplicationError(msg, contract.ErrE2EFailed, nil, out)
	}
	return out, nil
}
