package openstack

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/hypervisors"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/services"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/pagination"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/heartbeat"
)

// The entry checks MigrationCheck knows, by the name a stage's plan gives them.
const (
	// CheckLegacyAPIUp: the legacy (From) deployment's compute, image and network
	// APIs answer.
	CheckLegacyAPIUp = "legacy api up"
	// CheckHostsReachable: the new (To) deployment has compute services, all up.
	CheckHostsReachable = "hosts reachable"
	// CheckAPIEndpointsUp: both deployments' compute, image and network APIs answer.
	CheckAPIEndpointsUp = "api endpoints up"
	// CheckCapacityAvailable: the new deployment's free vCPUs and RAM cover what
	// the legacy one uses.
	CheckCapacityAvailable = "capacity available"
	// CheckOldDeploymentEmpty: the legacy deployment has no servers left.
	CheckOldDeploymentEmpty = "old deployment empty"
)

// checkFunc runs one check; a check that ran and failed returns ok false with a
// detail, an error means it could not run.
type checkFunc func(a *Activities, ctx context.Context, in contract.MigrationCheckInput) (ok bool, detail string, err error)

var checks = map[string]checkFunc{
	CheckLegacyAPIUp: func(a *Activities, ctx context.Context, in contract.MigrationCheckInput) (bool, string, error) {
		return a.apisUp(ctx, in.From)
	},
	CheckAPIEndpointsUp: func(a *Activities, ctx context.Context, in contract.MigrationCheckInput) (bool, string, error) {
		return a.apisUp(ctx, in.From, in.To)
	},
	CheckHostsReachable:     (*Activities).hostsReachable,
	CheckCapacityAvailable:  (*Activities).capacityAvailable,
	CheckOldDeploymentEmpty: (*Activities).oldDeploymentEmpty,
}

