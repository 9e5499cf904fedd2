package migrations

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wikimedia/conveyor/workflows"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/activities/contract"
)

// BatteryInput is one run of the stage-3 test battery.
type BatteryInput struct {
	// From is the legacy deployment, To the new one.
	From string `json:"from"`
	To   string `json:"to"`
	// Tests are the tests to run, in order; empty means contract.BatteryTests.
	Tests []string `json:"tests,omitempty"`
	// DNSNames are resolved by the dns test, Bastion (host:port) reached by the
	// bastion test; each test is skipped when its setting is empty.
	DNSNames []string `json:"dnsNames,omitempty"`
	Bastion  string   `json:"bastion,omitempty"`
	// Keep is how many earlier runs the report compares with; zero means 10.
	Keep int `json:"keep,omitempty"`
	// DryRun runs nothing: the report says what each test would do.
	DryRun bool `json:"dryRun,omitempty"`
}

// BatteryReport is TestBattery's result: this run, where it is recorded, and how
// it compares with the runs before it.
type BatteryReport struct {
	Run    contract.BatteryRun `json:"run"`
	Passed bool                `json:"passed"`
	DryRun bool                `json:"dryRun,omitempty"`
	// File is the report file on the worker's host (RecordBatteryReport).
	File string `json:"file,omitempty"`
	// Previous are the earlier runs of the pair, newest first.
	Previous []BatterySummary `json:"previous,omitempty"`
	// Changes says which tests changed outcome since the last run.
	Changes []string `json:"changes,omitempty"`
	Summary string   `json:"summary"`
}

// BatterySummary is an earlier run in one line.
type BatterySummary struct {
	ID      string    `json:"id"`
	Started time.Time `json:"started"`
	Passed  bool      `json:"passed"`
	Failed  []string  `json:"failed,omitempty"`
}

// batteryTestOptions: a test may create and wait for a server; three attempts.
var batteryTestOptions = workflow.ActivityOptions{
	TaskQueue:           workflows.TaskQueueMigrate,
	StartToCloseTimeout: 15 * time.Minute,
	HeartbeatTimeout:    2 * time.Minute,
	RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumAttempts: 3},
}

// TestBattery runs the stage-3 battery against both deployments, one
// RunBatteryTest activity per test (a failed test is a result, not a stop), then
// records the run with RecordBatteryReport in the pair's report file, which keeps
// every run, and compares it with the runs before. A run with a failed test ends
// in contract.ErrBatteryFailed carrying the report, so the stage's task waits for a person.
// Resources the tests create are named after the run (conveyor-battery-<run id>).
func TestBattery(ctx workflow.Context, in BatteryInput) (BatteryReport, error) {
	tests := in.Tests
	if len(tests) == 0 {
		tests = contract.BatteryTests
	}
	if err := validateBattery(in, tests); err != nil {
		return BatteryReport{}, temporal.NewNonRetryableApplicationError(err.Error(), contract.ErrInvalidConfig, nil)
	}
	info := workflow.GetInfo(ctx)
	run := contract.BatteryRun{From: in.From, To: in.To, ID: info.WorkflowExecution.ID + "/" + info.WorkflowExecution.RunID, Started: workflow.Now(ctx)}
	key := "conveyor-battery-" + info.WorkflowExecution.RunID
	rep := BatteryReport{DryRun: in.DryRun}
	if in.DryRun {
		for _, t := range tests {
			run.Results = append(run.Results, contract.BatteryResult{Test: t, Skipped: true, Detail: "would run: " + batteryPlan(in, t, key)})
		}
		rep.Run, rep.Passed = run, true
		rep.Summary = fmt.Sprintf("dry run: would run %d test(s) against %s and %s: %s", len(tests), in.From, in.To, strings.Join(tests, ", "))
		return rep, nil
	}
	actx := workflow.WithActivityOptions(ctx, batteryTestOptions)
	for i, t := range tests {
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("**Test battery of %s and %s**: test %d of %d, **%s** (%d failed so far)\n\nNobody needs to act: the tests run by themselves; a failed run ends with its report for the stage's task.\n",
			in.From, in.To, i+1, len(tests), t, len(run.Results)-passedCount(run.Results)))
		var res contract.BatteryResult
		err := workflows.Execute(actx, contract.RunBatteryTest, contract.BatteryTestInput{
			From: in.From, To: in.To, Test: t, Key: key, DNSNames: in.DNSNames, Bastion: in.Bastion,
		}).Get(ctx, &res)
		if err != nil {
			res = contract.BatteryResult{Test: t, Detail: "could not run: " + workflows.ErrorDetail(err)}
		}
		run.Results = append(run.Results, res)
	}
	rep.Run, rep.Passed = run, run.Passed()
	var rec contract.RecordBatteryOutput
	if err := workflows.Execute(workflow.WithActivityOptions(ctx, migrationCheckOptions), contract.RecordBatteryReport,
		contract.RecordBatteryInput{Run: run, Keep: in.Keep}).Get(ctx, &rec); err != nil {
		return rep, fmt.Errorf("recording the battery's report: %w", err)
	}
	rep.File = rec.File
	for _, p := range rec.Previous {
		rep.Previous = append(rep.Previous, summarizeBattery(p))
	}
	if len(rec.Previous) > 0 {
		rep.Changes = compareBattery(rec.Previous[0], run)
	}
	rep.Summary = batterySummary(rep)
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("**Test battery of %s and %s**: %s\n", in.From, in.To, rep.Summary))
	if !rep.Passed {
		return rep, temporal.NewNonRetryableApplicationError(rep.Summary, contract.ErrBatteryFailed, nil, rep)
	}
	return rep, nil
}

