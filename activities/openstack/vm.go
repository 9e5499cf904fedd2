package openstack

import (
	"context"
	"fmt"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/instanceactions"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/activities/contract"
)

// pair returns the source and destination clients of a VM's migration, scoped to
// its project.
func (a *Activities) pair(ctx context.Context, vm contract.VMRef) (src, dst *clients, err error) {
	if vm.Project == "" || vm.From == "" || vm.To == "" || vm.ServerID == "" || vm.Key == "" {
		return nil, nil, badInput("the VM migration input needs project, from, to, serverId and key; got %+v", vm)
	}
	if vm.From == vm.To {
		return nil, nil, badInput("from and to are both %q: a migration goes between two deployments", vm.From)
	}
	if src, err = a.clients(ctx, vm.From, vm.Project); err != nil {
		return nil, nil, err
	}
	if dst, err = a.clients(ctx, vm.To, vm.Project); err != nil {
		return nil, nil, err
	}
	return src, dst, nil
}

// sourceServer reads the source server; a server that is gone is a bad input.
func sourceServer(ctx context.Context, src *clients, vm contract.VMRef) (*servers.Server, error) {
	s, err := servers.Get(ctx, src.Compute, vm.ServerID).Extract()
	if notFound(err) {
		return nil, badInput("server %s (%s) does not exist in %s", vm.ServerName, vm.ServerID, src.Region)
	}
	if err != nil {
		return nil, fmt.Errorf("reading server %s in %s: %w", vm.ServerID, src.Region, err)
	}
	return s, nil
}

// MigrateStopSource marks the source server with the migration's key and stops it.
// A server that is already SHUTOFF is left as it is. Once it is stopped, the stop
// Nova recorded last is written to the source's metadata (MarkerStopped) for
// operators; conveyor itself reads Nova's record (freshness.go).
func (a *Activities) MigrateStopSource(ctx context.Context, vm contract.VMRef) (contract.StopSourceOutput, error) {
	src, _, err := a.pair(ctx, vm)
	if err != nil {
		return contract.StopSourceOutput{}, err
	}
	s, err := sourceServer(ctx, src, vm)
	if err != nil {
		return contract.StopSourceOutput{}, err
	}
	if s.Metadata[contract.MarkerMigration] != vm.Key {
		if _, err := servers.UpdateMetadata(ctx, src.Compute, vm.ServerID, servers.MetadataOpts{contract.MarkerMigration: vm.Key}).Extract(); err != nil {
			return contract.StopSourceOutput{}, fmt.Errorf("marking server %s in %s: %w", vm.ServerID, src.Region, err)
		}
	}
	if s.Status != "SHUTOFF" {
		if err := servers.Stop(ctx, src.Compute, vm.ServerID).ExtractErr(); err != nil && !gophercloud.ResponseCodeIs(err, 409) {
			return contract.StopSourceOutput{}, fmt.Errorf("stopping server %s in %s: %w", vm.ServerID, src.Region, err)
		}
	}
	var status string
	err = a.waitFor(ctx, "source server "+vm.ServerName+" to stop", func() (bool, string, error) {
		s, err := sourceServer(ctx, src, vm)
		if err != nil {
			return false, "", err
		}
		status = s.Status
		if s.Status == "ERROR" {
			return false, status, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("source server %s (%s) in %s is in ERROR: %s", vm.ServerName, vm.ServerID, src.Region, s.Fault.Message), contract.ErrMigrationInput, nil)
		}
		return s.Status == "SHUTOFF" && (s.TaskState == "" || s.TaskState == "null"), status, nil
	})
	if err != nil {
		return contract.StopSourceOutput{Status: status}, err
	}
	actions, err := instanceActions(ctx, src, vm.ServerID)
	if err != nil {
		return contract.StopSourceOutput{Status: status}, err
	}
	if stop, _ := latestStop(actions); stop != nil {
		if _, err := servers.UpdateMetadata(ctx, src.Compute, vm.ServerID, servers.MetadataOpts{contract.MarkerStopped: actionText(*stop)}).Extract(); err != nil {
			return contract.StopSourceOutput{Status: status}, fmt.Errorf("recording the stop on server %s in %s: %w", vm.ServerID, src.Region, err)
		}
	}
	return contract.StopSourceOutput{Status: status}, nil
}

