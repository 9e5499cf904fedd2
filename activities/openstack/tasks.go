package openstack

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/services"
	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/activities/contract"
)

// The automated tasks MigrationTask knows, by the name a stage's plan gives them.
// Tasks that need hands or tools conveyor does not drive (ordering hardware,
// installing Kubernetes or openstack-helm) are human tasks of the plan; the test
// battery, the projects' migration and the cleanup of leftovers run as child
// workflows of their stage (migrations.TestBattery, ProjectsMigration, Cleanup).
const (
	// TaskOldHostsDrained disables every nova-compute service of the legacy
	// deployment, once it has no servers left, so nothing is scheduled there again.
	TaskOldHostsDrained = "old hosts drained"
)

// drainedReason is the disabled_reason conveyor leaves on the legacy hosts.
const drainedReason = "conveyor: migration finished, host drained"

var tasks = map[string]func(a *Activities, ctx context.Context, in contract.MigrationTaskInput) (string, error){
	TaskOldHostsDrained: (*Activities).drainOldHosts,
}

// TaskNames lists the tasks MigrationTask knows, sorted.
func TaskNames() []string {
	names := make([]string, 0, len(tasks))
	for n := range tasks {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// MigrationTask runs one automated task of a stage by name. A task conveyor
// cannot do, or one that cannot succeed until a person fixes something, fails
// with contract.ErrMigrationTaskFailed (not retried) saying what to do; the stage
// then waits for the task to be marked done.
func (a *Activities) MigrationTask(ctx context.Context, in contract.MigrationTaskInput) (contract.MigrationTaskOutput, error) {
	fn, ok := tasks[in.Task]
	if !ok {
		return contract.MigrationTaskOutput{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("conveyor cannot do task %q of stage %s by itself (the tasks it automates are %q): do it and mark it done with task-done",
				in.Task, in.Stage, TaskNames()), contract.ErrMigrationTaskFailed, nil)
	}
	detail, err := fn(a, ctx, in)
	return contract.MigrationTaskOutput{Detail: detail}, err
}

// drainOldHosts disables the legacy deployment's compute services once no
// server is left; already disabled services are left alone.
func (a *Activities) drainOldHosts(ctx context.Context, in contract.MigrationTaskInput) (string, error) {
	cl, err := a.adminClients(ctx, in.From)
	if err != nil {
		return "", err
	}
	ss, err := allServers(ctx, cl.Compute, "")
	if err != nil {
		return "", err
	}
	if len(ss) > 0 {
		var names []string
		for _, s := range ss {
			names = append(names, s.Name+" ("+s.ID+")")
		}
		return "", temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("%s still has %d server(s): %s; migrate or delete them, then mark this task done or run the stage's cleanup", in.From, len(ss), strings.Join(names, ", ")),
			contract.ErrMigrationTaskFailed, nil)
	}
	pages, err := services.List(cl.Compute, services.ListOpts{Binary: "nova-compute"}).AllPages(ctx)
	if err != nil {
		return "", fmt.Errorf("listing compute services of %s: %w", in.From, err)
	}
	svcs, err := services.ExtractServices(pages)
	if err != nil {
		return "", err
	}
	var disabled, already []string
	for _, s := range svcs {
		if s.Status == string(services.ServiceDisabled) {
			already = append(already, s.Host)
			continue
		}
		if _, err := services.Update(ctx, cl.Compute, s.ID, services.UpdateOpts{Status: services.ServiceDisabled, DisabledReason: drainedReason}).Extract(); err != nil {
			return "", fmt.Errorf("disabling compute service %s on %s: %w", s.ID, s.Host, err)
		}
		disabled = append(disabled, s.Host)
	}
	return fmt.Sprintf("%s has no servers; disabled compute hosts: %s; already disabled: %s", in.From, listOrNone(disabled), listOrNone(already)), nil
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	slices.Sort(s)
	return strings.Join(s, ", ")
}
