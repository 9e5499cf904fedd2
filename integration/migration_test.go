package integration

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/workflows/migrations"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/keypairs"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/services"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/openstack"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// The VM migration's tests move servers from the rig's eqiad1 to eqiad2. Each test
// makes a project of its own with servers, a flavor, a keypair and a security
// group in eqiad1, and serves the migrate pool with a real conveyor-worker in a
// Temporal namespace of its own, so no other worker takes its tasks.
const (
	vmFrom = "eqiad1"
	vmTo   = "eqiad2"
	vmNS   = "conveyor-test-vm-migration"
)

// checkMigrated checks the end state: each source server is gone, and exactly one
// server of its name runs in the destination, ACTIVE, with its flavor and
// metadata, booted from exactly one copy whose data equals the one snapshot's.
func checkMigrated(t *testing.T, pr *vmProject, st migrations.ProjectStatus) {
	t.Helper()
	ctx := context.Background()
	if st.Count(migrations.VMDone) != len(pr.servers) {
		t.Errorf("VMs %+v, want all %d done", st.VMs, len(pr.servers))
	}
	pages, err := servers.List(pr.dst.compute, nil).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dst, _ := servers.ExtractServers(pages)
	for name, src := range pr.servers {
		if _, err := servers.Get(ctx, pr.src.compute, src.ID).Extract(); !gophercloud.ResponseCodeIs(err, 404) {
			t.Errorf("source server %s still exists in %s (err %v), want it deleted after the grace period", name, vmFrom, err)
		}
		var same []servers.Server
		for _, d := range dst {
			if d.Name == name {
				same = append(same, d)
			}
		}
		if len(same) != 1 {
			t.Errorf("%d servers named %s in %s, want exactly one", len(same), name, vmTo)
			continue
		}
		d := same[0]
		if d.Status != "ACTIVE" || d.Flavor["original_name"] != pr.flavor || d.KeyName != pr.keypair ||
			d.Metadata["role"] != "web" || d.Metadata["index"] != src.Metadata["index"] ||
			d.Metadata[contract.MarkerMigratedFrom] != vmFrom+"/"+src.ID || d.Metadata[contract.MarkerVerified] == "" {
			t.Errorf("destination server %s: status %s flavor %v key %q metadata %v", name, d.Status, d.Flavor["original_name"], d.KeyName, d.Metadata)
		}
		snaps := imagesMarked(t, pr.src, contract.MarkerSourceServer, src.ID)
		if len(snaps) != 1 {
			t.Errorf("%d snapshots of %s in %s, want exactly one", len(snaps), name, vmFrom)
			continue
		}
		copies := imagesMarked(t, pr.dst, contract.MarkerSourceImage, vmFrom+"/"+snaps[0].ID)
		if len(copies) != 1 {
			t.Errorf("%d copies of %s's snapshot in %s, want exactly one", len(copies), name, vmTo)
			continue
		}
		if d.Image["id"] != copies[0].ID {
			t.Errorf("destination server %s booted from %v, not the copy %s", name, d.Image["id"], copies[0].ID)
		}
		a, b := download(t, pr.src, snaps[0].ID), download(t, pr.dst, copies[0].ID)
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("the copy of %s's snapshot differs: %d bytes %q, source %d bytes %q", name, len(b), b, len(a), a)
		}
		if copies[0].Checksum != snaps[0].Checksum || fmt.Sprint(copies[0].Properties["os_hash_value"]) != fmt.Sprint(snaps[0].Properties["os_hash_value"]) {
			t.Errorf("checksums differ: copy %s, snapshot %s", copies[0].Checksum, snaps[0].Checksum)
		}
	}
}

