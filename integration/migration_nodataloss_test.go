package integration

// No data lost by the migration (issue 15): a retried VM migration reuses a
// snapshot only if the source has not run since it was taken, and stage 5's
// cleanup deletes only servers verified migrated, or named.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/openstack"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/workflows"
	"github.com/wikimedia/conveyor/workflows/migrations"
)

// vmActivities are the migrate pool's OpenStack activities, called directly.
func vmActivities(t *testing.T) *openstack.Activities {
	t.Helper()
	a, err := openstack.New(stacktest.OpenStack(t), openstack.WithPoll(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// onlyServer is the one server of a project made with newVMProject(t, r, 1).
func onlyServer(pr *vmProject) servers.Server {
	for _, s := range pr.servers {
		return s
	}
	return servers.Server{}
}

// restart starts a stopped server and stops it again, as an operator fixing a
// failed migration by hand might (and writing to it while it runs).
func restart(t *testing.T, r vmRegion, id string) {
	t.Helper()
	ctx := context.Background()
	if err := servers.Start(ctx, r.compute, id).ExtractErr(); err != nil {
		t.Fatalf("starting server %s: %v", id, err)
	}
	vmWaitStatus(t, r, id, "ACTIVE")
	if err := servers.Stop(ctx, r.compute, id).ExtractErr(); err != nil {
		t.Fatalf("stopping server %s: %v", id, err)
	}
	vmWaitStatus(t, r, id, "SHUTOFF")
}

// TestRetriedSnapshotIsTakenAgainAfterARestart runs the VM migration's first
// steps on the rig: a retry with the source untouched reuses the snapshot; once
// the source was started and stopped again, the retry takes a new snapshot
// (another image id), marks the old one stale, and the copy is made from the
// new one; once a destination was made from that copy and the source ran again,
// the next retry replaces that destination instead of reusing it.
func TestRetriedSnapshotIsTakenAgainAfterARestart(t *testing.T) {
	r := openStackRig(t)
	pr := newVMProject(t, r, 1)
	a := vmActivities(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s := onlyServer(pr)
	vm := contract.VMRef{Project: pr.name, From: vmFrom, To: vmTo, ServerID: s.ID, ServerName: s.Name, Key: "test-snapshot/" + s.ID}

	snapshot := func(what string) contract.ImageOutput {
		t.Helper()
		if _, err := a.MigrateStopSource(ctx, vm); err != nil {
			t.Fatalf("%s: stopping the source: %v", what, err)
		}
		out, err := a.MigrateSnapshot(ctx, vm)
		if err != nil {
			t.Fatalf("%s: snapshot: %v", what, err)
		}
		t.Logf("%s: snapshot %s reused=%v stale=%q", what, out.ImageID, out.Reused, out.Stale)
		return out
	}
	first := snapshot("first attempt")
	if first.Reused {
		t.Errorf("the first snapshot %s says it was reused", first.ImageID)
	}
	src, err := servers.Get(ctx, pr.src.compute, s.ID).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(src.Metadata[contract.MarkerStopped], "stop at ") {
		t.Errorf("source metadata %s = %q, want the stop Nova recorded", contract.MarkerStopped, src.Metadata[contract.MarkerStopped])
	}

	again := snapshot("retry, source untouched")
	if again.ImageID != first.ImageID || !again.Reused {
		t.Errorf("the retry with the source untouched made %s (reused=%v), want %s reused", again.ImageID, again.Reused, first.ImageID)
	}

	restart(t, pr.src, s.ID)
	fresh := snapshot("retry after a restart")
	if fresh.ImageID == first.ImageID || fresh.Reused {
		t.Fatalf("the retry after the source ran again reused snapshot %s (reused=%v): it predates the source's latest stop", fresh.ImageID, fresh.Reused)
	}
	if len(fresh.Stale) != 1 || !strings.HasPrefix(fresh.Stale[0], first.ImageID+": ") || !strings.Contains(fresh.Stale[0], "start at") {
		t.Errorf("stale = %q, want %s named stale for the start", fresh.Stale, first.ImageID)
	}
	old, err := images.Get(ctx, pr.src.image, first.ImageID).Extract()
	if err != nil {
		t.Fatalf("the stale snapshot %s must be kept, marked: %v", first.ImageID, err)
	}
	if old.Properties[contract.MarkerSourceServer] != nil || !strings.HasPrefix(fmt.Sprint(old.Properties[contract.MarkerStaleSnapshot]), s.ID+": ") || !strings.HasSuffix(old.Name, "-stale") {
		t.Errorf("stale snapshot %s: name %q, properties %v; want it renamed -stale, %s set and %s removed", old.ID, old.Name, old.Properties, contract.MarkerStaleSnapshot, contract.MarkerSourceServer)
	}

	cp, err := a.MigrateCopyImage(ctx, contract.CopyImageInput{VM: vm, Source: fresh})
	if err != nil {
		t.Fatalf("copying: %v", err)
	}
	copied, err := images.Get(ctx, pr.dst.image, cp.ImageID).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(copied.Properties[contract.MarkerSourceImage]), vmFrom+"/"+fresh.ImageID; got != want {
		t.Errorf("the copy %s was made from %s, want %s (not the stale %s)", cp.ImageID, got, want, first.ImageID)
	}
	if n := len(imagesMarked(t, pr.dst, contract.MarkerSourceImage, vmFrom+"/"+first.ImageID)); n != 0 {
		t.Errorf("%d copies of the stale snapshot %s in %s", n, first.ImageID, vmTo)
	}

	// The same record keeps the source from being deleted when it ran after the
	// destination was made from its snapshot (during the grace period, say).
	if _, err := a.MigratePreflight(ctx, contract.PreflightInput{Project: pr.name, From: vmFrom, To: vmTo}); err != nil {
		t.Fatal(err)
	}
	srv, err := a.MigrateCreateServer(ctx, contract.CreateServerInput{VM: vm, ImageID: cp.ImageID})
	if err != nil {
		t.Fatal(err)
	}
	dest := contract.DestinationInput{VM: vm, ServerID: srv.ServerID, ImageID: cp.ImageID, SourceImage: fresh}
	if _, err := a.MigrateWaitActive(ctx, dest); err != nil {
		t.Fatal(err)
	}
	if v, err := a.MigrateVerify(ctx, dest); err != nil || len(v.Problems) != 0 {
		t.Fatalf("verify before the restart: %v %q, want no problem", err, v.Problems)
	}
	restart(t, pr.src, s.ID)
	v, err := a.MigrateVerify(ctx, dest)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(v.Problems, func(p string) bool { return strings.Contains(p, "may differ from snapshot "+fresh.ImageID) }) {
		t.Errorf("verify after the source ran again: %q, want a problem naming snapshot %s", v.Problems, fresh.ImageID)
	}

	// The retry after that failed verification snapshots and copies again, and the
	// destination made from the stale copy is replaced, not reused.
	newer := snapshot("retry after the failed verification")
	if newer.ImageID == fresh.ImageID || newer.Reused {
		t.Fatalf("the retry reused snapshot %s (reused=%v), which predates the source's latest run", newer.ImageID, newer.Reused)
	}
	cp2, err := a.MigrateCopyImage(ctx, contract.CopyImageInput{VM: vm, Source: newer})
	if err != nil {
		t.Fatalf("copying again: %v", err)
	}
	srv2, err := a.MigrateCreateServer(ctx, contract.CreateServerInput{VM: vm, ImageID: cp2.ImageID})
	if err != nil {
		t.Fatal(err)
	}
	if srv2.ServerID == srv.ServerID || srv2.Reused {
		t.Fatalf("the retry reused destination %s (reused=%v), made from the stale copy %s; want a new one from %s", srv2.ServerID, srv2.Reused, cp.ImageID, cp2.ImageID)
	}
	if old, err := servers.Get(ctx, pr.dst.compute, srv.ServerID).Extract(); err == nil && old.Status != "DELETED" {
		t.Errorf("the destination made from the stale copy, %s, is still there (%s)", srv.ServerID, old.Status)
	}
	dest2 := contract.DestinationInput{VM: vm, ServerID: srv2.ServerID, ImageID: cp2.ImageID, SourceImage: newer}
	if _, err := a.MigrateWaitActive(ctx, dest2); err != nil {
		t.Fatal(err)
	}
	if v, err := a.MigrateVerify(ctx, dest2); err != nil || len(v.Problems) != 0 {
		t.Errorf("verify of the new destination: %v %q, want no problem", err, v.Problems)
	}
}

// migrateVM runs one VM's migration steps up to the markers (MigrateMark), as
// VMMigration does before its grace period, and returns its destination.
func migrateVM(ctx context.Context, t *testing.T, a *openstack.Activities, vm contract.VMRef) contract.DestinationInput {
	t.Helper()
	if _, err := a.MigrateStopSource(ctx, vm); err != nil {
		t.Fatal(err)
	}
	snap, err := a.MigrateSnapshot(ctx, vm)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := a.MigrateCopyImage(ctx, contract.CopyImageInput{VM: vm, Source: snap})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := a.MigrateCreateServer(ctx, contract.CreateServerInput{VM: vm, ImageID: cp.ImageID})
	if err != nil {
		t.Fatal(err)
	}
	dest := contract.DestinationInput{VM: vm, ServerID: srv.ServerID, ImageID: cp.ImageID, SourceImage: snap}
	if _, err := a.MigrateWaitActive(ctx, dest); err != nil {
		t.Fatal(err)
	}
	if v, err := a.MigrateVerify(ctx, dest); err != nil || len(v.Problems) != 0 {
		t.Fatalf("verifying %s: %v %q", vm.ServerName, err, v.Problems)
	}
	if _, err := a.MigrateMark(ctx, dest); err != nil {
		t.Fatal(err)
	}
	return dest
}

// TestCleanupDeletesOnlyVerifiedMigratedServers runs stage 5's Cleanup on the rig
// for a project with three servers in eqiad1: one migrated (markers, ACTIVE
// destination), one migrated whose destination was stopped since, one never
// migrated. The approval deletes only the first; the report says why the others
// stay. A second cleanup that names the two deletes them.
func TestCleanupDeletesOnlyVerifiedMigratedServers(t *testing.T) {
	r := openStackRig(t)
	pr := newVMProject(t, r, 3)
	a := vmActivities(t)
	tc, _, wout := modesWorker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if _, err := a.MigratePreflight(ctx, contract.PreflightInput{Project: pr.name, From: vmFrom, To: vmTo}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range pr.servers {
		names = append(names, n)
	}
	slices.Sort(names)
	migrated, stopped, never := pr.servers[names[0]], pr.servers[names[1]], pr.servers[names[2]]
	ref := func(s servers.Server) contract.VMRef {
		return contract.VMRef{Project: pr.name, From: vmFrom, To: vmTo, ServerID: s.ID, ServerName: s.Name, Key: "test-cleanup/" + s.ID}
	}
	ok := migrateVM(ctx, t, a, ref(migrated))
	bad := migrateVM(ctx, t, a, ref(stopped))
	if err := servers.Stop(ctx, pr.dst.compute, bad.ServerID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	vmWaitStatus(t, pr.dst, bad.ServerID, "SHUTOFF")

	cleanup := func(id string, named []string) migrations.CleanupReport {
		t.Helper()
		run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueueMigrate}, migrations.Cleanup,
			migrations.CleanupInput{From: vmFrom, To: vmTo, Projects: []string{pr.name}, Servers: named})
		if err != nil {
			t.Fatal(err)
		}
		rep := queryUntil(t, tc, id, migrations.QueryCleanup, 3*time.Minute, "the cleanup awaiting approval",
			func(r migrations.CleanupReport) bool { return r.State == migrations.CleanupAwaiting })
		t.Logf("%s awaiting: %s", id, rep.Summary)
		final := approveCleanup(ctx, t, tc, run, wout)
		t.Logf("%s: %s", id, final.Summary)
		return final
	}
	exists := func(s servers.Server) bool {
		_, err := servers.Get(ctx, pr.src.compute, s.ID).Extract()
		if err != nil && !gophercloud.ResponseCodeIs(err, 404) {
			t.Fatal(err)
		}
		return err == nil
	}

	final := cleanup("cleanup-verified-"+pr.name, nil)
	if exists(migrated) {
		t.Errorf("the migrated server %s (destination %s ACTIVE) is still in %s", migrated.Name, ok.ServerID, vmFrom)
	}
	if !exists(stopped) || !exists(never) {
		t.Fatalf("the cleanup deleted a server that is not verified migrated: %s there %v, %s there %v", stopped.Name, exists(stopped), never.Name, exists(never))
	}
	why := map[string]string{}
	for _, l := range final.Skipped {
		why[l.ID] = l.Unverified
	}
	if !strings.Contains(why[stopped.ID], "is SHUTOFF, not ACTIVE") || !strings.Contains(why[never.ID], "no "+contract.MarkerMigratedTo+" marker") || len(final.Skipped) != 2 {
		t.Errorf("skipped %+v, want %s (destination not ACTIVE) and %s (never migrated)", final.Skipped, stopped.Name, never.Name)
	}
	if !slices.ContainsFunc(final.Deleted, func(l contract.Leftover) bool { return l.ID == migrated.ID && l.MigratedTo == vmTo+"/"+ok.ServerID }) {
		t.Errorf("deleted %+v, want %s verified migrated to %s/%s", final.Deleted, migrated.Name, vmTo, ok.ServerID)
	}

	final = cleanup("cleanup-named-"+pr.name, []string{stopped.Name, never.ID})
	if exists(stopped) || exists(never) {
		t.Errorf("named servers still there: %s %v, %s %v (report %+v)", stopped.Name, exists(stopped), never.Name, exists(never), final)
	}
}
