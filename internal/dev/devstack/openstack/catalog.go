package openstack

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/gophercloud/gophercloud/v2"
	osclient "github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/endpoints"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/projects"
	identityregions "github.com/gophercloud/gophercloud/v2/openstack/identity/v3/regions"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/roles"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/services"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/users"

	"github.com/wikimedia/conveyor/internal/dev/devstack/proc"
)

// adminClient authenticates as the rig's admin.
func (rig *Rig) adminClient(ctx context.Context) (*gophercloud.ProviderClient, error) {
	return osclient.AuthenticatedClient(ctx, gophercloud.AuthOptions{
		IdentityEndpoint: "http://" + keystoneAddr + "/v3",
		Username:         adminUser,
		Password:         rig.credentials().admin,
		DomainName:       domain,
		TenantName:       adminProject,
	})
}

// catalogService is one service of the catalog and its endpoint per region.
type catalogService struct {
	name, typ, user string
	url             func(region) string
}

func catalogServices() []catalogService {
	return []catalogService{
		{name: "keystone", typ: "identity", url: func(region) string { return "http://" + keystoneAddr + "/v3" }},
		{name: "nova", typ: "compute", user: "nova", url: func(r region) string { return fmt.Sprintf("http://127.0.0.1:%d/v2.1", r.Nova) }},
		{name: "placement", typ: "placement", user: "placement", url: func(r region) string { return fmt.Sprintf("http://127.0.0.1:%d", r.Placement) }},
		{name: "glance", typ: "image", user: "glance", url: func(r region) string { return fmt.Sprintf("http://127.0.0.1:%d", r.GlancePt) }},
		{name: "neutron", typ: "network", user: "neutron", url: func(region) string { return "http://" + neutronAddr }},
	}
}

// registerCatalog registers the second region, the service project, the service users and
// every service's public endpoint in each region. Each part is looked up first, so
// a second run changes nothing.
func (rig *Rig) registerCatalog(ctx context.Context) error {
	if _, err := os.Stat(rig.path("done", "catalog")); err == nil {
		return nil
	}
	rig.say("openstack: registering regions, service users and endpoints in Keystone")
	pc, err := rig.adminClient(ctx)
	if err != nil {
		return err
	}
	id, err := osclient.NewIdentityV3(pc, gophercloud.EndpointOpts{})
	if err != nil {
		return err
	}
	for _, r := range regions {
		if err := identityregions.Get(ctx, id, r.Name).Err; err != nil {
			if !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
				return err
			}
			if _, err := identityregions.Create(ctx, id, identityregions.CreateOpts{ID: r.Name, Description: "conveyor test rig"}).Extract(); err != nil {
				return fmt.Errorf("creating region %s: %w", r.Name, err)
			}
		}
	}
	domainID := "default"
	project, err := findOrCreate(ctx, "project service", func() ([]projects.Project, error) {
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
	admin, err := findOrCreate(ctx, "role admin", func() ([]roles.Role, error) {
		pages, err := roles.List(id, roles.ListOpts{Name: "admin"}).AllPages(ctx)
		if err != nil {
			return nil, err
		}
		return roles.ExtractRoles(pages)
	}, nil)
	if err != nil {
		return err
	}
	password := rig.credentials().service
	for _, svc := range catalogServices() {
		if svc.user != "" {
			u, err := findOrCreate(ctx, "user "+svc.user, func() ([]users.User, error) {
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
		service, err := findOrCreate(ctx, "service "+svc.typ, func() ([]services.Service, error) {
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
		for _, r := range regions {
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
	return proc.WriteFile(rig.path("done", "catalog"), "", 0o644)
}

// findOrCreate returns the one item list finds, or what create makes when there is none
// (an error when create is nil).
func findOrCreate[T any](ctx context.Context, what string, list func() ([]T, error), create func() (*T, error)) (*T, error) {
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
