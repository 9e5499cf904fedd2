package openstack

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/keypairs"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/heartbeat"
)

// destinationServers lists the destination servers whose migrated-from marker
// names the source server, oldest first.
func destinationServers(ctx context.Context, dst *clients, src *clients, vm contract.VMRef) ([]servers.Server, error) {
	opts := servers.ListOpts{Name: "^" + regexp.QuoteMeta(vm.ServerName) + "$"}
	pages, err := servers.List(dst.Compute, opts).AllPages(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing servers named %s in %s: %w", vm.ServerName, dst.Region, err)
	}
	all, err := servers.ExtractServers(pages)
	if err != nil {
		return nil, err
	}
	want := regionRef(src, vm.ServerID)
	var out []servers.Server
	for _, s := range all {
		if s.Metadata[contract.MarkerMigratedFrom] == want {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b servers.Server) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// flavorByName finds a flavor by name among all flavors (public and private).
func flavorByName(ctx context.Context, c *clients, name string) (*flavors.Flavor, error) {
	pages, err := flavors.ListDetail(c.Compute, flavors.ListOpts{AccessType: flavors.AllAccess}).AllPages(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing flavors in %s: %w", c.Region, err)
	}
	all, err := flavors.ExtractFlavors(pages)
	if err != nil {
		return nil, err
	}
	for _, f := range all {
		if f.Name == name {
			return &f, nil
		}
	}
	return nil, nil
}

// deleteServer deletes a server and waits until it is gone.
func (a *Activities) deleteServer(ctx context.Context, c *clients, id string) error {
	if err := servers.Delete(ctx, c.Compute, id).ExtractErr(); err != nil && !notFound(err) {
		return fmt.Errorf("deleting server %s in %s: %w", id, c.Region, err)
	}
	return a.waitFor(ctx, "server "+id+" to be deleted", func() (bool, string, error) {
		s, err := servers.Get(ctx, c.Compute, id).Extract()
		if notFound(err) {
			return true, "gone", nil
		}
		if err != nil {
			return false, "", err
		}
		if s.Status == "DELETED" || s.Status == "SOFT_DELETED" {
			return true, s.Status, nil
		}
		return false, s.Status, nil
	})
}

// MigrateCreateServer creates the destination server from the copied image with
// the source's name, flavor (by name), keypair and metadata, plus the
// migrated-from marker. A server an earlier attempt created (found by the
// marker) from the same image is reused; one that went to ERROR is deleted
// first, so a retry after its cause was fixed creates it again, and so is one
// booted from another image: a copy of an earlier snapshot, stale since the
// source ran again (MigrateSnapshot took a new one), whose disk is not the
// source's any more.
func (a *Activities) MigrateCreateServer(ctx context.Context, in contract.CreateServerInput) (contract.ServerOutput, error) {
	src, dst, err := a.pair(ctx, in.VM)
	if err != nil {
		return contract.ServerOutput{}, err
	}
	found, err := destinationServers(ctx, dst, src, in.VM)
	if err != nil {
		return contract.ServerOutput{}, err
	}
	heartbeat.Record(ctx, fmt.Sprintf("%d earlier servers found", len(found)))
	for _, s := range found {
		if s.Status != "ERROR" && imageID(&s) == in.ImageID {
			return contract.ServerOutput{ServerID: s.ID, Status: s.Status, Reused: true}, nil
		}
	}
	for _, s := range found {
		if s.Status != "ERROR" && activity.IsActivity(ctx) {
			activity.GetLogger(ctx).Warn("Earlier destination server was made from another image (a stale copy): deleting it, creating one from the new copy",
				"server", s.ID, "region", dst.Region, "image", imageID(&s), "newImage", in.ImageID)
		}
		if err := a.deleteServer(ctx, dst, s.ID); err != nil {
			return contract.ServerOutput{}, err
		}
	}
	s, err := sourceServer(ctx, src, in.VM)
	if err != nil {
		return contract.ServerOutput{}, err
	}
	f, err := flavorByName(ctx, dst, flavorName(s))
	if err != nil {
		return contract.ServerOutput{}, err
	}
	if f == nil {
		return contract.ServerOutput{}, badInput("flavor %q does not exist in %s: run the preflight (it creates missing flavors) or create it", flavorName(s), dst.Region)
	}
	heartbeat.Record(ctx, "creating "+s.Name+" in "+dst.Region)
	md := userMetadata(s.Metadata)
	md[contract.MarkerMigratedFrom] = regionRef(src, s.ID)
	var create servers.CreateOptsBuilder = servers.CreateOpts{
		Name:           s.Name,
		ImageRef:       in.ImageID,
		FlavorRef:      f.ID,
		Metadata:       md,
		Networks:       "none",
		SecurityGroups: securityGroups(s),
	}
	if s.KeyName != "" {
		if _, err := keypairs.Get(ctx, dst.Compute, s.KeyName, keypairs.GetOpts{UserID: s.UserID}).Extract(); err != nil {
			return contract.ServerOutput{}, badInput("keypair %q of user %s does not exist in %s: run the preflight (it copies keypairs): %v", s.KeyName, s.UserID, dst.Region, err)
		}
		create = keypairs.CreateOptsExt{CreateOptsBuilder: create, KeyName: s.KeyName}
	}
	created, err := servers.Create(ctx, dst.Compute, create, nil).Extract()
	if err != nil {
		return contract.ServerOutput{}, fmt.Errorf("creating server %s in %s: %w", s.Name, dst.Region, err)
	}
	return contract.ServerOutput{ServerID: created.ID, Status: created.Status}, nil
}

// MigrateWaitActive waits until the destination server is ACTIVE. ERROR (or the
// server vanishing) fails non-retryably with ErrServerError and the server's
// fault; the source is untouched.
func (a *Activities) MigrateWaitActive(ctx context.Context, in contract.DestinationInput) (contract.ServerOutput, error) {
	_, dst, err := a.pair(ctx, in.VM)
	if err != nil {
		return contract.ServerOutput{}, err
	}
	var status string
	err = a.waitFor(ctx, "server "+in.ServerID+" to become ACTIVE", func() (bool, string, error) {
		s, err := servers.Get(ctx, dst.Compute, in.ServerID).Extract()
		if notFound(err) {
			return false, "", temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("destination server %s (%s) vanished from %s", in.VM.ServerName, in.ServerID, dst.Region), contract.ErrServerError, nil)
		}
		if err != nil {
			return false, "", fmt.Errorf("reading server %s in %s: %w", in.ServerID, dst.Region, err)
		}
		status = s.Status
		if s.Status == "ERROR" {
			return false, status, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("destination server %s (%s) in %s went to ERROR: %s; the source is kept: fix the cause and retry",
					in.VM.ServerName, in.ServerID, dst.Region, faultText(s.Fault)), contract.ErrServerError, nil)
		}
		return s.Status == "ACTIVE", status, nil
	})
	return contract.ServerOutput{ServerID: in.ServerID, Status: status}, err
}

