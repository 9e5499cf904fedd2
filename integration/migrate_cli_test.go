package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/workflows/migrations"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
)

// TestMigrateCLI drives a CloudMigration through `conveyor migrate` on the real
// stack: a real conveyor-worker serves the migrate pool in a namespace of its own,
// the CLI binary starts the migration from a plan file, marks tasks done, is
// refused when it approves too early, approves both gates, watches the migration
// to its end and reports who did what.
func TestMigrateCLI(t *testing.T) {
	const ns = "conveyor-test-migrate-cli"
	nsCfg := stacktest.Namespace(t, ns)
	out := &syncBuffer{}
	worker := exec.Command(filepath.Join(binDir, "conveyor-worker"), "--config", stackConfigPath(), "--namespace", ns, "--pools", "migrate")
	worker.Stdout, worker.Stderr = out, out
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = worker.Process.Kill(); _, _ = worker.Process.Wait() })

	// A pair of its own per run: a finished migration cannot be started again.
	tag := randomHex(t)[:8]
	from, to := "clia"+tag, "clib"+tag
	plan := filepath.Join(t.TempDir(), "plan.yaml")
	// No entry checks and no automated tasks: the stages need no OpenStack.
	if err := os.WriteFile(plan, []byte(`from: `+from+`
to: `+to+`
reminderEvery: 720h
stages:
  - name: prepare
    months: 1
    tasks:
      - name: order racks
      - name: sign off
  - name: finish
    months: 2
    tasks:
      - name: close
`), 0o644); err != nil {
		t.Fatal(err)
	}
	migrate := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		all := append([]string{"--config", stackConfigPath(), "migrate"}, args...)
		all = append(all, "--namespace", ns)
		b, err := exec.CommandContext(ctx, filepath.Join(binDir, "conveyor"), all...).CombinedOutput()
		return string(b), err
	}
	must := func(want string, args ...string) string {
		t.Helper()
		got, err := migrate(args...)
		if err != nil {
			t.Fatalf("conveyor migrate %s: %v\n%s\nworker:\n%s", strings.Join(args, " "), err, got, out.String())
		}
		if !strings.Contains(got, want) {
			t.Fatalf("conveyor migrate %s printed\n%s\nwant it to contain %q", strings.Join(args, " "), got, want)
		}
		return got
	}
	refused := func(want string, args ...string) {
		t.Helper()
		got, err := migrate(args...)
		if err == nil || !strings.Contains(got, want) {
			t.Fatalf("conveyor migrate %s: err %v, output\n%s\nwant a failure saying %q", strings.Join(args, " "), err, got, want)
		}
	}
	pair := []string{"--from", from, "--to", to}
	with := func(args ...string) []string { return append(append([]string{}, args...), pair...) }

	must("started migration/"+from+"-"+to, "start", "--plan", plan)
	refused("was already started", "start", "--plan", plan)

	stacktest.WaitFor(t, time.Minute, "stage prepare open", func() error {
		got, err := migrate(with("status")...)
		if err != nil || !strings.Contains(got, "1 prepare: open") {
			return fmt.Errorf("%v\n%s", err, got)
		}
		return nil
	})
	refused("stage prepare refused: stage prepare still has open tasks: order racks, sign off", with("approve", "--approver", "bob")...)
	refused(`stage prepare has no task "order rack": its tasks are "order racks", "sign off"`, with("task-done", "--task", "order rack", "--by", "alice")...)
	must(`would send task-done {task: "order racks"`, with("task-done", "--task", "order racks", "--by", "alice", "--dry-run")...)
	must(`task "order racks" of stage prepare done by alice`, with("task-done", "--task", "order racks", "--by", "alice", "--note", "ticket T1")...)
	refused(`task "order racks" is already done (by alice`, with("task-done", "--task", "order racks", "--by", "alice")...)
	must(`task "sign off" of stage prepare done by carol`, with("task-done", "--stage", "prepare", "--task", "sign off", "--by", "carol")...)

	stacktest.WaitFor(t, time.Minute, "stage prepare awaiting approval", func() error {
		got, err := migrate(with("status")...)
		if err != nil || !strings.Contains(got, "waiting for the gate: conveyor migrate approve") {
			return fmt.Errorf("%v\n%s", err, got)
		}
		return nil
	})
	must("stage prepare awaits approval: it would pass its gate", with("approve", "--approver", "bob", "--dry-run")...)
	must("stage prepare approved by bob", with("approve", "--approver", "bob", "--reason", "racks in place")...)

	stacktest.WaitFor(t, time.Minute, "stage finish open", func() error {
		got, err := migrate(with("status", "--json")...)
		if err != nil {
			return fmt.Errorf("%v\n%s", err, got)
		}
		var st migrations.MigrationStatus
		if err := json.Unmarshal([]byte(got), &st); err != nil {
			return fmt.Errorf("status --json: %v\n%s", err, got)
		}
		if st.Current != 1 || st.Stages[1].State != migrations.StageOpen || st.Stages[0].ApprovedBy != "bob" {
			return fmt.Errorf("current %d, stages %+v", st.Current, st.Stages)
		}
		return nil
	})
	refused(`stage prepare was already approved by bob`, with("approve", "--stage", "prepare", "--approver", "bob")...)
	must(`task "close" of stage finish done by alice`, with("task-done", "--task", "close", "--by", "alice")...)

	// --watch returns once the migration's workflow closes; approve while it waits.
	watchDone := make(chan string, 1)
	go func() {
		got, err := migrate(with("status", "--watch", "--interval", "500ms")...)
		if err != nil {
			got += "\nerror: " + err.Error()
		}
		watchDone <- got
	}()
	stacktest.WaitFor(t, time.Minute, "approving stage finish", func() error {
		got, err := migrate(with("approve", "--stage", "finish", "--approver", "dave")...)
		if err != nil || !strings.Contains(got, "stage finish approved by dave") {
			return fmt.Errorf("%v\n%s", err, got)
		}
		return nil
	})
	select {
	case got := <-watchDone:
		for _, want := range []string{"progress [##############################] 100% 3/3 tasks, 2/2 stages", "the migration's workflow is completed"} {
			if !strings.Contains(got, want) {
				t.Errorf("status --watch printed\n%s\nwant %q", got, want)
			}
		}
	case <-time.After(time.Minute):
		t.Fatalf("status --watch did not return a minute after the last gate\nworker:\n%s", out.String())
	}
	stacktest.RecordHistory(t, dialTemporal(t, nsCfg.Temporal), migrations.MigrationID(from, to), "", "cloudmigration-two-stages.json")
	report := must("who did what:", with("report")...)
	for _, want := range []string{"order racks", "alice", "sign off", "carol", "(gate approved)", "bob", "dave"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

// TestMigrateCLIProjects drives one project's automatic migration through the CLI
// on the real two-region rig: the dry run asks both clouds and changes nothing,
// then start, pause (refusing nothing, starting no VM), resume, a refused retry
// (nothing failed) and status --watch until every VM is migrated.
func TestMigrateCLIProjects(t *testing.T) {
	r := openStackRig(t)
	vmTemporal(t)
	pr := newVMProject(t, r, 2)
	_, wout := startMigrateWorker(t)
	migrate := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		all := append([]string{"--config", stackConfigPath(), "migrate"}, args...)
		all = append(all, "--namespace", vmNS, "--from", vmFrom, "--to", vmTo)
		b, err := exec.CommandContext(ctx, filepath.Join(binDir, "conveyor"), all...).CombinedOutput()
		return string(b), err
	}
	must := func(args ...string) string {
		t.Helper()
		got, err := migrate(args...)
		if err != nil {
			t.Fatalf("conveyor migrate %s: %v\n%s\nworker:\n%s", strings.Join(args, " "), err, got, wout.String())
		}
		return got
	}

	plan := must("start", "--project", pr.name, "--dry-run")
	for _, want := range []string{"dry run: nothing changes", "would run as workflow " + migrations.ProjectMigrationID(vmFrom, vmTo, pr.name),
		"flavor", pr.flavor, contract.ResourceWillCreate} {
		if !strings.Contains(plan, want) {
			t.Errorf("the dry run lacks %q:\n%s", want, plan)
		}
	}
	for name := range pr.servers {
		if !strings.Contains(plan, name) {
			t.Errorf("the dry run does not list server %s:\n%s", name, plan)
		}
	}
	// Nothing changed in the destination: no server, and the flavor it would create is still missing.
	pages, err := servers.List(pr.dst.compute, nil).AllPages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if all, _ := servers.ExtractServers(pages); len(all) > 0 {
		t.Errorf("after the dry run, %s has servers of the project: %v", vmTo, all)
	}
	fpages, err := flavors.ListDetail(pr.dst.compute, nil).AllPages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	fls, _ := flavors.ExtractFlavors(fpages)
	for _, f := range fls {
		if f.Name == pr.flavor {
			t.Errorf("the dry run created flavor %s in %s", pr.flavor, vmTo)
		}
	}

	must("start", "--project", pr.name, "--max-parallel", "1", "--grace-period", "5s")
	if out := must("pause", "--project", pr.name, "--by", "alice", "--reason", "storage work"); !strings.Contains(out, "paused (alice: storage work)") {
		t.Errorf("pause printed %s", out)
	}
	if out := must("status", "--project", pr.name); !strings.Contains(out, "PAUSED by alice: storage work") {
		t.Errorf("status of a paused project:\n%s", out)
	}
	if out := must("resume", "--project", pr.name, "--by", "alice"); !strings.Contains(out, "running;") {
		t.Errorf("resume printed %s", out)
	}
	if out, err := migrate("retry", "--project", pr.name, "--by", "alice"); err == nil || !strings.Contains(out, "no VM has failed: nothing to retry") {
		t.Errorf("retry with nothing failed: %v\n%s", err, out)
	}
	out := must("status", "--project", pr.name, "--watch", "--interval", "1s")
	for _, want := range []string{"100% 2/2 VMs done", "the project's workflow is completed"} {
		if !strings.Contains(out, want) {
			t.Errorf("status --watch lacks %q:\n%s", want, out)
		}
	}
}
