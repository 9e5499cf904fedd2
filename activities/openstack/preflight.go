package openstack

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/keypairs"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/projects"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/heartbeat"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// PlanProject says what migrating a project would do, changing nothing: its
// servers in the source deployment (with their state: to migrate, in progress,
// migrated) and the flavors, keypairs and security groups the destination lacks.
// It is the dry run behind `conveyor migrate ... --dry-run`, and what
// MigratePreflight answers with DryRun set.
func PlanProject(ctx context.Context, c config.OpenStack, in contract.PreflightInput) (contract.ProjectPlan, error) {
	a, err := New(config.Config{OpenStack: c})
	if err != nil {
		return contract.ProjectPlan{}, err
	}
	in.DryRun = true
	return a.preflight(ctx, in)
}

// MigratePreflight lists the project's servers in the source deployment and makes
// sure the flavors, keypairs and security groups they use exist by name in the
// destination, creating the missing ones; with DryRun it only reports them.
func (a *Activities) MigratePreflight(ctx context.Context, in contract.PreflightInput) (contract.ProjectPlan, error) {
	return a.preflight(ctx, in)
}

func (a *Activities) preflight(ctx context.Context, in contract.PreflightInput) (contract.ProjectPlan, error) {
	plan := contract.ProjectPlan{Project: in.Project, From: in.From, To: in.To, DryRun: in.DryRun, Servers: []contract.ServerPlan{}, Resources: []contract.ResourceAction{}}
	if in.Project == "" || in.From == "" || in.To == "" {
		return plan, badInput("the migration needs a project, a source (from) and a destination (to) deployment; got project %q from %q to %q", in.Project, in.From, in.To)
	}
	if in.From == in.To {
		return plan, badInput("from and to are both %q: a migration goes between two deployments", in.From)
	}
	admin, err := a.clients(ctx, in.From, "")
	if err != nil {
		return plan, err
	}
	pages, err := projects.List(admin.Identity, projects.ListOpts{Name: in.Project}).AllPages(ctx)
	if err != nil {
		return plan, fmt.Errorf("looking up project %s in Keystone: %w", in.Project, err)
	}
	ps, err := projects.ExtractProjects(pages)
	if err != nil {
		return plan, err
	}
	if len(ps) == 0 {
		return plan, badInput("project %q does not exist in Keystone", in.Project)
	}
	projectID := ps[0].ID
	src, err := a.clients(ctx, in.From, in.Project)
	if err != nil {
		return plan, err
	}
	dst, err := a.clients(ctx, in.To, in.Project)
	if err != nil {
		return plan, err
	}

	spages, err := servers.List(src.Compute, servers.ListOpts{}).AllPages(ctx)
	if err != nil {
		return plan, fmt.Errorf("listing the servers of project %s in %s: %w", in.Project, src.Region, err)
	}
	all, err := servers.ExtractServers(spages)
	if err != nil {
		return plan, err
	}
	var chosen []servers.Server
	for _, s := range all {
		if len(in.Servers) == 0 || slices.Contains(in.Servers, s.Name) || slices.Contains(in.Servers, s.ID) {
			chosen = append(chosen, s)
		}
	}
	for _, want := range in.Servers {
		if !slices.ContainsFunc(chosen, func(s servers.Server) bool { return s.Name == want || s.ID == want }) {
			return plan, badInput("server %q is not in project %s in %s", want, in.Project, src.Region)
		}
	}
	slices.SortFunc(chosen, func(a, b servers.Server) int { return strings.Compare(a.Name+a.ID, b.Name+b.ID) })

	// Flavors, keypairs and groups the destination needs, each once.
	seen := map[string]bool{}
	for i, s := range chosen {
		heartbeat.Record(ctx, fmt.Sprintf("server %d of %d", i+1, len(chosen)))
		sp := contract.ServerPlan{ID: s.ID, Name: s.Name, Status: s.Status, Flavor: flavorName(&s), KeyName: s.KeyName,
			SecurityGroups: securityGroups(&s), Metadata: userMetadata(s.Metadata), State: contract.ServerToMigrate}
		switch {
		case s.Metadata[contract.MarkerMigratedTo] != "":
			sp.State = contract.ServerMigrated
			sp.Steps = []string{"delete the source after the grace period (migrated to " + s.Metadata[contract.MarkerMigratedTo] + ")"}
		default:
			if s.Metadata[contract.MarkerMigration] != "" {
				sp.State = contract.ServerInProgress
			}
			sp.Steps = []string{
				fmt.Sprintf("stop %s in %s (now %s)", s.Name, src.Region, s.Status),
				"snapshot it (createImage) in " + src.Region,
				"copy the snapshot to " + dst.Region + "'s Glance, checksummed",
				fmt.Sprintf("create %s in %s with flavor %s", s.Name, dst.Region, sp.Flavor),
				"wait for ACTIVE, verify, mark both servers",
				"delete the source after the grace period and a second verification",
			}
		}
		plan.Servers = append(plan.Servers, sp)
		if sp.State == contract.ServerMigrated {
			continue
		}
		if k := "flavor/" + sp.Flavor; !seen[k] {
			seen[k] = true
			r, err := a.ensureFlavor(ctx, dst, &s, in.DryRun)
			if err != nil {
				return plan, err
			}
			plan.Resources = append(plan.Resources, r)
		}
		if k := "keypair/" + s.UserID + "/" + s.KeyName; s.KeyName != "" && !seen[k] {
			seen[k] = true
			r, err := ensureKeypair(ctx, src, dst, &s, in.DryRun)
			if err != nil {
				return plan, err
			}
			plan.Resources = append(plan.Resources, r)
		}
	}
	rs, err := ensureSecurityGroups(ctx, src, dst, projectID, in.DryRun)
	if err != nil {
		return plan, err
	}
	plan.Resources = append(plan.Resources, rs...)
	return plan, nil
}

