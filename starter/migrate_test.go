package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/workflows/migrations"

	"github.com/wikimedia/conveyor/activities/contract"
)

func TestMigratePlanArgumentsAreChecked(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	typo := write("typo.yaml", "from: a\nto: b\nstages:\n  - name: one\n    months: 1\n    taks: []\n")
	noMonths := write("months.yaml", "from: a\nto: b\nstages:\n  - name: one\n    tasks: [{name: x}]\n")
	dup := write("dup.yaml", "from: a\nto: b\nstages:\n  - {name: one, months: 1, tasks: [{name: x}, {name: x}]}\n")
	badStart := write("start.yaml", "from: a\nto: b\nstart: 1/12/2026\n")
	badEvery := write("every.yaml", "from: a\nto: b\nreminderEvery: weekly\n")
	pair := write("pair.yaml", "from: codfw1dev\nto: codfw2dev\n")
	wantCLIErrors(t, []cliError{
		{[]string{"migrate", "plan"}, "give --from and --to, or from: and to: in the plan file"},
		{[]string{"migrate", "plan", "--from", "a", "--to", "a"}, `from and to are both "a"`},
		{[]string{"migrate", "plan", "--plan", typo}, "line 6: field taks not found"},
		{[]string{"migrate", "plan", "--plan", noMonths}, "stages[0].months is 0: plan at least one month"},
		{[]string{"migrate", "plan", "--plan", dup}, `stages[0].tasks[1].name "x" is empty or repeated`},
		{[]string{"migrate", "plan", "--plan", badStart}, `start: "1/12/2026" is not a date: write YYYY-MM-DD`},
		{[]string{"migrate", "plan", "--plan", badEvery}, `reminderEvery: "weekly" is not a positive duration`},
		{[]string{"migrate", "plan", "--plan", pair, "--from", "eqiad1"}, `--from "eqiad1" contradicts the plan file's from: "codfw1dev"`},
		{[]string{"migrate", "plan", "--plan", filepath.Join(dir, "missing.yaml")}, "conveyor migrate plan --print-defaults > plan.yaml"},
		{[]string{"migrate", "plan", "--from", "a", "--to", "b", "--start", "tomorrow"}, `--start: "tomorrow" is not a date`},
		{[]string{"migrate", "plan", "extra"}, `unexpected arguments ["extra"]`},
		{[]string{"migrate", "start", "--from", "a"}, "give --from and --to"},
		{[]string{"migrate", "status", "--from", "a"}, "--from and --to name the migration"},
		{[]string{"migrate", "status", "--from", "a", "--to", "b", "--watch", "--interval", "0s"}, "--interval 0s: give a positive duration"},
		{[]string{"migrate", "approve", "--from", "a", "--to", "b"}, "--approver is required"},
		{[]string{"migrate", "task-done", "--from", "a", "--to", "b", "--by", "alice"}, "--task is required"},
		{[]string{"migrate", "task-done", "--from", "a", "--to", "b", "--task", "x"}, "--by is required"},
	})
}

