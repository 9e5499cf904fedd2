package helm

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"helm.sh/helm/v3/pkg/kube"
	"k8s.io/cli-runtime/pkg/resource"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/heartbeat"
	"github.com/wikimedia/conveyor/activities/internal/helmkit"
)

// waitReady polls until every resource of the release is ready by Helm's rules (the
// ones `helm install --wait` applies: Deployments rolled out, Services with a
// ClusterIP...), heartbeating what it waits for. It gives up for good when a pod fails
// permanently, and with a retryable error when the ready timeout passes.
func (a *Activities) waitReady(ctx context.Context, ns string, resources kube.ResourceList, logger log.Logger) error {
	checker := kube.NewReadyChecker(a.kube, nil, kube.PausedAsReady(true), kube.CheckJobs(true))
	timeout := helmkit.Within(ctx, a.waits.ReadyTimeout)
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(a.waits.Poll)
	defer t.Stop()
	for {
		var waiting []string
		for _, info := range resources {
			ok, err := checker.IsReady(ctx, info)
			switch {
			case err != nil:
				waiting = append(waiting, fmt.Sprintf("%s/%s (%v)", kindOf(info), info.Name, err))
			case !ok:
				waiting = append(waiting, kindOf(info)+"/"+info.Name)
			}
		}
		if len(waiting) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		pods, permanent := a.podProblems(ctx, ns, false)
		heartbeat.Record(ctx, Progress{Step: "waiting for readiness", Detail: "waiting for " + strings.Join(waiting, ", ") + helmkit.PodsDetail(pods)})
		if permanent {
			pods, _ = a.podProblems(ctx, ns, true)
			msg := fmt.Sprintf("release in namespace %s cannot become ready: %s", ns, strings.Join(pods, "; "))
			logger.Warn("Candidate cannot become ready", "pods", pods)
			return temporal.NewNonRetryableApplicationError(msg, contract.ErrCandidateNotReady, nil)
		}
		if time.Now().After(deadline) {
			pods, _ = a.podProblems(ctx, ns, true)
			return fmt.Errorf("release in namespace %s not ready after %s: waiting for %s%s", ns, timeout.Round(time.Second), strings.Join(waiting, ", "), helmkit.PodsDetail(pods))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func kindOf(info *resource.Info) string {
	if info.Mapping != nil {
		return info.Mapping.GroupVersionKind.Kind
	}
	return info.Object.GetObjectKind().GroupVersionKind().Kind
}

// podProblems describes each serving pod of ns that is not ready, and says whether
// one of them failed in a way that waiting cannot fix. verbose adds the pods' recent
// warning events and the log tail of crashed containers.
func (a *Activities) podProblems(ctx context.Context, ns string, verbose bool) ([]string, bool) {
	return helmkit.PodProblems(ctx, a.kube, helmkit.PodQuery{
		Namespace: ns, CrashLimit: a.waits.CrashLimit, InitContainers: true, Verbose: verbose,
	})
}