// TestProjectMigrationEndToEnd plans (dry run: nothing changes) and then migrates
// a project of three servers, two at a time, and checks the destination.
func TestProjectMigrationEndToEnd(t *testing.T) {
	r := openStackRig(t)
	c := vmTemporal(t)
	_, wout := startMigrateWorker(t)
	pr := newVMProject(t, r, 3)

	ctx := context.Background()
	plan, err := openstack.PlanProject(ctx, r.cfg, contract.PreflightInput{Project: pr.name, From: vmFrom, To: vmTo})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Servers) != 3 || plan.Servers[0].State != contract.ServerToMigrate || len(plan.Servers[0].Steps) == 0 {
		t.Errorf("plan servers %+v, want 3 to migrate", plan.Servers)
	}
	wantRes := map[string]string{"flavor/" + pr.flavor: contract.ResourceWillCreate, "keypair/" + pr.keypair: contract.ResourceWillCreate}
	for _, res := range plan.Resources {
		if w, ok := wantRes[res.Kind+"/"+res.Name]; ok && res.Action != w {
			t.Errorf("plan resource %+v, want %s", res, w)
		}
		delete(wantRes, res.Kind+"/"+res.Name)
	}
	if len(wantRes) != 0 {
		t.Errorf("the plan %+v lacks %v", plan.Resources, wantRes)
	}
	if !slices.ContainsFunc(plan.Resources, func(res contract.ResourceAction) bool { return res.Kind == "security-group" && res.Name == pr.group }) {
		t.Errorf("the plan %+v does not mention security group %s", plan.Resources, pr.group)
	}
	if _, err := keypairs.Get(ctx, pr.dst.compute, pr.keypair, nil).Extract(); !gophercloud.ResponseCodeIs(err, 404) {
		t.Errorf("after the dry run keypair %s exists in %s (err %v): a dry run must change nothing", pr.keypair, vmTo, err)
	}

	// A history limit that the first two VMs reach: the first run waits for
	// them and continues as new, the second migrates the third.
	run := startProjectMigrationInput(t, c, migrations.ProjectMigrationInput{Project: pr.name, From: vmFrom, To: vmTo,
		MaxParallel: 2, GracePeriod: 5 * time.Second, MaxEventsPerRun: 20})
	first := run.GetRunID()
	st := waitProjectMigration(t, run, wout)
	stacktest.RecordHistory(t, c, run.GetID(), first, "projectmigration-three-servers.json")
	stacktest.RecordHistory(t, c, run.GetID(), run.GetRunID(), "projectmigration-continued.json")
	if st.Runs != 2 || run.GetRunID() == first {
		t.Errorf("the project migration took %d runs, want 2 (one continue-as-new)", st.Runs)
	}
	if len(st.VMs) > 0 {
		stacktest.RecordHistory(t, c, st.VMs[0].WorkflowID, "", "vmmigration-success.json")
	}
	checkMigrated(t, pr, st)
	for _, res := range st.Plan.Resources {
		if (res.Kind == "flavor" || res.Kind == "keypair") && res.Action != contract.ResourceCreated {
			t.Errorf("preflight resource %+v, want created", res)
		}
	}
}

// TestProjectMigrationSurvivesWorkerKill kills the worker (SIGKILL) while an image
// copy is in flight and while the destination server is being created, starts a
// new worker, and expects the migration to finish with no second image or server.
func TestProjectMigrationSurvivesWorkerKill(t *testing.T) {
	r := openStackRig(t)
	for _, step := range []string{migrations.VMStepCopy, migrations.VMStepCreate} {
		t.Run(step, func(t *testing.T) {
			c := vmTemporal(t)
			// A slow copy (the rig's snapshots are ~70 bytes) so that the kill lands
			// inside it.
			env := []string{openstack.CopyRateEnv + "=4"}
			worker, wout := startMigrateWorker(t, env...)
			pr := newVMProject(t, r, 1)
			run := startProjectMigration(t, c, pr, 1)
			// The kill lands while the step's activity runs on the worker.
			want := map[string][]string{
				migrations.VMStepCopy:   {contract.MigrateCopyImage.Name},
				migrations.VMStepCreate: {contract.MigrateCreateServer.Name, contract.MigrateWaitActive.Name},
			}[step]
			stacktest.WaitFor(t, 5*time.Minute, "the VM migration running "+strings.Join(want, " or "), func() error {
				st, err := vmProgress(c, run)
				if err != nil {
					return err
				}
				if len(st.VMs) != 1 || st.VMs[0].WorkflowID == "" {
					return fmt.Errorf("VMs %+v", st.VMs)
				}
				d, err := c.DescribeWorkflowExecution(context.Background(), st.VMs[0].WorkflowID, "")
				if err != nil {
					return err
				}
				for _, a := range d.GetPendingActivities() {
					if slices.Contains(want, a.GetActivityType().GetName()) && a.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED {
						return nil
					}
				}
				return fmt.Errorf("pending activities %v", d.GetPendingActivities())
			})
			// The project knows a VM's step only from its grace period on; the VM
			// migration answers for itself (`conveyor migrate status --project`
			// asks it).
			// The copy is slow; the creation may reach ACTIVE meanwhile.
			steps := map[string][]string{
				migrations.VMStepCopy:   {migrations.VMStepCopy},
				migrations.VMStepCreate: {migrations.VMStepCreate, migrations.VMStepWaitActive, migrations.VMStepVerify, migrations.VMStepMark},
			}[step]
			if st, err := vmProgress(c, run); err != nil || len(st.VMs) != 1 {
				t.Errorf("progress %+v: %v", st, err)
			} else if v, err := c.QueryWorkflow(context.Background(), st.VMs[0].WorkflowID, "", migrations.QueryVMProgress); err != nil {
				t.Errorf("querying %s: %v", st.VMs[0].WorkflowID, err)
			} else {
				var p migrations.VMProgress
				if err := v.Get(&p); err != nil || !slices.Contains(steps, p.Step) || p.ServerID != st.VMs[0].ID {
					t.Errorf("the VM migration says %+v (%v), want server %s in one of %v", p, err, st.VMs[0].ID, steps)
				}
			}
			if err := worker.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_, _ = worker.Process.Wait()
			_, wout2 := startMigrateWorker(t, env...)
			st := waitProjectMigration(t, run, wout2)
			stacktest.RecordHistory(t, c, st.VMs[0].WorkflowID, "", "vmmigration-worker-killed-in-"+step+".json")
			checkMigrated(t, pr, st)
			// The kill must have cut an attempt short: a step ran again on the new
			// worker (the copy itself, or the creation or its wait for ACTIVE).
			again := retriedActivities(t, c, st.VMs[0].WorkflowID)
			t.Logf("started again after the kill: %v", again)
			if !slices.ContainsFunc(want, func(a string) bool { return slices.Contains(again, a) }) {
				t.Errorf("activities started more than once: %v; want one of %v (the kill missed the step)\nfirst worker:\n%s", again, want, wout.String())
			}
		})
	}
}

