package openstack

import (
	"context"
	"fmt"
	"sort"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/projects"
	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/activities/contract"
)

// Helpers of the stage activities (checks.go, tasks.go, quota.go, battery.go,
// cleanup.go): look-ups by name across the account's view of both deployments.

// adminClients returns deployment's clients scoped to the migration account's own
// project, which must hold the admin role: the stage activities read and change
// every project.
func (a *Activities) adminClients(ctx context.Context, deployment string) (*clients, error) {
	cl, err := a.clients(ctx, deployment, "")
	if err != nil {
		return nil, fmt.Errorf("connecting to deployment %s: %w", deployment, err)
	}
	return cl, nil
}

// projectByName finds a Keystone project by name; a missing one is a
// non-retryable ErrMigrationInput.
func projectByName(ctx context.Context, identity *gophercloud.ServiceClient, name string) (*projects.Project, error) {
	pages, err := projects.List(identity, projects.ListOpts{Name: name}).AllPages(ctx)
	if err != nil {
		return nil, fmt.Errorf("looking up project %s in Keystone: %w", name, err)
	}
	ps, err := projects.ExtractProjects(pages)
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("Keystone has no project named %q: check the project's name (`openstack project list`)", name), contract.ErrMigrationInput, nil)
	}
	// Keystone's list filter is exact, but the extra properties come only with Get.
	p, err := projects.Get(ctx, identity, ps[0].ID).Extract()
	if err != nil {
		return nil, fmt.Errorf("reading project %s: %w", name, err)
	}
	return p, nil
}

// projectNames maps every Keystone project's id to its name.
func projectNames(ctx context.Context, identity *gophercloud.ServiceClient) (map[string]string, error) {
	pages, err := projects.List(identity, projects.ListOpts{}).AllPages(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing Keystone's projects: %w", err)
	}
	ps, err := projects.ExtractProjects(pages)
	if err != nil {
		return nil, err
	}
	names := make(map[string]string, len(ps))
	for _, p := range ps {
		names[p.ID] = p.Name
	}
	return names, nil
}

// allServers lists every server of the deployment, of every project (or of one
// project id when project is not empty), sorted by name then id.
func allServers(ctx context.Context, compute *gophercloud.ServiceClient, project string) ([]servers.Server, error) {
	pages, err := servers.List(compute, servers.ListOpts{AllTenants: true, TenantID: project}).AllPages(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing servers: %w", err)
	}
	ss, err := servers.ExtractServers(pages)
	if err != nil {
		return nil, err
	}
	sort.Slice(ss, func(i, j int) bool {
		if ss[i].Name != ss[j].Name {
			return ss[i].Name < ss[j].Name
		}
		return ss[i].ID < ss[j].ID
	})
	return ss, nil
}

// serversGet reads one server of any project.
func serversGet(ctx context.Context, cl *clients, id string) (*servers.Server, error) {
	return servers.Get(ctx, cl.Compute, id).Extract()
}
