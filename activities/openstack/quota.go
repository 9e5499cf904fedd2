package openstack

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/quotasets"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/projects"

	"github.com/wikimedia/conveyor/activities/contract"
)

// The organic mode of stage 4: a project's compute quota in the legacy deployment
// goes to zero so that new servers can only be created in the new one. The quota
// it had is kept on the Keystone project as a property (contract.QuotaMarker), a
// JSON object {"instances":…,"cores":…,"ram":…}, so that it survives the worker
// and can be restored with ThawLegacyQuota.

// FreezeLegacyQuota sets in.Project's instances, cores and RAM quota in
// in.Deployment to zero, saving the quota it had first. It is idempotent: a quota
// already at zero keeps the saved one; a quota raised again since is saved anew.
// The quota is forced below the project's usage: its servers keep running.
func (a *Activities) FreezeLegacyQuota(ctx context.Context, in contract.QuotaInput) (contract.QuotaOutput, error) {
	out := contract.QuotaOutput{Deployment: in.Deployment, Project: in.Project}
	cl, p, cur, err := a.readQuota(ctx, in, &out)
	if err != nil {
		return out, err
	}
	saved, hasSaved := savedQuota(p, in.Deployment)
	out.Saved, out.Quota = saved, cur
	if cur.IsZero() {
		if hasSaved {
			out.Detail = fmt.Sprintf("compute quota of %s in %s is already 0; the saved quota (%s) is kept in project property %s", in.Project, in.Deployment, quotaString(saved), contract.QuotaMarker(in.Deployment))
		} else {
			out.Detail = fmt.Sprintf("compute quota of %s in %s is already 0 and nothing is saved: it was 0 before conveyor", in.Project, in.Deployment)
		}
		return out, nil
	}
	if in.DryRun {
		out.Saved, out.Quota = cur, contract.ComputeQuota{}
		out.Detail = fmt.Sprintf("would set the compute quota of %s in %s to 0 (now %s) and save it in project property %s", in.Project, in.Deployment, quotaString(cur), contract.QuotaMarker(in.Deployment))
		return out, nil
	}
	// Save first: a crash between the two calls leaves the quota saved and not yet
	// zero, which the retry finds and finishes.
	b, _ := json.Marshal(cur)
	if _, err := projects.Update(ctx, cl.Identity, p.ID, projects.UpdateOpts{Extra: map[string]any{contract.QuotaMarker(in.Deployment): string(b)}}).Extract(); err != nil {
		return out, fmt.Errorf("saving the compute quota of %s in its Keystone project: %w", in.Project, err)
	}
	zero := 0
	if _, err := quotasets.Update(ctx, cl.Compute, p.ID, quotasets.UpdateOpts{Instances: &zero, Cores: &zero, RAM: &zero, Force: true}).Extract(); err != nil {
		return out, fmt.Errorf("setting the compute quota of %s in %s to 0: %w", in.Project, in.Deployment, err)
	}
	out.Saved, out.Quota, out.Changed = cur, contract.ComputeQuota{}, true
	out.Detail = fmt.Sprintf("set the compute quota of %s in %s to 0 (was %s, saved in project property %s)", in.Project, in.Deployment, quotaString(cur), contract.QuotaMarker(in.Deployment))
	return out, nil
}

// ThawLegacyQuota restores the quota FreezeLegacyQuota saved for in.Project in
// in.Deployment and removes the saved copy. Without a saved copy it changes
// nothing.
func (a *Activities) ThawLegacyQuota(ctx context.Context, in contract.QuotaInput) (contract.QuotaOutput, error) {
	out := contract.QuotaOutput{Deployment: in.Deployment, Project: in.Project}
	cl, p, cur, err := a.readQuota(ctx, in, &out)
	if err != nil {
		return out, err
	}
	saved, ok := savedQuota(p, in.Deployment)
	out.Saved, out.Quota = saved, cur
	if !ok {
		out.Detail = fmt.Sprintf("no saved compute quota for %s in %s: the quota (%s) is left as it is", in.Project, in.Deployment, quotaString(cur))
		return out, nil
	}
	if in.DryRun {
		out.Quota = saved
		out.Detail = fmt.Sprintf("would restore the compute quota of %s in %s to %s (now %s)", in.Project, in.Deployment, quotaString(saved), quotaString(cur))
		return out, nil
	}
	if cur != saved {
		if _, err := quotasets.Update(ctx, cl.Compute, p.ID, quotasets.UpdateOpts{Instances: &saved.Instances, Cores: &saved.Cores, RAM: &saved.RAM}).Extract(); err != nil {
			return out, fmt.Errorf("restoring the compute quota of %s in %s: %w", in.Project, in.Deployment, err)
		}
		out.Changed = true
	}
	if _, err := projects.Update(ctx, cl.Identity, p.ID, projects.UpdateOpts{Extra: map[string]any{contract.QuotaMarker(in.Deployment): nil}}).Extract(); err != nil {
		return out, fmt.Errorf("removing the saved quota from project %s: %w", in.Project, err)
	}
	out.Quota = saved
	out.Detail = fmt.Sprintf("restored the compute quota of %s in %s to %s", in.Project, in.Deployment, quotaString(saved))
	return out, nil
}

// readQuota reads what both quota activities start from: the admin clients of
// in.Deployment, in.Project (its ID goes into out) and its compute quota now.
func (a *Activities) readQuota(ctx context.Context, in contract.QuotaInput, out *contract.QuotaOutput) (*clients, *projects.Project, contract.ComputeQuota, error) {
	cl, err := a.adminClients(ctx, in.Deployment)
	if err != nil {
		return nil, nil, contract.ComputeQuota{}, err
	}
	p, err := projectByName(ctx, cl.Identity, in.Project)
	if err != nil {
		return nil, nil, contract.ComputeQuota{}, err
	}
	out.ProjectID = p.ID
	cur, err := computeQuota(ctx, cl, p.ID)
	if err != nil {
		return nil, nil, contract.ComputeQuota{}, err
	}
	return cl, p, cur, nil
}

// computeQuota reads a project's compute quota in a deployment.
func computeQuota(ctx context.Context, cl *clients, projectID string) (contract.ComputeQuota, error) {
	q, err := quotasets.Get(ctx, cl.Compute, projectID).Extract()
	if err != nil {
		return contract.ComputeQuota{}, fmt.Errorf("reading the compute quota of project %s in %s: %w", projectID, cl.Deployment, err)
	}
	return contract.ComputeQuota{Instances: q.Instances, Cores: q.Cores, RAM: q.RAM}, nil
}

// savedQuota reads the quota kept on the project for deployment.
func savedQuota(p *projects.Project, deployment string) (contract.ComputeQuota, bool) {
	v, ok := p.Extra[contract.QuotaMarker(deployment)].(string)
	if !ok || v == "" {
		return contract.ComputeQuota{}, false
	}
	var q contract.ComputeQuota
	if err := json.NewDecoder(strings.NewReader(v)).Decode(&q); err != nil {
		return contract.ComputeQuota{}, false
	}
	return q, true
}

func quotaString(q contract.ComputeQuota) string {
	return fmt.Sprintf("instances=%d cores=%d ram=%dMB", q.Instances, q.Cores, q.RAM)
}