// ensureFlavor makes sure a flavor named like the server's exists in dst, with the
// server's RAM, vCPUs and disk.
func (a *Activities) ensureFlavor(ctx context.Context, dst *clients, s *servers.Server, dry bool) (contract.ResourceAction, error) {
	name := flavorName(s)
	r := contract.ResourceAction{Kind: "flavor", Name: name}
	f, err := flavorByName(ctx, dst, name)
	if err != nil {
		return r, err
	}
	num := func(k string) int {
		if v, ok := s.Flavor[k].(float64); ok {
			return int(v)
		}
		return 0
	}
	ram, vcpus, disk := num("ram"), num("vcpus"), num("disk")
	switch {
	case f != nil:
		r.Action, r.Detail = contract.ResourceExists, fmt.Sprintf("%d MB, %d vCPUs, %d GB", f.RAM, f.VCPUs, f.Disk)
		if f.RAM != ram || f.VCPUs != vcpus || f.Disk != disk {
			r.Detail += fmt.Sprintf(" (the source's is %d MB, %d vCPUs, %d GB)", ram, vcpus, disk)
		}
		return r, nil
	case dry:
		r.Action, r.Detail = contract.ResourceWillCreate, fmt.Sprintf("%d MB, %d vCPUs, %d GB", ram, vcpus, disk)
		return r, nil
	}
	if _, err := flavors.Create(ctx, dst.Compute, flavors.CreateOpts{Name: name, RAM: ram, VCPUs: vcpus, Disk: &disk}).Extract(); err != nil {
		// A concurrent preflight may have created it: look again before failing.
		if f, err2 := flavorByName(ctx, dst, name); err2 == nil && f != nil {
			r.Action = contract.ResourceExists
			return r, nil
		}
		return r, fmt.Errorf("creating flavor %s in %s: %w", name, dst.Region, err)
	}
	r.Action, r.Detail = contract.ResourceCreated, fmt.Sprintf("%d MB, %d vCPUs, %d GB", ram, vcpus, disk)
	return r, nil
}

