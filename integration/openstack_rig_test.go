package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/imagedata"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"

	"github.com/wikimedia/conveyor/internal/dev/devstack"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// TestOpenStackRig proves the local stack's two-region OpenStack (`dev up --with
// openstack`) with the client the migration uses: the configured admin
// authenticates, the catalog has compute, image, network and placement in both
// regions, and in each region a server reaches ACTIVE and createImage of it makes an
// active image whose data downloads; everything it made is deleted again.
func TestOpenStackRig(t *testing.T) {
	c := stacktest.OpenStack(t).OpenStack
	// Cleanup, not defer: the regions' subtests run in parallel after this returns.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	pc, err := rigAuth(ctx, c)
	if err != nil {
		t.Fatalf("authenticating as %s at %s: %v", c.Username, c.AuthURL, err)
	}
	identity, err := openstack.NewIdentityV3(pc, gophercloud.EndpointOpts{})
	if err != nil {
		t.Fatal(err)
	}
	catalog, err := tokens.Get(ctx, identity, pc.Token()).ExtractServiceCatalog()
	if err != nil {
		t.Fatalf("reading the catalog: %v", err)
	}
	var regions []string
	for name, d := range c.Deployments {
		regions = append(regions, d.Region)
		for _, typ := range []string{"identity", "compute", "image", "network", "placement"} {
			if !rigHasEndpoint(catalog, typ, d.Region) {
				t.Errorf("deployment %s: the catalog has no public %s endpoint in region %s", name, typ, d.Region)
			}
		}
	}
	slices.Sort(regions)
	if want := []string{"eqiad1", "eqiad2"}; !slices.Equal(regions, want) {
		t.Errorf("deployments' regions = %v, want %v", regions, want)
	}
	if t.Failed() {
		return
	}
	for _, region := range regions {
		t.Run(region, func(t *testing.T) {
			t.Parallel()
			rigServerAndSnapshot(ctx, t, pc, region)
		})
	}
}

func rigAuth(ctx context.Context, c config.OpenStack) (*gophercloud.ProviderClient, error) {
	return openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{
		IdentityEndpoint: c.AuthURL,
		Username:         c.Username,
		Password:         c.Password,
		DomainName:       c.Domain,
		TenantName:       c.ProjectName,
	})
}

func rigHasEndpoint(catalog *tokens.ServiceCatalog, typ, region string) bool {
	for _, e := range catalog.Entries {
		if e.Type != typ {
			continue
		}
		for _, ep := range e.Endpoints {
			if ep.Interface == "public" && (ep.Region == region || ep.RegionID == region) {
				return true
			}
		}
	}
	return false
}

// rigServerAndSnapshot boots a server from the rig's image in region, snapshots it
// and downloads the snapshot, then deletes both.
func rigServerAndSnapshot(ctx context.Context, t *testing.T, pc *gophercloud.ProviderClient, region string) {
	eo := gophercloud.EndpointOpts{Region: region}
	compute, err := openstack.NewComputeV2(pc, eo)
	if err != nil {
		t.Fatal(err)
	}
	compute.Microversion = "2.37" // networks "none"
	image, err := openstack.NewImageV2(pc, eo)
	if err != nil {
		t.Fatal(err)
	}
	flavorID := rigFlavorID(ctx, t, compute, devstack.OpenStackFlavor)
	imageID := rigImageID(ctx, t, image, devstack.OpenStackImage)

	name := fmt.Sprintf("rig-test-%s-%d", region, time.Now().UnixNano())
	srv, err := servers.Create(ctx, compute, servers.CreateOpts{
		Name: name, FlavorRef: flavorID, ImageRef: imageID, Networks: "none",
	}, nil).Extract()
	if err != nil {
		t.Fatalf("creating server %s: %v", name, err)
	}
	t.Cleanup(func() { rigDeleteServer(t, compute, srv.ID) })
	start := time.Now()
	rigWaitServer(ctx, t, compute, srv.ID, "ACTIVE")
	t.Logf("%s: server %s ACTIVE in %.1fs", region, srv.ID, time.Since(start).Seconds())

	start = time.Now()
	snapID, err := servers.CreateImage(ctx, compute, srv.ID, servers.CreateImageOpts{Name: name + "-snap"}).ExtractImageID()
	if err != nil {
		t.Fatalf("createImage of %s: %v", srv.ID, err)
	}
	t.Cleanup(func() {
		if err := images.Delete(context.Background(), image, snapID).ExtractErr(); err != nil && !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			t.Errorf("deleting image %s: %v", snapID, err)
		}
	})
	rigWaitImage(ctx, t, image, snapID)
	t.Logf("%s: snapshot %s active in %.1fs", region, snapID, time.Since(start).Seconds())
	rc, err := imagedata.Download(ctx, image, snapID).Extract()
	if err != nil {
		t.Fatalf("downloading image %s: %v", snapID, err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatalf("reading image %s: %v", snapID, err)
	}
	if !strings.Contains(string(data), srv.ID) {
		t.Errorf("snapshot data = %q, want the fake driver's blob naming server %s", data, srv.ID)
	}
}