// MigrateSnapshot makes an image of the stopped source server and waits until it
// is active. An image an earlier attempt made (found by its source-server
// property) is reused only when Nova's instance actions show it was taken after
// the source's latest stop with nothing since that could have changed the disk
// (freshness.go): a retry after someone started the source and wrote to it takes
// a new snapshot. A stale one is marked (staleSnapshot), logged and reported in
// the output's Stale, never reused; one that failed is deleted. The source must
// still be stopped, by Nova's record, for a new snapshot.
func (a *Activities) MigrateSnapshot(ctx context.Context, vm contract.VMRef) (contract.ImageOutput, error) {
	src, _, err := a.pair(ctx, vm)
	if err != nil {
		return contract.ImageOutput{}, err
	}
	found, err := imagesWith(ctx, src.Image, map[string]string{contract.MarkerSourceServer: vm.ServerID})
	if err != nil {
		return contract.ImageOutput{}, err
	}
	s, err := sourceServer(ctx, src, vm)
	if err != nil {
		return contract.ImageOutput{}, err
	}
	actions, err := instanceActions(ctx, src, vm.ServerID)
	if err != nil {
		return contract.ImageOutput{}, err
	}
	var id string
	var stale []string
	reused := false
	for _, im := range found {
		switch im.Status {
		case images.ImageStatusKilled, images.ImageStatusDeleted, images.ImageStatusPendingDelete, images.ImageStatusDeactivated:
			if err := images.Delete(ctx, src.Image, im.ID).ExtractErr(); err != nil && !notFound(err) {
				return contract.ImageOutput{}, fmt.Errorf("deleting failed snapshot %s in %s: %w", im.ID, src.Region, err)
			}
			continue
		}
		if why := snapshotStale(actions, prop(&im, contract.MarkerSnapshotRequest)); why != "" {
			if err := staleSnapshot(ctx, src, &im, vm, why); err != nil {
				return contract.ImageOutput{}, err
			}
			stale = append(stale, im.ID+": "+why)
			continue
		}
		if id == "" {
			id, reused = im.ID, true
		}
	}
	if id == "" {
		if id, err = newSnapshot(ctx, src, s, actions, vm); err != nil {
			return contract.ImageOutput{}, err
		}
	}
	var im *images.Image
	err = a.waitFor(ctx, "snapshot "+id+" to become active", func() (bool, string, error) {
		im, err = images.Get(ctx, src.Image, id).Extract()
		if err != nil {
			return false, "", fmt.Errorf("reading snapshot %s in %s: %w", id, src.Region, err)
		}
		switch im.Status {
		case images.ImageStatusActive:
			return true, string(im.Status), nil
		case images.ImageStatusKilled, images.ImageStatusDeleted, images.ImageStatusDeactivated:
			// The next attempt deletes it and snapshots again.
			return false, string(im.Status), fmt.Errorf("snapshot %s of server %s in %s is %s", id, vm.ServerID, src.Region, im.Status)
		}
		return false, string(im.Status), nil
	})
	if err != nil {
		return contract.ImageOutput{}, err
	}
	out := imageOutput(im, reused)
	out.Stale = stale
	return out, nil
}

// newSnapshot runs createImage of the source server s, which Nova must record as
// stopped, and ties the image to its createImage action with the request id Nova
// answered.
func newSnapshot(ctx context.Context, src *clients, s *servers.Server, actions []instanceactions.InstanceAction, vm contract.VMRef) (string, error) {
	why := stoppedSince(actions)
	if why == "" && s.Status != "SHUTOFF" {
		why = "it is " + s.Status + ", not SHUTOFF"
	}
	if why != "" {
		return "", badInput("source server %s (%s) in %s is not stopped by Nova's record, so it cannot be snapshotted for the migration: %s; "+
			"retry the VM migration, whose first step stops it (a server that is SHUTOFF without a recorded stop: start and stop it through Nova first)",
			vm.ServerName, vm.ServerID, src.Region, why)
	}
	r := servers.CreateImage(ctx, src.Compute, vm.ServerID, servers.CreateImageOpts{
		Name:     "conveyor-migration-" + vm.ServerName,
		Metadata: map[string]string{contract.MarkerSourceServer: vm.ServerID, contract.MarkerMigration: vm.Key},
	})
	id, err := r.ExtractImageID()
	if err != nil {
		return "", fmt.Errorf("creating an image of server %s in %s: %w", vm.ServerID, src.Region, err)
	}
	req := r.Header.Get("X-Openstack-Request-Id")
	if req == "" {
		req = r.Header.Get("X-Compute-Request-Id")
	}
	if req == "" {
		return "", badInput("Nova in %s answered the createImage of server %s without X-Openstack-Request-Id: conveyor cannot place snapshot %s among the server's actions", src.Region, vm.ServerID, id)
	}
	// A crash before this leaves an image without the request: the next attempt
	// finds it stale and snapshots again.
	if _, err := images.Update(ctx, src.Image, id, images.UpdateOpts{
		images.UpdateImageProperty{Op: images.AddOp, Name: contract.MarkerSnapshotRequest, Value: req},
	}).Extract(); err != nil {
		return "", fmt.Errorf("recording the createImage request on snapshot %s in %s: %w", id, src.Region, err)
	}
	return id, nil
}

// staleSnapshot marks an earlier snapshot of the source as stale: it loses the
// source-server property (so no retry finds it again), gets MarkerStaleSnapshot
// with the reason and "-stale" on its name, and the worker logs it. It is kept
// for an operator (stage 5's cleanup lists it).
func staleSnapshot(ctx context.Context, src *clients, im *images.Image, vm contract.VMRef, why string) error {
	note := vm.ServerID + ": " + why
	if len(note) > 255 { // Glance's limit on a property's value
		note = note[:255]
	}
	ops := images.UpdateOpts{
		images.UpdateImageProperty{Op: images.RemoveOp, Name: contract.MarkerSourceServer},
		images.UpdateImageProperty{Op: images.AddOp, Name: contract.MarkerStaleSnapshot, Value: note},
	}
	if !strings.HasSuffix(im.Name, "-stale") {
		ops = append(ops, images.ReplaceImageName{NewName: im.Name + "-stale"})
	}
	if _, err := images.Update(ctx, src.Image, im.ID, ops).Extract(); err != nil {
		return fmt.Errorf("marking stale snapshot %s of server %s in %s: %w", im.ID, vm.ServerID, src.Region, err)
	}
	if activity.IsActivity(ctx) {
		activity.GetLogger(ctx).Warn("Earlier snapshot is stale: marked, not reused; taking a new one",
			"server", vm.ServerID, "region", src.Region, "image", im.ID, "reason", why)
	}
	return nil
}