// ensureKeypair copies the server owner's keypair (its public key) to dst.
func ensureKeypair(ctx context.Context, src, dst *clients, s *servers.Server, dry bool) (contract.ResourceAction, error) {
	r := contract.ResourceAction{Kind: "keypair", Name: s.KeyName, Detail: "of user " + s.UserID}
	if _, err := keypairs.Get(ctx, dst.Compute, s.KeyName, keypairs.GetOpts{UserID: s.UserID}).Extract(); err == nil {
		r.Action = contract.ResourceExists
		return r, nil
	} else if !notFound(err) {
		return r, fmt.Errorf("reading keypair %s in %s: %w", s.KeyName, dst.Region, err)
	}
	kp, err := keypairs.Get(ctx, src.Compute, s.KeyName, keypairs.GetOpts{UserID: s.UserID}).Extract()
	if err != nil {
		return r, fmt.Errorf("reading keypair %s of user %s in %s: %w", s.KeyName, s.UserID, src.Region, err)
	}
	if dry {
		r.Action = contract.ResourceWillCreate
		return r, nil
	}
	if _, err := keypairs.Create(ctx, dst.Compute, keypairs.CreateOpts{Name: kp.Name, PublicKey: kp.PublicKey, UserID: s.UserID, Type: kp.Type}).Extract(); err != nil {
		return r, fmt.Errorf("creating keypair %s in %s: %w", s.KeyName, dst.Region, err)
	}
	r.Action = contract.ResourceCreated
	return r, nil
}

// ensureSecurityGroups makes sure every security group of the project in src
// (but "default", which Neutron makes itself) exists by name in dst with the
// same rules.
func ensureSecurityGroups(ctx context.Context, src, dst *clients, projectID string, dry bool) ([]contract.ResourceAction, error) {
	list := func(c *clients) ([]groups.SecGroup, error) {
		pages, err := groups.List(c.Network, groups.ListOpts{ProjectID: projectID}).AllPages(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing security groups in %s: %w", c.Region, err)
		}
		return groups.ExtractGroups(pages)
	}
	have, err := list(src)
	if err != nil {
		return nil, err
	}
	there, err := list(dst)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(have, func(a, b groups.SecGroup) int { return strings.Compare(a.Name, b.Name) })
	var out []contract.ResourceAction
	for _, g := range have {
		if g.Name == "default" {
			continue
		}
		r := contract.ResourceAction{Kind: "security-group", Name: g.Name, Detail: fmt.Sprintf("%d rules", len(g.Rules))}
		i := slices.IndexFunc(there, func(t groups.SecGroup) bool { return t.Name == g.Name })
		switch {
		case i >= 0:
			r.Action = contract.ResourceExists
		case dry:
			r.Action = contract.ResourceWillCreate
		default:
			ng, err := groups.Create(ctx, dst.Network, groups.CreateOpts{Name: g.Name, Description: g.Description, ProjectID: projectID}).Extract()
			if err != nil {
				return nil, fmt.Errorf("creating security group %s in %s: %w", g.Name, dst.Region, err)
			}
			if err := copyRules(ctx, dst, g, *ng); err != nil {
				return nil, err
			}
			r.Action = contract.ResourceCreated
		}
		out = append(out, r)
	}
	return out, nil
}

// copyRules adds to/into the rules of from it lacks. A rule naming another group
// as its remote is copied only when that group is from itself.
func copyRules(ctx context.Context, c *clients, from, to groups.SecGroup) error {
	key := func(r rules.SecGroupRule, self string) string {
		remote := r.RemoteGroupID
		if remote == self {
			remote = "self"
		}
		return fmt.Sprint(r.Direction, r.EtherType, r.Protocol, r.PortRangeMin, r.PortRangeMax, r.RemoteIPPrefix, remote)
	}
	existing := map[string]bool{}
	for _, r := range to.Rules {
		existing[key(r, to.ID)] = true
	}
	for _, r := range from.Rules {
		if existing[key(r, from.ID)] || (r.RemoteGroupID != "" && r.RemoteGroupID != from.ID) {
			continue
		}
		remote := ""
		if r.RemoteGroupID == from.ID {
			remote = to.ID
		}
		_, err := rules.Create(ctx, c.Network, rules.CreateOpts{
			Direction: rules.RuleDirection(r.Direction), EtherType: rules.RuleEtherType(r.EtherType), SecGroupID: to.ID,
			PortRangeMin: r.PortRangeMin, PortRangeMax: r.PortRangeMax, Protocol: rules.RuleProtocol(r.Protocol),
			RemoteIPPrefix: r.RemoteIPPrefix, RemoteGroupID: remote, Description: r.Description, ProjectID: to.ProjectID,
		}).Extract()
		if err != nil {
			return fmt.Errorf("copying a rule of security group %s in %s: %w", from.Name, c.Region, err)
		}
	}
	return nil
}