func rigFlavorID(ctx context.Context, t *testing.T, compute *gophercloud.ServiceClient, name string) string {
	t.Helper()
	pages, err := flavors.ListDetail(compute, flavors.ListOpts{AccessType: flavors.AllAccess}).AllPages(ctx)
	if err != nil {
		t.Fatalf("listing flavors: %v", err)
	}
	fs, err := flavors.ExtractFlavors(pages)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if f.Name == name {
			return f.ID
		}
	}
	t.Fatalf("no flavor %q (dev up --with openstack creates it)", name)
	return ""
}

func rigImageID(ctx context.Context, t *testing.T, image *gophercloud.ServiceClient, name string) string {
	t.Helper()
	pages, err := images.List(image, images.ListOpts{Name: name, Status: images.ImageStatusActive}).AllPages(ctx)
	if err != nil {
		t.Fatalf("listing images: %v", err)
	}
	is, err := images.ExtractImages(pages)
	if err != nil {
		t.Fatal(err)
	}
	if len(is) == 0 {
		t.Fatalf("no active image %q (dev up --with openstack creates it)", name)
	}
	return is[0].ID
}

// rigWaitServer polls the server until it has status want; ERROR fails at once, with
// the server's fault (gophercloud's WaitForStatus would keep waiting).
func rigWaitServer(ctx context.Context, t *testing.T, compute *gophercloud.ServiceClient, id, want string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		s, err := servers.Get(ctx, compute, id).Extract()
		if err != nil {
			t.Fatalf("server %s: %v", id, err)
		}
		switch {
		case s.Status == want:
			return
		case s.Status == "ERROR":
			t.Fatalf("server %s went to ERROR: %s %s", id, s.Fault.Message, s.Fault.Details)
		case time.Now().After(deadline):
			t.Fatalf("server %s is %s after 3 minutes, want %s", id, s.Status, want)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func rigWaitImage(ctx context.Context, t *testing.T, image *gophercloud.ServiceClient, id string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		im, err := images.Get(ctx, image, id).Extract()
		if err != nil {
			t.Fatalf("image %s: %v", id, err)
		}
		switch im.Status {
		case images.ImageStatusActive:
			return
		case images.ImageStatusKilled, images.ImageStatusDeleted, images.ImageStatusPendingDelete:
			t.Fatalf("image %s went to %s", id, im.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("image %s is %s after 3 minutes, want active", id, im.Status)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// rigDeleteServer deletes the server and waits until it is gone.
func rigDeleteServer(t *testing.T, compute *gophercloud.ServiceClient, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := servers.Delete(ctx, compute, id).ExtractErr(); err != nil {
		if !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			t.Errorf("deleting server %s: %v", id, err)
		}
		return
	}
	for {
		_, err := servers.Get(ctx, compute, id).Extract()
		if gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			return
		}
		if ctx.Err() != nil {
			t.Errorf("server %s still there 3 minutes after its deletion (last: %v)", id, err)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}
