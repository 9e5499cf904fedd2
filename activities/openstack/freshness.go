package openstack

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/instanceactions"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"

	"github.com/wikimedia/conveyor/activities/contract"
)

// Whether a snapshot still holds what the source server's disk holds.
//
// The source of truth is Nova's record of the server's instance actions
// (GET /servers/{id}/os-instance-actions), not anything on the server or the
// image: Nova writes an action for every stop, start, reboot, rebuild, resume…
// it performs, the project cannot edit or delete them, and the list comes back
// newest first in the order Nova's database recorded them (created_at, then
// id), so ordering a snapshot against a start needs no clock at all. Server
// metadata and image properties, by contrast, are the project's to change: a
// stop recorded there (MarkerStopped) is for operators to read, never trusted.
//
// A snapshot is tied to its createImage action by the request id Nova answered
// the createImage with (MarkerSnapshotRequest on the image). It holds the
// source's disk as it is now when, in Nova's list:
//   - every action after its createImage is one that cannot touch the disk
//     (afterSnapshotSafe; a stop is not: it means the server ran after the
//     snapshot), and
//   - the nearest stop before it is followed, up to the createImage, only by
//     actions that leave a stopped server stopped (keepsStopped): the server
//     did not run while it was snapshotted.
// Every action not listed (start, reboot, resume, unpause, unshelve, restore,
// rescue, and whatever a later Nova adds) counts as one that may have run the
// server or written its disk, so an unknown action makes a snapshot stale,
// never fresh.

// afterSnapshotSafe are the actions that cannot change a stopped server's disk.
var afterSnapshotSafe = []string{"createImage", "createBackup", "lock", "unlock", "attach_interface", "detach_interface"}

// keepsStopped are the actions after which a stopped server is still stopped
// (some rewrite its disk, which a snapshot taken after them holds).
var keepsStopped = append([]string{"rebuild", "resize", "confirmResize", "revertResize", "migrate", "evacuate",
	"attach_volume", "detach_volume", "swap_volume", "extend_volume"}, afterSnapshotSafe...)

// instanceActions lists the server's instance actions, newest first, as Nova
// recorded them.
func instanceActions(ctx context.Context, c *clients, serverID string) ([]instanceactions.InstanceAction, error) {
	pages, err := instanceactions.List(c.Compute, serverID, nil).AllPages(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the instance actions of server %s in %s: %w", serverID, c.Region, err)
	}
	return instanceactions.ExtractInstanceActions(pages)
}

func actionText(a instanceactions.InstanceAction) string {
	return fmt.Sprintf("%s at %s (request %s)", a.Action, a.StartTime.UTC().Format(time.RFC3339), a.RequestID)
}

// latestStop returns the server's latest stop and, if the server may have run
// since, the newest action that says so. Either may be nil.
func latestStop(actions []instanceactions.InstanceAction) (stop, started *instanceactions.InstanceAction) {
	for i := range actions {
		a := &actions[i]
		if a.Action == "stop" {
			return a, started
		}
		if started == nil && !slices.Contains(keepsStopped, a.Action) {
			started = a
		}
	}
	return nil, started
}

// stoppedSince says why Nova's record does not show the server stopped now
// ("" when it does): a stop with nothing after it that could have started it.
func stoppedSince(actions []instanceactions.InstanceAction) string {
	stop, touched := latestStop(actions)
	switch {
	case touched != nil && stop != nil:
		return fmt.Sprintf("Nova records %s after its latest stop (%s)", actionText(*touched), actionText(*stop))
	case touched != nil:
		return fmt.Sprintf("Nova records %s and no stop after it", actionText(*touched))
	case stop == nil:
		return "Nova records no stop of it"
	}
	return ""
}

// snapshotStale says why the snapshot made by the createImage with requestID
// does not hold the server's disk as it is now ("" when it does).
func snapshotStale(actions []instanceactions.InstanceAction, requestID string) string {
	if requestID == "" {
		return "it has no " + contract.MarkerSnapshotRequest + " property, so Nova's record cannot place it after the source's latest stop"
	}
	var touched *instanceactions.InstanceAction
	for i := range actions {
		a := &actions[i]
		if a.Action == "createImage" && a.RequestID == requestID {
			if touched != nil {
				return fmt.Sprintf("Nova records %s after the snapshot's createImage (%s)", actionText(*touched), actionText(*a))
			}
			stop, before := latestStop(actions[i+1:])
			switch {
			case before != nil:
				return fmt.Sprintf("it was taken while the server could run: Nova records %s before the createImage (%s) and no stop between", actionText(*before), actionText(*a))
			case stop == nil:
				return fmt.Sprintf("Nova records no stop before its createImage (%s)", actionText(*a))
			}
			return ""
		}
		if !slices.Contains(afterSnapshotSafe, a.Action) {
			touched = a // the oldest such action is the one to report
		}
	}
	return fmt.Sprintf("Nova records no createImage with request %s among the server's %d latest actions", requestID, len(actions))
}

// sourceChangedSince says why the source server's disk may differ from its
// snapshot imageID ("" when it cannot). A snapshot made before conveyor recorded
// its createImage request (MarkerSnapshotRequest) is placed by its created_at
// instead: a weaker test across two services' clocks, kept so that migrations
// begun before it can finish.
func sourceChangedSince(ctx context.Context, src *clients, serverID, imageID string) (string, error) {
	im, err := images.Get(ctx, src.Image, imageID).Extract()
	if notFound(err) {
		return "the snapshot is gone from " + src.Region, nil
	}
	if err != nil {
		return "", fmt.Errorf("reading snapshot %s in %s: %w", imageID, src.Region, err)
	}
	actions, err := instanceActions(ctx, src, serverID)
	if err != nil {
		return "", err
	}
	if req := prop(im, contract.MarkerSnapshotRequest); req != "" {
		return snapshotStale(actions, req), nil
	}
	for _, a := range actions {
		if a.StartTime.After(im.CreatedAt) && !slices.Contains(afterSnapshotSafe, a.Action) {
			return fmt.Sprintf("Nova records %s after the snapshot was created (%s)", actionText(a), im.CreatedAt.UTC().Format(time.RFC3339)), nil
		}
	}
	return "", nil
}