func faultText(f servers.Fault) string {
	if f.Message == "" {
		return "no fault recorded"
	}
	if f.Code != 0 {
		return fmt.Sprintf("%s (code %d)", f.Message, f.Code)
	}
	return f.Message
}

// MigrateVerify compares the destination server with the source: the destination
// is ACTIVE with the source's name, flavor and metadata, booted from the finished
// copy of the source's snapshot; the source still exists and is not running (so
// the two never serve at once), and Nova's record shows nothing since the
// snapshot that could have changed the source's disk (so a source started,
// written to and stopped again during the grace period is not deleted). Problems come back in the output, not as an
// error, so that the workflow decides.
func (a *Activities) MigrateVerify(ctx context.Context, in contract.DestinationInput) (contract.VerifyOutput, error) {
	src, dst, err := a.pair(ctx, in.VM)
	if err != nil {
		return contract.VerifyOutput{}, err
	}
	var problems []string
	s, err := servers.Get(ctx, src.Compute, in.VM.ServerID).Extract()
	if err != nil {
		return contract.VerifyOutput{}, fmt.Errorf("reading source server %s in %s: %w", in.VM.ServerID, src.Region, err)
	}
	d, err := servers.Get(ctx, dst.Compute, in.ServerID).Extract()
	if notFound(err) {
		return contract.VerifyOutput{Problems: []string{fmt.Sprintf("destination server %s is gone from %s", in.ServerID, dst.Region)}}, nil
	}
	if err != nil {
		return contract.VerifyOutput{}, fmt.Errorf("reading destination server %s in %s: %w", in.ServerID, dst.Region, err)
	}
	if s.Status != "SHUTOFF" {
		problems = append(problems, fmt.Sprintf("source server is %s, not SHUTOFF", s.Status))
	}
	if in.SourceImage.ImageID != "" {
		why, err := sourceChangedSince(ctx, src, in.VM.ServerID, in.SourceImage.ImageID)
		if err != nil {
			return contract.VerifyOutput{}, err
		}
		if why != "" {
			problems = append(problems, fmt.Sprintf("the source may differ from snapshot %s, which the destination was made from: %s", in.SourceImage.ImageID, why))
		}
	}
	if d.Status != "ACTIVE" {
		problems = append(problems, fmt.Sprintf("destination server is %s, not ACTIVE", d.Status))
	}
	if d.Name != s.Name {
		problems = append(problems, fmt.Sprintf("destination name %q differs from the source's %q", d.Name, s.Name))
	}
	if flavorName(d) != flavorName(s) {
		problems = append(problems, fmt.Sprintf("destination flavor %q differs from the source's %q", flavorName(d), flavorName(s)))
	}
	if d.Metadata[contract.MarkerMigratedFrom] != regionRef(src, s.ID) {
		problems = append(problems, fmt.Sprintf("destination marker %s is %q, want %q", contract.MarkerMigratedFrom, d.Metadata[contract.MarkerMigratedFrom], regionRef(src, s.ID)))
	}
	if want, got := userMetadata(s.Metadata), userMetadata(d.Metadata); !maps.Equal(want, got) {
		problems = append(problems, fmt.Sprintf("destination metadata %v differs from the source's %v", got, want))
	}
	if in.ImageID != "" {
		if imageID(d) != in.ImageID {
			problems = append(problems, fmt.Sprintf("destination booted from image %q, not the copy %s", imageID(d), in.ImageID))
		}
		im, err := images.Get(ctx, dst.Image, in.ImageID).Extract()
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("reading the copied image %s: %v", in.ImageID, err))
		case prop(im, "os_hash_value") != in.SourceImage.HashValue || prop(im, contract.MarkerSourceChecksum) == "":
			problems = append(problems, fmt.Sprintf("copied image %s has hash %s, the snapshot %s", in.ImageID, prop(im, "os_hash_value"), in.SourceImage.HashValue))
		}
	}
	return contract.VerifyOutput{Problems: problems}, nil
}

