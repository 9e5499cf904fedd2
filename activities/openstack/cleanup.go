package openstack

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/heartbeat"
)

// The stage-5 cleanup's activities and the projects driver's listing: what is
// left in the legacy deployment, by project.

// ListMigrationProjects lists the projects that own servers in in.Deployment,
// with how many, sorted by name.
func (a *Activities) ListMigrationProjects(ctx context.Context, in contract.ProjectsInput) (contract.ProjectsOutput, error) {
	var out contract.ProjectsOutput
	cl, err := a.adminClients(ctx, in.Deployment)
	if err != nil {
		return out, err
	}
	ss, err := allServers(ctx, cl.Compute, "")
	if err != nil {
		return out, err
	}
	names, err := projectNames(ctx, cl.Identity)
	if err != nil {
		return out, err
	}
	count := map[string]int{}
	for _, s := range ss {
		count[s.TenantID]++
	}
	for id, n := range count {
		name := names[id]
		if name == "" {
			name = id
		}
		out.Projects = append(out.Projects, contract.ProjectRef{ID: id, Name: name, Servers: n})
	}
	sort.Slice(out.Projects, func(i, j int) bool { return out.Projects[i].Name < out.Projects[j].Name })
	return out, nil
}

// ListLeftovers lists the servers and images of the chosen projects in
// in.Deployment: servers first, then images, each by project and name. With no
// projects named it looks at every project but the migration account's own and
// "service", so shared base images of the admin project are not leftovers. Each
// server's migrated-to marker is verified against in.Destination (migrated.go):
// MigratedTo is set when it holds, Unverified says why not.
func (a *Activities) ListLeftovers(ctx context.Context, in contract.LeftoversInput) (contract.LeftoversOutput, error) {
	var out contract.LeftoversOutput
	cl, err := a.adminClients(ctx, in.Deployment)
	if err != nil {
		return out, err
	}
	names, err := projectNames(ctx, cl.Identity)
	if err != nil {
		return out, err
	}
	ids := map[string]string{}
	for id, n := range names {
		ids[n] = id
	}
	var scope []string
	if len(in.Projects) > 0 {
		for _, p := range in.Projects {
			id, ok := ids[p]
			if !ok {
				return out, badInput("Keystone has no project named %q: check the cleanup's projects", p)
			}
			scope = append(scope, id)
		}
	} else {
		for id, n := range names {
			if n != a.cfg.ProjectName && n != "service" {
				scope = append(scope, id)
			}
		}
	}
	inScope := func(id string) bool { return slices.Contains(scope, id) }
	ss, err := allServers(ctx, cl.Compute, "")
	if err != nil {
		return out, err
	}
	to, err := a.destinationClients(ctx, in.Destination)
	if err != nil {
		return out, err
	}
	var servers, imgs []contract.Leftover
	for _, s := range ss {
		if !inScope(s.TenantID) {
			continue
		}
		l := contract.Leftover{Kind: contract.LeftoverServer, ID: s.ID, Name: s.Name, Project: names[s.TenantID], Status: s.Status}
		heartbeat.Record(ctx, "verifying "+l.String())
		if l.MigratedTo, l.Unverified, err = verifyMigrated(ctx, cl, to, &s); err != nil {
			return out, err
		}
		servers = append(servers, l)
	}
	pages, err := images.List(cl.Image, images.ListOpts{}).AllPages(ctx)
	if err != nil {
		return out, fmt.Errorf("listing images of %s: %w", in.Deployment, err)
	}
	all, err := images.ExtractImages(pages)
	if err != nil {
		return out, err
	}
	for _, im := range all {
		if inScope(im.Owner) {
			imgs = append(imgs, contract.Leftover{Kind: contract.LeftoverImage, ID: im.ID, Name: im.Name, Project: names[im.Owner], Status: string(im.Status)})
		}
	}
	for _, l := range [][]contract.Leftover{servers, imgs} {
		sort.Slice(l, func(i, j int) bool {
			if l[i].Project != l[j].Project {
				return l[i].Project < l[j].Project
			}
			if l[i].Name != l[j].Name {
				return l[i].Name < l[j].Name
			}
			return l[i].ID < l[j].ID
		})
		out.Resources = append(out.Resources, l...)
	}
	return out, nil
}

// DeleteLeftovers deletes the listed servers (waiting until each is gone) and
// then the images. A server not Named in the cleanup's input is deleted only if
// it is verified migrated to in.Destination now, when its turn comes; otherwise
// it is kept and reported in Skipped with the reason. A resource already gone is
// reported as such; a retry after a crash finds the earlier deletions done.
func (a *Activities) DeleteLeftovers(ctx context.Context, in contract.DeleteLeftoversInput) (contract.DeleteLeftoversOutput, error) {
	var out contract.DeleteLeftoversOutput
	for _, l := range in.Resources {
		if l.Kind != contract.LeftoverServer && l.Kind != contract.LeftoverImage {
			return out, badInput("leftover %s has kind %q: only %s and %s can be deleted", l.ID, l.Kind, contract.LeftoverServer, contract.LeftoverImage)
		}
	}
	cl, err := a.adminClients(ctx, in.Deployment)
	if err != nil {
		return out, err
	}
	to, err := a.destinationClients(ctx, in.Destination)
	if err != nil {
		return out, err
	}
	var failed []string
	for _, kind := range []string{contract.LeftoverServer, contract.LeftoverImage} {
		for _, l := range in.Resources {
			if l.Kind != kind {
				continue
			}
			heartbeat.Record(ctx, "deleting "+l.String())
			var err error
			switch kind {
			case contract.LeftoverServer:
				var srv *servers.Server
				srv, err = serversGet(ctx, cl, l.ID)
				if notFound(err) {
					out.Gone = append(out.Gone, l)
					continue
				}
				if err == nil && !l.Named {
					// Verified again: the destination may have gone since the listing.
					if l.MigratedTo, l.Unverified, err = verifyMigrated(ctx, cl, to, srv); err == nil && l.MigratedTo == "" {
						out.Skipped = append(out.Skipped, l)
						continue
					}
				}
				if err == nil {
					err = a.deleteServer(ctx, cl, l.ID)
				}
			default:
				err = images.Delete(ctx, cl.Image, l.ID).ExtractErr()
				if notFound(err) {
					out.Gone = append(out.Gone, l)
					continue
				}
			}
			if err != nil {
				failed = append(failed, l.String()+": "+err.Error())
				continue
			}
			out.Deleted = append(out.Deleted, l)
		}
	}
	if len(failed) > 0 {
		return out, fmt.Errorf("deleting leftovers of %s: %s", in.Deployment, strings.Join(failed, "; "))
	}
	return out, nil
}

// destinationClients are the admin clients of the deployment the servers were
// migrated to; nil when none is named.
func (a *Activities) destinationClients(ctx context.Context, deployment string) (*clients, error) {
	if deployment == "" {
		return nil, nil
	}
	return a.adminClients(ctx, deployment)
}