// TestProjectMigrationErrorKeepsSource disables eqiad2's nova-compute so the
// destination server goes to ERROR (no valid host): the VM fails with the fault,
// its source is kept; after the service is enabled again, retry completes it.
func TestProjectMigrationErrorKeepsSource(t *testing.T) {
	r := openStackRig(t)
	c := vmTemporal(t)
	_, wout := startMigrateWorker(t)
	pr := newVMProject(t, r, 1)
	ctx := context.Background()

	admin := r.region(t, r.admin, vmTo)
	sp, err := services.List(admin.compute, services.ListOpts{Binary: "nova-compute"}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	svcs, _ := services.ExtractServices(sp)
	if len(svcs) == 0 {
		t.Fatalf("no nova-compute service in %s", vmTo)
	}
	setCompute := func(status services.ServiceStatus) {
		for _, s := range svcs {
			opts := services.UpdateOpts{Status: status}
			if status == services.ServiceDisabled {
				opts.DisabledReason = "conveyor test: make the destination fail"
			}
			if _, err := services.Update(ctx, admin.compute, s.ID, opts).Extract(); err != nil {
				t.Errorf("setting nova-compute %s in %s %s: %v", s.Host, vmTo, status, err)
			}
		}
	}
	setCompute(services.ServiceDisabled)
	enabled := false
	t.Cleanup(func() {
		if !enabled {
			setCompute(services.ServiceEnabled)
		}
	})

	run := startProjectMigration(t, c, pr, 1)
	var failed migrations.VMStatus
	stacktest.WaitFor(t, 5*time.Minute, "the VM migration failing", func() error {
		st, err := vmProgress(c, run)
		if err != nil {
			return err
		}
		if len(st.VMs) != 1 || st.VMs[0].State != migrations.VMFailed {
			return fmt.Errorf("VMs %+v", st.VMs)
		}
		failed = st.VMs[0]
		return nil
	})
	if !strings.Contains(failed.Error, "ERROR") || !strings.Contains(strings.ToLower(failed.Error), "valid host") {
		t.Errorf("the failure %q does not report the server's ERROR and its fault (no valid host)", failed.Error)
	}
	for name, s := range pr.servers {
		got, err := servers.Get(ctx, pr.src.compute, s.ID).Extract()
		if err != nil || got.Status != "SHUTOFF" {
			t.Fatalf("after the failure source %s is %v (err %v), want it kept (SHUTOFF)", name, got, err)
		}
	}

	setCompute(services.ServiceEnabled)
	enabled = true
	uh, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: run.GetID(), RunID: run.GetRunID(),
		UpdateName: migrations.UpdateRetry, Args: []any{migrations.RetryRequest{By: "integration-test"}}, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err != nil {
		t.Fatal(err)
	}
	var queued []string
	if err := uh.Get(ctx, &queued); err != nil || len(queued) != 1 {
		t.Fatalf("retry queued %v (err %v), want the one VM", queued, err)
	}
	st := waitProjectMigration(t, run, wout)
	stacktest.RecordHistory(t, c, run.GetID(), run.GetRunID(), "projectmigration-error-then-retry.json")
	stacktest.RecordHistory(t, c, st.VMs[0].WorkflowID, "", "vmmigration-after-retry.json")
	checkMigrated(t, pr, st)
	if st.VMs[0].Runs != 2 {
		t.Errorf("the VM ran %d times, want 2", st.VMs[0].Runs)
	}
}

// TestMigrationStepsFindTheirEarlierWork calls the VM migration's activities
// directly, each twice, on the rig: a repeated step finds its earlier work by its
// markers (the same snapshot, copy and server), an unfinished copy left by a
// crash is replaced, and the source is deleted only once the destination is
// verified and marked.
func TestMigrationStepsFindTheirEarlierWork(t *testing.T) {
	r := openStackRig(t)
	pr := newVMProject(t, r, 1)
	a, err := openstack.New(config.Config{OpenStack: r.cfg}, openstack.WithPoll(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var src servers.Server
	for _, s := range pr.servers {
		src = s
	}
	vm := contract.VMRef{Project: pr.name, From: vmFrom, To: vmTo, ServerID: src.ID, ServerName: src.Name, Key: "test/" + src.ID}
	for range 2 {
		if out, err := a.MigrateStopSource(ctx, vm); err != nil || out.Status != "SHUTOFF" {
			t.Fatalf("MigrateStopSource: %+v, %v", out, err)
		}
	}
	snap, err := a.MigrateSnapshot(ctx, vm)
	if err != nil {
		t.Fatal(err)
	}
	again, err := a.MigrateSnapshot(ctx, vm)
	if err != nil || again.ImageID != snap.ImageID || !again.Reused {
		t.Fatalf("second MigrateSnapshot %+v (%v), want the first's %s reused", again, err, snap.ImageID)
	}

	// A crash mid-copy leaves an image with the marker but without the
	// checksum marker: the next attempt replaces it.
	stale, err := images.Create(ctx, pr.dst.image, images.CreateOpts{Name: "stale", ContainerFormat: "bare", DiskFormat: "raw",
		Properties: map[string]string{contract.MarkerSourceImage: vmFrom + "/" + snap.ImageID}}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	cp, err := a.MigrateCopyImage(ctx, contract.CopyImageInput{VM: vm, Source: snap})
	if err != nil || cp.Reused || cp.ImageID == stale.ID || cp.HashValue != snap.HashValue {
		t.Fatalf("MigrateCopyImage after a crash: %+v (%v), want a new copy with hash %s", cp, err, snap.HashValue)
	}
	if _, err := images.Get(ctx, pr.dst.image, stale.ID).Extract(); !gophercloud.ResponseCodeIs(err, 404) {
		t.Errorf("the unfinished copy %s is still there (err %v)", stale.ID, err)
	}
	cp2, err := a.MigrateCopyImage(ctx, contract.CopyImageInput{VM: vm, Source: snap})
	if err != nil || cp2.ImageID != cp.ImageID || !cp2.Reused {
		t.Fatalf("second MigrateCopyImage %+v (%v), want %s reused", cp2, err, cp.ImageID)
	}

	if _, err := a.MigratePreflight(ctx, contract.PreflightInput{Project: pr.name, From: vmFrom, To: vmTo}); err != nil {
		t.Fatal(err)
	}
	srv, err := a.MigrateCreateServer(ctx, contract.CreateServerInput{VM: vm, ImageID: cp.ImageID})
	if err != nil {
		t.Fatal(err)
	}
	srv2, err := a.MigrateCreateServer(ctx, contract.CreateServerInput{VM: vm, ImageID: cp.ImageID})
	if err != nil || srv2.ServerID != srv.ServerID || !srv2.Reused {
		t.Fatalf("second MigrateCreateServer %+v (%v), want %s reused", srv2, err, srv.ServerID)
	}
	dest := contract.DestinationInput{VM: vm, ServerID: srv.ServerID, ImageID: cp.ImageID, SourceImage: snap}
	if _, err := a.MigrateWaitActive(ctx, dest); err != nil {
		t.Fatal(err)
	}
	if v, err := a.MigrateVerify(ctx, dest); err != nil || len(v.Problems) != 0 {
		t.Fatalf("MigrateVerify: %+v, %v", v, err)
	}
	if _, err := a.MigrateDeleteSource(ctx, dest); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("MigrateDeleteSource before the markers: %v, want a refusal", err)
	}
	if _, err := servers.Get(ctx, pr.src.compute, src.ID).Extract(); err != nil {
		t.Fatalf("the refused deletion deleted the source: %v", err)
	}
	if _, err := a.MigrateMark(ctx, dest); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if out, err := a.MigrateDeleteSource(ctx, dest); err != nil {
			t.Fatalf("MigrateDeleteSource #%d: %+v, %v", i+1, out, err)
		}
	}
	if _, err := servers.Get(ctx, pr.src.compute, src.ID).Extract(); !gophercloud.ResponseCodeIs(err, 404) {
		t.Errorf("source still there after MigrateDeleteSource (err %v)", err)
	}
}