func TestMigratePlanRoundTripsThroughItsFile(t *testing.T) {
	out, err := runConveyor(t, "migrate", "plan", "--print-defaults", "--from", "codfw1dev", "--to", "codfw2dev", "--start", "2027-01-04")
	if err != nil {
		t.Fatal(err)
	}
	p, err := parsePlan([]byte(out))
	if err != nil {
		t.Fatalf("the printed defaults do not parse: %v\n%s", err, out)
	}
	want := migrations.MigrationPlan{From: "codfw1dev", To: "codfw2dev", Start: time.Date(2027, 1, 4, 0, 0, 0, 0, time.UTC),
		Stages: migrations.DefaultMigrationStages()}
	if got, exp := mustJSON(t, p), mustJSON(t, want); got != exp {
		t.Errorf("round trip:\n got %s\nwant %s", got, exp)
	}
	// A file without stages gets the default ones.
	p, err = parsePlan([]byte("from: a\nto: b\nreminderEvery: 72h\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Stages) != 5 || p.ReminderEvery != 72*time.Hour {
		t.Errorf("defaults: %d stages, every %s", len(p.Stages), p.ReminderEvery)
	}
}

func TestMigratePlanShowsTheBaseline(t *testing.T) {
	out, err := runConveyor(t, "migrate", "plan", "--from", "codfw1dev", "--to", "codfw2dev", "--start", "2027-01-04")
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, "plan output", out,
		"migration codfw1dev → codfw2dev, workflow migration/codfw1dev-codfw2dev",
		"5 stages, 27 months, 2027-01-04 to 2029-04-04; reminders every 7d",
		"1  procure    6       2027-01-04     2027-07-04   "+strings.Join(migrations.DefaultMigrationStages()[0].EntryChecks, ", "),
		"5  cleanup    3       2029-01-04     2029-04-04   "+strings.Join(migrations.DefaultMigrationStages()[4].EntryChecks, ", "),
		"4 migration (workflow migration/codfw1dev-codfw2dev/4-migration)",
		"[ ] hardware ordered             human: conveyor migrate task-done --task 'hardware ordered' --by WHO",
		"[ ] projects migrated            automated, workflow ProjectsMigration",
		"gate: conveyor migrate approve --stage cleanup --approver WHO",
	)
}

func TestMigrateStartDryRunStartsNothing(t *testing.T) {
	// No Temporal is reachable at this address: a dry run must not need it.
	out, err := runConveyor(t, "migrate", "start", "--from", "a", "--to", "b", "--dry-run", "--address", "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, "dry run output", out,
		"dry run: nothing is started.",
		"would start workflow migration/a-b (CloudMigration) on task queue conveyor-migrate",
		"first, stage procure would start as workflow migration/a-b/1-procure and",
		"run its entry checks against a and b: "+strings.Join(migrations.DefaultMigrationStages()[0].EntryChecks, ", "),
		"run its automated tasks in order: hosts provisioned",
		"wait for task-done on: hardware ordered, racks delivered",
	)
}

func TestMigrationStatusRendering(t *testing.T) {
	day := func(s string) time.Time { tm, _ := time.Parse(time.DateOnly, s); return tm }
	st := migrations.MigrationStatus{From: "a", To: "b", Start: day("2026-01-01"), PlannedEnd: day("2026-04-01"), Current: 1, Runs: 2,
		Stages: []migrations.StageSummary{
			{Name: "procure", State: migrations.StageDone, PlannedStart: day("2026-01-01"), PlannedEnd: day("2026-02-01"),
				Started: day("2026-01-01"), Due: day("2026-02-01"), Finished: day("2026-02-10"), Overdue: true, TasksDone: 1, ApprovedBy: "bob",
				Tasks: []migrations.TaskStatus{{Name: "order", State: migrations.TaskDone, By: "alice", Done: day("2026-01-05")}}},
			{Name: "bootstrap", State: migrations.StageOpen, PlannedStart: day("2026-02-01"), PlannedEnd: day("2026-04-01"),
				Started: day("2026-02-10"), Due: day("2026-04-10"), TasksDone: 1, Reminders: 2,
				Tasks: []migrations.TaskStatus{
					{Name: "install", Automated: true, State: migrations.TaskDone, By: "conveyor", Done: day("2026-02-11"), Detail: "3 hosts"},
					{Name: "networks", Automated: true, State: migrations.TaskFailed, Detail: "quota exceeded\nmore"},
					{Name: "sign off", State: migrations.TaskOpen},
				}},
		}}
	var b bytes.Buffer
	renderMigrationStatus(&b, st, day("2026-03-01"), false)
	out := b.String()
	wantLines(t, "status", out,
		"migration a → b (migration/a-b, run 2): stage 2 of 2, bootstrap",
		"baseline 2026-01-01 to 2026-04-01; OVERDUE: procure",
		"progress [###############---------------]  50% 2/4 tasks, 1/2 stages",
		"1  procure    done OVERDUE  2026-01-01..2026-02-01  2026-01-01  2026-02-01  2026-02-10  1/1    bob",
		"2 bootstrap: open, due 2026-04-10 (in 40 days), 2 reminders sent",
		"[x] install                      automated done by conveyor on 2026-02-11 — 3 hosts",
		"[!] networks                     automated failed — quota exceeded",
		"[ ] sign off                     human     open",
	)
	if strings.Contains(out, "[x] order") {
		t.Errorf("status shows the tasks of a finished stage without --all:\n%s", out)
	}
	b.Reset()
	renderMigrationStatus(&b, st, day("2026-03-01"), true)
	if !strings.Contains(b.String(), "[x] order                        human     done by alice on 2026-01-05") {
		t.Errorf("status --all lacks the first stage's tasks:\n%s", b.String())
	}
}