// MigrateSwitchDNS would point the server's name in DNSZone at the destination.
// Without a zone it does nothing. With one it fails: conveyor has no Designate
// client yet (the local rig has no Designate), and saying so beats pretending.
func (a *Activities) MigrateSwitchDNS(ctx context.Context, in contract.DestinationInput) (contract.StepOutput, error) {
	if in.DNSZone == "" {
		return contract.StepOutput{Detail: "no DNS zone configured: nothing to switch"}, nil
	}
	return contract.StepOutput{}, badInput("switching DNS zone %s is not supported yet (no Designate client): run the migration without a DNS zone and switch the records by hand", in.DNSZone)
}

// MigrateMark leaves the verified markers: the source gets migrated-to
// "<region>/<destination id>", the destination verified = the migration key.
func (a *Activities) MigrateMark(ctx context.Context, in contract.DestinationInput) (contract.StepOutput, error) {
	src, dst, err := a.pair(ctx, in.VM)
	if err != nil {
		return contract.StepOutput{}, err
	}
	if _, err := servers.UpdateMetadata(ctx, dst.Compute, in.ServerID, servers.MetadataOpts{contract.MarkerVerified: in.VM.Key}).Extract(); err != nil {
		return contract.StepOutput{}, fmt.Errorf("marking destination server %s in %s: %w", in.ServerID, dst.Region, err)
	}
	to := regionRef(dst, in.ServerID)
	if _, err := servers.UpdateMetadata(ctx, src.Compute, in.VM.ServerID, servers.MetadataOpts{contract.MarkerMigratedTo: to}).Extract(); err != nil {
		return contract.StepOutput{}, fmt.Errorf("marking source server %s in %s: %w", in.VM.ServerID, src.Region, err)
	}
	return contract.StepOutput{Detail: fmt.Sprintf("source %s marked migrated to %s", regionRef(src, in.VM.ServerID), to)}, nil
}

// MigrateDeleteSource deletes the source server after the grace period. It
// refuses unless the destination is ACTIVE with the verified marker and the
// source carries the migrated-to marker naming it. A source that is already gone
// is success.
func (a *Activities) MigrateDeleteSource(ctx context.Context, in contract.DestinationInput) (contract.StepOutput, error) {
	src, dst, err := a.pair(ctx, in.VM)
	if err != nil {
		return contract.StepOutput{}, err
	}
	s, err := servers.Get(ctx, src.Compute, in.VM.ServerID).Extract()
	if notFound(err) {
		return contract.StepOutput{Detail: "source already deleted"}, nil
	}
	if err != nil {
		return contract.StepOutput{}, fmt.Errorf("reading source server %s in %s: %w", in.VM.ServerID, src.Region, err)
	}
	d, err := servers.Get(ctx, dst.Compute, in.ServerID).Extract()
	if err != nil && !notFound(err) {
		return contract.StepOutput{}, fmt.Errorf("reading destination server %s in %s: %w", in.ServerID, dst.Region, err)
	}
	if err != nil || d.Status != "ACTIVE" || d.Metadata[contract.MarkerVerified] != in.VM.Key || s.Metadata[contract.MarkerMigratedTo] != regionRef(dst, in.ServerID) {
		return contract.StepOutput{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("refusing to delete source server %s: destination %s is not ACTIVE with the verified marker, or the source lacks %s=%s",
				in.VM.ServerID, regionRef(dst, in.ServerID), contract.MarkerMigratedTo, regionRef(dst, in.ServerID)), contract.ErrVerifyFailed, nil)
	}
	if err := a.deleteServer(ctx, src, in.VM.ServerID); err != nil {
		return contract.StepOutput{}, err
	}
	return contract.StepOutput{Detail: "deleted source " + regionRef(src, in.VM.ServerID)}, nil
}
