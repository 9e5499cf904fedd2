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

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/openstack"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
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
// new one.
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
}