func TestBar(t *testing.T) {
	for _, tc := range []struct {
		done, total int
		want        string
	}{
		{0, 4, "[----]   0%"}, {2, 4, "[##--]  50%"}, {4, 4, "[####] 100%"}, {5, 4, "[####] 100%"}, {0, 0, "[----]"},
	} {
		if got := bar(tc.done, tc.total, 4); got != tc.want {
			t.Errorf("bar(%d, %d) = %q, want %q", tc.done, tc.total, got, tc.want)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMigrateProjectArgumentsAreChecked(t *testing.T) {
	wantCLIErrors(t, []cliError{
		{[]string{"migrate", "pause", "--from", "a", "--to", "b", "--by", "alice"}, "--project is required"},
		{[]string{"migrate", "resume", "--from", "a", "--to", "b", "--project", "tools"}, "--by is required"},
		{[]string{"migrate", "retry", "--to", "b", "--project", "tools", "--by", "alice"}, "--from and --to name the migration"},
		{[]string{"migrate", "start", "--from", "a", "--to", "b", "--project", "tools", "--plan", "x.yaml"}, "--plan and --project"},
		{[]string{"migrate", "start", "--from", "a", "--to", "b", "--project", "tools", "--max-parallel", "-1"}, "--max-parallel and --grace-period must not be negative"},
		{[]string{"migrate", "task-done", "--from", "a", "--to", "b", "--task", "x", "--project", "p", "--by", "alice"}, "--task and --project"},
		{[]string{"migrate", "approve", "--from", "a", "--to", "b", "--approver", "bob", "--keep", "id1"}, "--keep goes with --cleanup"},
		{[]string{"migrate", "report", "--from", "a", "--to", "b", "--battery", "--final"}, "ask for one at a time"},
	})
}

func TestProjectStatusRendering(t *testing.T) {
	st := migrations.ProjectStatus{Project: "tools", From: "eqiad1", To: "eqiad2", Paused: true, PausedBy: "alice: storage work",
		VMs: []migrations.VMStatus{
			{ID: "s1", Name: "web-1", State: migrations.VMDone, Step: migrations.VMStepDone, DestinationID: "d1", Runs: 1},
			{ID: "s2", Name: "web-2", State: migrations.VMRunning, Step: migrations.VMStepCopy, Runs: 1, Detail: "copying"},
			{ID: "s3", Name: "db-1", State: migrations.VMFailed, Step: migrations.VMStepWaitActive, Runs: 2, Error: "server went to ERROR: NoValidHost\nmore"},
			{ID: "s4", Name: "db-2", State: migrations.VMPending, Runs: 0},
		}}
	var b bytes.Buffer
	renderProjectStatus(&b, st)
	out := b.String()
	wantLines(t, "project status", out,
		"project tools: eqiad1 → eqiad2 (migrate-project/eqiad1-eqiad2/tools), PAUSED by alice: storage work",
		"progress [#######-----------------------]  25% 1/4 VMs done, 1 running, 1 pending, 1 failed",
		"web-2   s2  running  copy-image   -            1     copying",
		"db-1    s3  failed   wait-active  -            2     server went to ERROR: NoValidHost",
		"fix the cause, then: conveyor migrate retry --from eqiad1 --to eqiad2 --project tools --by WHO",
	)
}

func TestMigrationStatusShowsProjects(t *testing.T) {
	var projects []migrations.ProjectProgress
	for i := range 30 {
		projects = append(projects, migrations.ProjectProgress{Name: fmt.Sprintf("p%02d", i), Mode: migrations.ModeAutomatic, State: migrations.ProjectDone})
	}
	projects[3].State, projects[3].Detail = migrations.ProjectRunning, "2 of 5 servers"
	projects[7].State, projects[7].Mode, projects[7].Overdue = migrations.ProjectWaiting, migrations.ModeManual, true
	projects[9].State, projects[9].Detail = migrations.ProjectFailed, "preflight: quota"
	st := migrations.MigrationStatus{From: "a", To: "b", Current: 0, Stages: []migrations.StageSummary{{Name: "migration", State: migrations.StageOpen,
		Tasks: []migrations.TaskStatus{{Name: "projects migrated", Automated: true, State: migrations.TaskRunning, Workflow: "x", Projects: projects}}}}}
	var b bytes.Buffer
	renderMigrationStatus(&b, st, time.Now(), false)
	out := b.String()
	for _, want := range []string{
		"projects of migration / projects migrated: 27 done, 1 running, 1 waiting, 1 failed",
		"progress [###########################---]  90% 27/30 projects done",
		"PROJECT  MODE       STATE            DEADLINE  DETAIL\n   p09      automatic  failed",
	} {
		if !strings.Contains(out, strings.ReplaceAll(want, "\n   ", "\n")) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	// Failed first, then overdue, then running.
	if i, j, k := strings.Index(out, "p09 "), strings.Index(out, "p07 "), strings.Index(out, "p03 "); !(i < j && j < k) {
		t.Errorf("projects not in urgency order (failed, overdue, running):\n%s", out)
	}
}

func TestBatteryReportComparesRuns(t *testing.T) {
	at := time.Date(2027, 3, 1, 10, 0, 0, 0, time.UTC)
	runs := []contract.BatteryRun{
		{From: "a", To: "b", ID: "r1", Started: at, Results: []contract.BatteryResult{
			{Test: contract.BatteryKeystone, OK: true, Seconds: 1.2}, {Test: contract.BatteryImageCopy, OK: false, Seconds: 3, Detail: "checksum mismatch"}}},
		{From: "a", To: "b", ID: "r2", Started: at.Add(24 * time.Hour), Results: []contract.BatteryResult{
			{Test: contract.BatteryKeystone, OK: true, Seconds: 1.1},
			{Test: contract.BatteryImageCopy, OK: true, Seconds: 2.5, Detail: "copied", SourceChecksum: "abcdef0123456789ff", CopyChecksum: "abcdef0123456789ff"},
			{Test: contract.BatteryDNS, Skipped: true, Detail: "no names"}}},
	}
	var b bytes.Buffer
	renderBattery(&b, "/state/migration/battery-a-b.jsonl", runs)
	out := b.String()
	wantLines(t, "battery report", out,
		"test battery of a → b: 2 runs recorded in /state/migration/battery-a-b.jsonl",
		"2027-03-01 10:00:00  FAILED  ok 1.2s   FAIL 3.0s   -",
		"2027-03-02 10:00:00  passed  ok 1.1s   ok 2.5s     skipped",
		"image-copy copied (checksums equal: abcdef0123456789… / abcdef0123456789…)",
		"since the run before: image-copy now passes",
	)
}
