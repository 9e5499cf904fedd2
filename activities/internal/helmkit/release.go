package helmkit

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
)

var digestRE = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// SplitImage splits an image by digest, repository@sha256:<64 hex digits>; ok is
// false for anything else (a tag, a malformed digest, no repository).
func SplitImage(image string) (repo, digest string, ok bool) {
	repo, digest, ok = strings.Cut(image, "@")
	if !ok || repo == "" || !digestRE.MatchString(digest) {
		return "", "", false
	}
	return repo, digest, true
}

// Apply is one install or upgrade of a release.
type Apply struct {
	// Name and Namespace are the release's.
	Name, Namespace string
	// Timeout bounds Helm's own operation (it does not wait for readiness).
	Timeout time.Duration
	// MaxHistory is how many revisions an upgrade keeps.
	MaxHistory int
	// Interrupted is the description a pending revision is closed with.
	Interrupted string
}

// InstallOrUpgrade installs the release, or upgrades it from last, its last revision
// (nil when it has none). Neither waits for readiness.
//
// It recovers what an earlier attempt left: a revision still pending (pending-install,
// pending-upgrade, pending-rollback) belongs to an attempt that died, since the
// release's namespace has no other writer; Helm refuses to upgrade it, so it is
// closed as failed first. A release uninstalled with its history kept is installed
// afresh in its place.
func InstallOrUpgrade(ctx context.Context, cfg *action.Configuration, last *release.Release, r Apply, ch *chart.Chart, vals map[string]any) (*release.Release, error) {
	switch {
	case last == nil:
		in := action.NewInstall(cfg)
		in.ReleaseName, in.Namespace, in.Timeout = r.Name, r.Namespace, r.Timeout
		return in.RunWithContext(ctx, ch, vals)
	case last.Info.Status.IsPending():
		last.SetStatus(release.StatusFailed, r.Interrupted)
		if err := cfg.Releases.Update(last); err != nil {
			return nil, fmt.Errorf("closing the interrupted revision %d of release %s/%s: %w", last.Version, r.Namespace, r.Name, err)
		}
	case last.Info.Status == release.StatusUninstalled || last.Info.Status == release.StatusUninstalling:
		in := action.NewInstall(cfg)
		in.ReleaseName, in.Namespace, in.Timeout, in.Replace = r.Name, r.Namespace, r.Timeout, true
		return in.RunWithContext(ctx, ch, vals)
	}
	up := action.NewUpgrade(cfg)
	up.Namespace, up.Timeout, up.MaxHistory = r.Namespace, r.Timeout, r.MaxHistory
	return up.RunWithContext(ctx, r.Name, ch, vals)
}

// LastRevision is the last revision of release name, nil when it has none.
func LastRevision(cfg *action.Configuration, name string) (*release.Release, error) {
	last, err := cfg.Releases.Last(name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, nil
	}
	return last, err
}

// Uninstall removes release name, running its delete hooks, and orphans what its
// objects own (the caller deletes that, with the grace period it wants: the kubelet
// keeps the one of a pod's first deletion). A release that is not there is fine.
func Uninstall(cfg *action.Configuration, name string, timeout time.Duration) error {
	u := action.NewUninstall(cfg)
	u.IgnoreNotFound, u.Timeout, u.DeletionPropagation = true, timeout, "orphan"
	if _, err := u.Run(name); err != nil && !errors.Is(err, driver.ErrReleaseNotFound) {
		return err
	}
	return nil
}
