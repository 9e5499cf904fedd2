package openstack

import (
	"context"
	"fmt"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
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
// A server that is already SHUTOFF is left as it is.
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
	return contract.StopSourceOutput{Status: status}, err
}

// MigrateSnapshot makes an image of the stopped source server and waits until it
// is active. An image an earlier attempt made (found by its source-server
// property) is reused; one that failed is deleted and made again.
func (a *Activities) MigrateSnapshot(ctx context.Context, vm contract.VMRef) (contract.ImageOutput, error) {
	src, _, err := a.pair(ctx, vm)
	if err != nil {
		return contract.ImageOutput{}, err
	}
	found, err := imagesWith(ctx, src.Image, map[string]string{contract.MarkerSourceServer: vm.ServerID})
	if err != nil {
		return contract.ImageOutput{}, err
	}
	var id string
	reused := false
	for _, im := range found {
		switch im.Status {
		case images.ImageStatusKilled, images.ImageStatusDeleted, images.ImageStatusPendingDelete, images.ImageStatusDeactivated:
			if err := images.Delete(ctx, src.Image, im.ID).ExtractErr(); err != nil && !notFound(err) {
				return contract.ImageOutput{}, fmt.Errorf("deleting failed snapshot %s in %s: %w", im.ID, src.Region, err)
			}
		default:
			if id == "" {
				id, reused = im.ID, true
			}
		}
	}
	if id == "" {
		if _, err := sourceServer(ctx, src, vm); err != nil {
			return contract.ImageOutput{}, err
		}
		id, err = servers.CreateImage(ctx, src.Compute, vm.ServerID, servers.CreateImageOpts{
			Name:     "conveyor-migration-" + vm.ServerName,
			Metadata: map[string]string{contract.MarkerSourceServer: vm.ServerID, contract.MarkerMigration: vm.Key},
		}).ExtractImageID()
		if err != nil {
			return contract.ImageOutput{}, fmt.Errorf("creating an image of server %s in %s: %w", vm.ServerID, src.Region, err)
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
	return imageOutput(im, reused), nil
}
