package devstack

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/endpoints"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/projects"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/regions"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/roles"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/services"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/users"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/imagedata"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
)

// osAdmin authenticates as the rig's admin.
func (s *stack) osAdmin(ctx context.Context) (*gophercloud.ProviderClient, error) {
	return openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{
		IdentityEndpoint: "http://" + osKeystoneAddr + "/v3",
		Username:         osAdminUser,
		Password:         s.osSecrets().admin,
		DomainName:       osDomain,
		TenantName:       osAdminProject,
	})
}

// osCatalogService is one service of the catalog and its endpoint per region.
type osCatalogService struct {
	name, typ, user string
	url             func(osRegion) string
}

func osCatalogServices() []osCatalogService {
	return []osCatalogService{
		{name: "keystone", typ: "identity", url: func(osRegion) string { return "http://" + osKeystoneAddr + "/v3" }},
		{name: "nova", typ: "compute", user: "nova", url: func(r osRegion) string { return fmt.Sprintf("http://127.0.0.1:%d/v2.1", r.Nova) }},
		{name: "placement", typ: "placement", user: "placement", url: func(r osRegion) string { return fmt.Sprintf("http://127.0.0.1:%d", r.Placement) }},
		{name: "glance", typ: "image", user: "glance", url: func(r osRegion) string { return fmt.Sprintf("http://127.0.0.1:%d", r.GlancePt) }},
		{name: "neutron", typ: "network", user: "neutron", url: func(osRegion) string { return "http://" + osNeutronAddr }},
	}
}

// osCatalog registers the second region, the service project, the service users and
// every service's public endpoint in each region. Each part is looked up first, so
// a second run changes nothing.
func (s *stack) osCatalog(ctx context.Context) error {
	if _, err := os.Stat(s.osDir("done", "catalog")); err == nil {
		return nil
	}
	s.say("openstack: registering regions, service users and endpoints in Keystone")
	pc, err := s.osAdmin(ctx)
	if err != nil {
		return err
	}
	id, err := openstack.NewIdentityV3(pc, gophercloud.EndpointOpts{})
	if err != nil {
		return err
	}
	for _, r := range osRegions {
		if err := regions.Get(ctx, id, r.Name).Err; err != nil {
			if !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
				return err
			}
			if _, err := regions.Create(ctx, id, regions.CreateOpts{ID: r.Name, Description: "conveyor test rig"}).Extract(); err != nil {
				return fmt.Errorf("creating region %s: %w", r.Name, err)
			}
		}
	}
	domainID := "default"
	project, err := osFind(ctx, "project service", func() ([]projects.Project, error) {
		pages, err := projects.List(id, projects.ListOpts{Name: "service", DomainID: domainID}).AllPages(ctx)
		if err != nil {
			return nil, err
		}
		return projects.ExtractProjects(pages)
	}, func() (*projects.Project, error) {
		return projects.Create(ctx, id, projects.CreateOpts{Name: "service", DomainID: domainID, Description: "OpenStack's own services"}).Extract()
	})
	if err != nil {
		return err
	}
	admin, err := osFind(ctx, "role admin", func() ([]roles.Role, error) {
		pages, err := roles.List(id, roles.ListOpts{Name: "admin"}).AllPages(ctx)
		if err != nil {
			return nil, err
		}
		return roles.ExtractRoles(pages)
	}, nil)
	if err != nil {
		return err
	}
	password := s.osSecrets().service
	for _, svc := range osCatalogServices() {
		if svc.user != "" {
			u, err := osFind(ctx, "user "+svc.user, func() ([]users.User, error) {
				pages, err := users.List(id, users.ListOpts{Name: svc.user, DomainID: domainID}).AllPages(ctx)
				if err != nil {
					return nil, err
				}
				return users.ExtractUsers(pages)
			}, func() (*users.User, error) {
				return users.Create(ctx, id, users.CreateOpts{Name: svc.user, DomainID: domainID, Password: password, DefaultProjectID: project.ID}).Extract()
			})
			if err != nil {
				return err
			}
			if err := roles.Assign(ctx, id, admin.ID, roles.AssignOpts{UserID: u.ID, ProjectID: project.ID}).ExtractErr(); err != nil {
				return fmt.Errorf("giving %s the admin role: %w", svc.user, err)
			}
		}
		service, err := osFind(ctx, "service "+svc.typ, func() ([]services.Service, error) {
			pages, err := services.List(id, services.ListOpts{ServiceType: svc.typ}).AllPages(ctx)
			if err != nil {
				return nil, err
			}
			return services.ExtractServices(pages)
		}, func() (*services.Service, error) {
			return services.Create(ctx, id, services.CreateOpts{Name: svc.name, Type: svc.typ}).Extract()
		})
		if err != nil {
			return err
		}
		for _, r := range osRegions {
			pages, err := endpoints.List(id, endpoints.ListOpts{ServiceID: service.ID, RegionID: r.Name, Availability: gophercloud.AvailabilityPublic}).AllPages(ctx)
			if err != nil {
				return err
			}
			eps, err := endpoints.ExtractEndpoints(pages)
			if err != nil {
				return err
			}
			url := svc.url(r)
			switch {
			case len(eps) == 0:
				_, err = endpoints.Create(ctx, id, endpoints.CreateOpts{ServiceID: service.ID, Region: r.Name,
					Availability: gophercloud.AvailabilityPublic, URL: url}).Extract()
			case eps[0].URL != url:
				_, err = endpoints.Update(ctx, id, eps[0].ID, endpoints.UpdateOpts{URL: url}).Extract()
			}
			if err != nil {
				return fmt.Errorf("endpoint of %s in %s: %w", svc.typ, r.Name, err)
			}
		}
	}
	return writeFile(s.osDir("done", "catalog"), "", 0o644)
}