// passedCount counts the results that passed or were skipped.
func passedCount(results []contract.BatteryResult) int {
	n := 0
	for _, r := range results {
		if r.OK || r.Skipped {
			n++
		}
	}
	return n
}

func validateBattery(in BatteryInput, tests []string) error {
	switch {
	case in.From == "" || in.To == "":
		return errors.New("from and to must name the deployments, e.g. from eqiad1 to eqiad2")
	case in.From == in.To:
		return fmt.Errorf("from and to are both %q: the battery tests two deployments", in.From)
	case in.Keep < 0:
		return errors.New("keep must not be negative")
	}
	for i, t := range tests {
		if !slices.Contains(contract.BatteryTests, t) {
			return fmt.Errorf("tests[%d] %q is not a test: the tests are %s", i, t, strings.Join(contract.BatteryTests, ", "))
		}
	}
	return nil
}

// batteryPlan says what a test would do.
func batteryPlan(in BatteryInput, test, key string) string {
	switch test {
	case contract.BatteryKeystone:
		return fmt.Sprintf("authenticate and read the catalog for %s and %s (compute, image, network)", in.From, in.To)
	case contract.BatteryServer:
		return fmt.Sprintf("create server %s in %s, wait for ACTIVE, delete it", key, in.To)
	case contract.BatteryImageCopy:
		return fmt.Sprintf("upload image %s to %s, copy its data to %s, compare sha512, delete both", key, in.From, in.To)
	case contract.BatteryDNS:
		if len(in.DNSNames) == 0 {
			return "nothing (no dnsNames configured)"
		}
		return "resolve " + strings.Join(in.DNSNames, ", ")
	default:
		if in.Bastion == "" {
			return "nothing (no bastion configured)"
		}
		return "connect to " + in.Bastion
	}
}

func summarizeBattery(r contract.BatteryRun) BatterySummary {
	s := BatterySummary{ID: r.ID, Started: r.Started, Passed: r.Passed()}
	for _, t := range r.Results {
		if !t.OK && !t.Skipped {
			s.Failed = append(s.Failed, t.Test)
		}
	}
	return s
}

// compareBattery lists the tests whose outcome differs from the previous run.
func compareBattery(prev, cur contract.BatteryRun) []string {
	outcome := func(r contract.BatteryResult) string {
		switch {
		case r.Skipped:
			return "skipped"
		case r.OK:
			return "passed"
		}
		return "failed"
	}
	var changes []string
	for _, c := range cur.Results {
		before := "not run"
		for _, p := range prev.Results {
			if p.Test == c.Test {
				before = outcome(p)
			}
		}
		if now := outcome(c); now != before {
			changes = append(changes, fmt.Sprintf("%s: %s in run %s, %s now", c.Test, before, prev.ID, now))
		}
	}
	return changes
}

func batterySummary(r BatteryReport) string {
	var failed []string
	passed := 0
	for _, t := range r.Run.Results {
		switch {
		case t.OK:
			passed++
		case !t.Skipped:
			failed = append(failed, t.Test+" ("+t.Detail+")")
		}
	}
	s := fmt.Sprintf("battery %s→%s: %d/%d test(s) passed", r.Run.From, r.Run.To, passed, len(r.Run.Results))
	if len(failed) > 0 {
		s += "; failed: " + strings.Join(failed, "; ")
	}
	if len(r.Previous) > 0 {
		if len(r.Changes) == 0 {
			s += fmt.Sprintf("; same outcome as the last of %d earlier run(s)", len(r.Previous))
		} else {
			s += "; changed since the last run: " + strings.Join(r.Changes, "; ")
		}
	}
	return s
}
