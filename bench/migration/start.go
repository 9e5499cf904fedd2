package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/wikimedia/conveyor/workflows/migrations"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/wikimedia/conveyor/workflows"
)

// The benchmark's pair of deployments; only the stubs see them.
const (
	benchFrom = "bench-legacy"
	benchTo   = "bench-new"
	// benchGrace is each VM's grace period before its source is deleted: a real
	// durable timer, short so that the run measures throughput, not waiting.
	benchGrace = time.Second
)

// registerWorkflows registers the real workflows the benchmark runs.
func registerWorkflows(w worker.Registry) {
	w.RegisterWorkflow(migrations.ProjectsMigration)
	w.RegisterWorkflow(migrations.ProjectMigration)
	w.RegisterWorkflow(migrations.VMMigration)
}

// runDriver migrates every project through stage 4's driver, ProjectsMigration,
// in automatic mode: one workflow starts the ProjectMigration children, at most
// o.atOnce at a time, continuing as new as it goes. It returns the projects that
// did not end done.
func runDriver(ctx context.Context, cl client.Client, o options, id string, projects []string) ([]string, error) {
	in := migrations.ProjectsMigrationInput{From: benchFrom, To: benchTo, DefaultMode: migrations.ModeAutomatic,
		AtOnce: o.atOnce, MaxParallelVMs: o.perProject, GracePeriod: benchGrace}
	for _, p := range projects {
		in.Projects = append(in.Projects, migrations.ProjectSpec{Name: p})
	}
	run, err := cl.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueueMigrate}, migrations.ProjectsMigration, in)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", id, err)
	}
	var st migrations.ProjectsStatus
	if err := run.Get(ctx, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	var notDone []string
	for _, p := range st.Projects {
		if p.State != migrations.ProjectDone {
			notDone = append(notDone, p.Name+": "+string(p.State)+" "+p.Detail)
		}
	}
	if len(st.Projects) != len(projects) {
		notDone = append(notDone, fmt.Sprintf("the driver reports %d projects, not %d", len(st.Projects), len(projects)))
	}
	return notDone, nil
}

// runDirect starts one ProjectMigration per project, o.parallel starts at a time,
// all running at once, and waits for them. It returns the projects that did not
// migrate every VM.
func runDirect(ctx context.Context, cl client.Client, o options, projects []string, vms map[string]int) ([]string, error) {
	var mu sync.Mutex
	var notDone []string
	var wg sync.WaitGroup
	sem := make(chan struct{}, o.parallel)
	for _, p := range projects {
		sem <- struct{}{}
		run, err := cl.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: migrations.ProjectMigrationID(benchFrom, benchTo, p), TaskQueue: workflows.TaskQueueMigrate},
			migrations.ProjectMigration, migrations.ProjectMigrationInput{Project: p, From: benchFrom, To: benchTo, MaxParallel: o.perProject, GracePeriod: benchGrace})
		<-sem
		if err != nil {
			return nil, fmt.Errorf("starting project %s: %w", p, err)
		}
		wg.Go(func() {
			var st migrations.ProjectStatus
			err := run.Get(ctx, &st)
			if err == nil && (len(st.VMs) != vms[p] || st.Count(migrations.VMDone) != vms[p]) {
				err = fmt.Errorf("%d of %d VMs done, want %d", st.Count(migrations.VMDone), len(st.VMs), vms[p])
			}
			if err != nil {
				mu.Lock()
				notDone = append(notDone, p+": "+err.Error())
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return notDone, nil
}