// osFind returns the one item list finds, or what create makes when there is none
// (an error when create is nil).
func osFind[T any](ctx context.Context, what string, list func() ([]T, error), create func() (*T, error)) (*T, error) {
	items, err := list()
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", what, err)
	}
	if len(items) > 0 {
		return &items[0], nil
	}
	if create == nil {
		return nil, fmt.Errorf("%s not found", what)
	}
	item, err := create()
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", what, err)
	}
	return item, nil
}

// osRegionsReady maps each region's compute host into its cell once it registered
// (nova-manage cell_v2 discover_hosts; otherwise the first server fails with "Host
// is not mapped to any cell") and makes sure the flavor and the image exist.
func (s *stack) osRegionsReady(ctx context.Context) error {
	pc, err := s.osAdmin(ctx)
	if err != nil {
		return fmt.Errorf("authenticating to Keystone: %w", err)
	}
	for _, r := range osRegions {
		if err := s.osMapCompute(ctx, r); err != nil {
			return err
		}
		if err := s.osFlavorAndImage(ctx, pc, r); err != nil {
			return fmt.Errorf("region %s: %w", r.Name, err)
		}
	}
	return nil
}

// osMapCompute waits until the region's nova-compute has registered its node and
// reported its inventory to placement, then maps it into cell1.
func (s *stack) osMapCompute(ctx context.Context, r osRegion) error {
	host := "compute-" + r.Name
	count := func(sql string) (int, error) {
		out, err := s.osSQL(ctx, sql)
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
	s.say("openstack: waiting for %s to register, then mapping it into its cell", host)
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
		if _, ok := s.running(name); !ok {
			return fmt.Errorf("%s exited before registering; log: %s\n%s", name, s.logFile(name), indent(s.logTail(name, 15), "    "))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not register its compute node and inventory within 3 minutes; log: %s", host, s.logFile(name))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	bin, args := s.osScript("nova-manage", "--config-file", s.osDir("etc", "nova-"+r.Name, "nova.conf"), "cell_v2", "discover_hosts", "--verbose")
	if err := s.osRun(ctx, "discover_hosts "+r.Name, nil, bin, args...); err != nil {
		return err
	}
	mapped, err = count(fmt.Sprintf("SELECT COUNT(*) FROM `nova_api_%s`.host_mappings WHERE host='%s'", r.Name, host))
	if err != nil {
		return err
	}
	if mapped == 0 {
		return fmt.Errorf("nova-manage cell_v2 discover_hosts did not map %s (see %s)", host, s.logFile("openstack-bootstrap"))
	}
	return nil
}

// osFlavorAndImage creates the rig's flavor and image in a region unless they exist.
func (s *stack) osFlavorAndImage(ctx context.Context, pc *gophercloud.ProviderClient, r osRegion) error {
	eo := gophercloud.EndpointOpts{Region: r.Name}
	compute, err := openstack.NewComputeV2(pc, eo)
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
		found = found || f.Name == OpenStackFlavor
	}
	if !found {
		disk := 1
		if _, err := flavors.Create(ctx, compute, flavors.CreateOpts{Name: OpenStackFlavor, RAM: 512, VCPUs: 1, Disk: &disk}).Extract(); err != nil {
			return fmt.Errorf("creating flavor %s: %w", OpenStackFlavor, err)
		}
	}
	image, err := openstack.NewImageV2(pc, eo)
	if err != nil {
		return err
	}
	ipages, err := images.List(image, images.ListOpts{Name: OpenStackImage}).AllPages(ctx)
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
	im, err := images.Create(ctx, image, images.CreateOpts{Name: OpenStackImage, DiskFormat: "raw", ContainerFormat: "bare", Visibility: &public}).Extract()
	if err != nil {
		return fmt.Errorf("creating image %s: %w", OpenStackImage, err)
	}
	data := "conveyor test rig image: the fake virt driver boots anything\n"
	if err := imagedata.Upload(ctx, image, im.ID, strings.NewReader(data)).ExtractErr(); err != nil {
		return fmt.Errorf("uploading image %s: %w", OpenStackImage, err)
	}
	return nil
}