// CheckNames lists the checks MigrationCheck knows, sorted.
func CheckNames() []string {
	names := make([]string, 0, len(checks))
	for n := range checks {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// MigrationCheck runs a stage's entry checks by name against both deployments. A
// check that fails, cannot reach its deployment, or is unknown is a failed result
// saying why (an unknown one lists the names that exist); the activity itself
// fails only if the input is empty.
func (a *Activities) MigrationCheck(ctx context.Context, in contract.MigrationCheckInput) (contract.MigrationCheckOutput, error) {
	var out contract.MigrationCheckOutput
	if in.From == "" || in.To == "" {
		return out, badInput("the check input names no deployments (from %q, to %q)", in.From, in.To)
	}
	for _, name := range in.Checks {
		heartbeat.Record(ctx, "checking "+name)
		r := contract.MigrationCheckResult{Name: name}
		fn, ok := checks[name]
		if !ok {
			r.Detail = fmt.Sprintf("conveyor has no check %q: the checks it knows are %q; change the stage's entryChecks", name, CheckNames())
			out.Results = append(out.Results, r)
			continue
		}
		var err error
		r.OK, r.Detail, err = fn(a, ctx, in)
		if err != nil {
			r.OK, r.Detail = false, "could not check: "+err.Error()
		}
		out.Results = append(out.Results, r)
	}
	return out, nil
}

// apisUp asks each deployment's compute, image and network API for one page.
func (a *Activities) apisUp(ctx context.Context, deployments ...string) (bool, string, error) {
	var seen, problems []string
	for _, d := range deployments {
		cl, err := a.adminClients(ctx, d)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		var bad []string
		if _, err := flavors.ListDetail(cl.Compute, nil).AllPages(ctx); err != nil {
			bad = append(bad, "compute: "+err.Error())
		}
		limit := 1
		if err := images.List(cl.Image, images.ListOpts{Limit: limit}).EachPage(ctx, func(context.Context, pagination.Page) (bool, error) { return false, nil }); err != nil {
			bad = append(bad, "image: "+err.Error())
		}
		if err := networks.List(cl.Network, networks.ListOpts{Limit: limit}).EachPage(ctx, func(context.Context, pagination.Page) (bool, error) { return false, nil }); err != nil {
			bad = append(bad, "network: "+err.Error())
		}
		if len(bad) > 0 {
			problems = append(problems, fmt.Sprintf("%s (region %s): %s", d, cl.Region, strings.Join(bad, "; ")))
		} else {
			seen = append(seen, fmt.Sprintf("%s (region %s)", d, cl.Region))
		}
	}
	if len(problems) > 0 {
		return false, "not answering: " + strings.Join(problems, "; "), nil
	}
	return true, "compute, image and network answer in " + strings.Join(seen, " and "), nil
}

// hostsReachable checks the new deployment's nova-compute services.
func (a *Activities) hostsReachable(ctx context.Context, in contract.MigrationCheckInput) (bool, string, error) {
	cl, err := a.adminClients(ctx, in.To)
	if err != nil {
		return false, "", err
	}
	pages, err := services.List(cl.Compute, services.ListOpts{Binary: "nova-compute"}).AllPages(ctx)
	if err != nil {
		return false, "", fmt.Errorf("listing compute services of %s: %w", in.To, err)
	}
	svcs, err := services.ExtractServices(pages)
	if err != nil {
		return false, "", err
	}
	if len(svcs) == 0 {
		return false, fmt.Sprintf("%s has no nova-compute service registered", in.To), nil
	}
	var down, up []string
	for _, s := range svcs {
		if s.State != "up" {
			down = append(down, s.Host+" ("+s.State+")")
		} else {
			up = append(up, s.Host)
		}
	}
	slices.Sort(up)
	slices.Sort(down)
	if len(down) > 0 {
		return false, fmt.Sprintf("compute hosts of %s down: %s", in.To, strings.Join(down, ", ")), nil
	}
	return true, fmt.Sprintf("%d compute host(s) of %s up: %s", len(up), in.To, strings.Join(up, ", ")), nil
}

// capacityAvailable compares the new deployment's free capacity with what the
// legacy one uses, from the hypervisors' statistics.
func (a *Activities) capacityAvailable(ctx context.Context, in contract.MigrationCheckInput) (bool, string, error) {
	type capacity struct{ vcpus, vcpusUsed, ram, ramUsed int }
	read := func(d string) (capacity, error) {
		var c capacity
		cl, err := a.adminClients(ctx, d)
		if err != nil {
			return c, err
		}
		pages, err := hypervisors.List(cl.Compute, hypervisors.ListOpts{}).AllPages(ctx)
		if err != nil {
			return c, fmt.Errorf("listing hypervisors of %s: %w", d, err)
		}
		hs, err := hypervisors.ExtractHypervisors(pages)
		if err != nil {
			return c, err
		}
		for _, h := range hs {
			if h.Status == "enabled" && h.State == "up" {
				c.vcpus += h.VCPUs
				c.ram += h.MemoryMB
			}
			c.vcpusUsed += h.VCPUsUsed
			c.ramUsed += h.MemoryMBUsed
		}
		return c, nil
	}
	from, err := read(in.From)
	if err != nil {
		return false, "", err
	}
	to, err := read(in.To)
	if err != nil {
		return false, "", err
	}
	freeCPU, freeRAM := to.vcpus-to.vcpusUsed, to.ram-to.ramUsed
	detail := fmt.Sprintf("%s uses %d vCPUs and %d MB; %s has %d vCPUs and %d MB free", in.From, from.vcpusUsed, from.ramUsed, in.To, freeCPU, freeRAM)
	if freeCPU < from.vcpusUsed || freeRAM < from.ramUsed {
		return false, detail + ": add compute hosts to " + in.To, nil
	}
	return true, detail, nil
}

// oldDeploymentEmpty checks the legacy deployment has no servers left.
func (a *Activities) oldDeploymentEmpty(ctx context.Context, in contract.MigrationCheckInput) (bool, string, error) {
	cl, err := a.adminClients(ctx, in.From)
	if err != nil {
		return false, "", err
	}
	ss, err := allServers(ctx, cl.Compute, "")
	if err != nil {
		return false, "", err
	}
	if len(ss) == 0 {
		return true, in.From + " has no servers", nil
	}
	var names []string
	for i, s := range ss {
		if i == 10 {
			names = append(names, fmt.Sprintf("and %d more", len(ss)-10))
			break
		}
		names = append(names, s.Name+" ("+s.ID+")")
	}
	return false, fmt.Sprintf("%s still has %d server(s): %s; migrate or delete them", in.From, len(ss), strings.Join(names, ", ")), nil
}
