package openstack

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	osclient "github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/imagedata"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"

	"github.com/wikimedia/conveyor/internal/dev/devstack/proc"
)

// regionsReady maps each region's compute host into its cell once it registered
// (nova-manage cell_v2 discover_hosts; otherwise the first server fails with "Host
// is not mapped to any cell") and makes sure the flavor and the image exist.
func (rig *Rig) regionsReady(ctx context.Context) error {
	pc, err := rig.adminClient(ctx)
	if err != nil {
		return fmt.Errorf("authenticating to Keystone: %w", err)
	}
	for _, r := range regions {
		if err := rig.mapCompute(ctx, r); err != nil {
			return err
		}
		if err := rig.flavorAndImage(ctx, pc, r); err != nil {
			return fmt.Errorf("region %s: %w", r.Name, err)
		}
	}
	return nil
}

// mapCompute waits until the region's nova-compute has registered its node and
// reported its inventory to placement, then maps it into cell1.
func (rig *Rig) mapCompute(ctx context.Context, r region) error {
	host := "compute-" + r.Name
	count := func(sql string) (int, error) {
		out, err := rig.query(ctx, sql)
		if err != nil {
			return 0, err
		}
		return strconv.Atoi(strings.TrimSpace(out))
	}
	mapped, err := count(fmt.Sprintf("SELECT COUNT(*) FROM `nova_api_%s`.host_mappings WHERE host='%s'", r.Name, host))
	if err != nil {
		return err
	}
	if mapped > 0 {
		return nil
	}
	rig.say("openstack: waiting for %s to register, then mapping it into its cell", host)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		nodes, err := count(fmt.Sprintf("SELECT COUNT(*) FROM `nova_%s`.compute_nodes WHERE host='%s' AND deleted=0", r.Name, host))
		if err != nil {
			return err
		}
		inv, err := count(fmt.Sprintf("SELECT COUNT(*) FROM `placement_%s`.inventories", r.Name))
		if err != nil {
			return err
		}
		if nodes > 0 && inv > 0 {
			break
		}
		name := "openstack-nova-compute-" + r.Name
		if _, ok := rig.procs.Running(name); !ok {
			return fmt.Errorf("%s exited before registering; log: %s\n%s", name, rig.procs.LogFile(name), proc.Indent(rig.procs.LogTail(name, 15), "    "))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not register its compute node and inventory within 3 minutes; log: %s", host, rig.procs.LogFile(name))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	bin, args := rig.script("nova-manage", "--config-file", rig.path("etc", "nova-"+r.Name, "nova.conf"), "cell_v2", "discover_hosts", "--verbose")
	if err := rig.run(ctx, "discover_hosts "+r.Name, nil, bin, args...); err != nil {
		return err
	}
	mapped, err = count(fmt.Sprintf("SELECT COUNT(*) FROM `nova_api_%s`.host_mappings WHERE host='%s'", r.Name, host))
	if err != nil {
		return err
	}
	if mapped == 0 {
		return fmt.Errorf("nova-manage cell_v2 discover_hosts did not map %s (see %s)", host, rig.procs.LogFile("openstack-bootstrap"))
	}
	return nil
}

// flavorAndImage creates the rig's flavor and image in a region unless they exist.
func (rig *Rig) flavorAndImage(ctx context.Context, pc *gophercloud.ProviderClient, r region) error {
	eo := gophercloud.EndpointOpts{Region: r.Name}
	compute, err := osclient.NewComputeV2(pc, eo)
	if err != nil {
		return err
	}
	pages, err := flavors.ListDetail(compute, flavors.ListOpts{AccessType: flavors.AllAccess}).AllPages(ctx)
	if err != nil {
		return fmt.Errorf("listing flavors: %w", err)
	}
	fls, err := flavors.ExtractFlavors(pages)
	if err != nil {
		return err
	}
	found := false
	for _, f := range fls {
		found = found || f.Name == Flavor
	}
	if !found {
		disk := 1
		if _, err := flavors.Create(ctx, compute, flavors.CreateOpts{Name: Flavor, RAM: 512, VCPUs: 1, Disk: &disk}).Extract(); err != nil {
			return fmt.Errorf("creating flavor %s: %w", Flavor, err)
		}
	}
	image, err := osclient.NewImageV2(pc, eo)
	if err != nil {
		return err
	}
	ipages, err := images.List(image, images.ListOpts{Name: Image}).AllPages(ctx)
	if err != nil {
		return fmt.Errorf("listing images: %w", err)
	}
	imgs, err := images.ExtractImages(ipages)
	if err != nil {
		return err
	}
	for _, im := range imgs {
		if im.Status == images.ImageStatusActive {
			return nil
		}
		// An upload that did not finish: start again.
		if err := images.Delete(ctx, image, im.ID).ExtractErr(); err != nil {
			return fmt.Errorf("deleting the unfinished image %s: %w", im.ID, err)
		}
	}
	public := images.ImageVisibilityPublic
	im, err := images.Create(ctx, image, images.CreateOpts{Name: Image, DiskFormat: "raw", ContainerFormat: "bare", Visibility: &public}).Extract()
	if err != nil {
		return fmt.Errorf("creating image %s: %w", Image, err)
	}
	data := "conveyor test rig image: the fake virt driver boots anything\n"
	if err := imagedata.Upload(ctx, image, im.ID, strings.NewReader(data)).ExtractErr(); err != nil {
		return fmt.Errorf("uploading image %s: %w", Image, err)
	}
	return nil
}
