package openstack

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// These tests need no OpenStack: they cover what the stage activities decide
// before talking to one. The rest runs on the real rig (integration/).

func stageActivities(t *testing.T) (*Activities, *testsuite.TestActivityEnvironment) {
	t.Helper()
	a, err := New(config.Config{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	return a, env
}

func TestMigrationNotifyAppendsOnce(t *testing.T) {
	a, env := stageActivities(t)
	in := contract.MigrationNotifyInput{From: "eqiad1", To: "eqiad2", Stage: "projects", Kind: contract.NotifyProjectAssigned,
		Project: "paws", Recipients: []string{"andrew@example.org"}, Message: "please migrate paws", Due: time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := env.ExecuteActivity(contract.MigrationNotify.Name, in); err != nil {
		t.Fatal(err)
	}
	// The same activity retried: its key is the first one's.
	if err := a.recordNotification("default-test-workflow-id/default-test-run-id/0", in); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(a.stateDir, NotificationsFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], `"recipients":["andrew@example.org"]`) || !strings.Contains(lines[0], `"kind":"project-assigned"`) {
		t.Errorf("notifications file:\n%s\nwant one line for paws", b)
	}
}

func TestRecordBatteryReportKeepsEveryRunOnce(t *testing.T) {
	a, env := stageActivities(t)
	run := func(id string, ok bool) contract.BatteryRun {
		return contract.BatteryRun{From: "eqiad1", To: "eqiad2", ID: id, Results: []contract.BatteryResult{{Test: contract.BatteryKeystone, OK: ok}}}
	}
	var out contract.RecordBatteryOutput
	for _, r := range []contract.BatteryRun{run("one", false), run("two", true), run("two", true), run("three", true)} {
		v, err := env.ExecuteActivity(contract.RecordBatteryReport.Name, contract.RecordBatteryInput{Run: r, Keep: 5})
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Get(&out); err != nil {
			t.Fatal(err)
		}
	}
	runs, err := ReadBatteryRuns(filepath.Join(a.stateDir, BatteryReportFile("eqiad1", "eqiad2")))
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 || len(out.Previous) != 2 || out.Previous[0].ID != "two" || out.Previous[1].Passed() {
		t.Errorf("recorded %d runs; previous of three %+v; want 3 recorded, two then one", len(runs), out.Previous)
	}
}

func TestMigrationCheckNamesTheChecksItKnows(t *testing.T) {
	_, env := stageActivities(t)
	v, err := env.ExecuteActivity(contract.MigrationCheck.Name, contract.MigrationCheckInput{From: "eqiad1", To: "eqiad2", Stage: "procure", Checks: []string{"budget approved"}})
	if err != nil {
		t.Fatal(err)
	}
	var out contract.MigrationCheckOutput
	if err := v.Get(&out); err != nil {
		t.Fatal(err)
	}
	if len(out.Results) != 1 || out.Results[0].OK || !strings.Contains(out.Results[0].Detail, `conveyor has no check "budget approved": the checks it knows are ["api endpoints up" "capacity available"`) {
		t.Errorf("results %+v", out.Results)
	}
}

func TestMigrationTaskRefusesWhatItCannotDo(t *testing.T) {
	_, env := stageActivities(t)
	_, err := env.ExecuteActivity(contract.MigrationTask.Name, contract.MigrationTaskInput{From: "eqiad1", To: "eqiad2", Stage: "procure", Task: "hardware ordered"})
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != contract.ErrMigrationTaskFailed || !strings.Contains(err.Error(), `conveyor cannot do task "hardware ordered" of stage procure by itself (the tasks it automates are ["old hosts drained"]`) {
		t.Errorf("error %v, want %s naming the automated tasks", err, contract.ErrMigrationTaskFailed)
	}
}

func TestStageActivitiesSayWhatToConfigure(t *testing.T) {
	a, _ := stageActivities(t)
	_, err := a.FreezeLegacyQuota(context.Background(), contract.QuotaInput{Deployment: "eqiad1", Project: "paws"})
	if err == nil || !strings.Contains(err.Error(), "conveyor dev up --with openstack") {
		t.Errorf("error %v, want the configuration to set", err)
	}
}
