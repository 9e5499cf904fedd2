package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/wikimedia/conveyor/workflows/migrations"
)

// TestPlanFileTaskInput: a task's input is written and read as a YAML object, and
// reaches the workflow's plan as the JSON object the stage passes to its child.
func TestPlanFileTaskInput(t *testing.T) {
	src := `from: a
to: b
stages:
  - name: migration
    months: 1
    tasks:
      - name: projects migrated
        automated: true
        workflow: ProjectsMigration
        input:
          mode: automatic
          atOnce: 2
`
	p, err := parsePlan([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	task := p.Stages[0].Tasks[0]
	if task.Workflow != migrations.WorkflowProjectsMigration || !task.Automated || string(task.Input) != `{"atOnce":2,"mode":"automatic"}` {
		t.Fatalf("task %+v (input %s)", task, task.Input)
	}
	var out bytes.Buffer
	if err := encodePlan(&out, p); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "input:\n          atOnce: 2\n          mode: automatic\n") {
		t.Errorf("encoded plan:\n%s", out.String())
	}
	again, err := parsePlan(out.Bytes())
	if err != nil {
		t.Fatalf("the encoded plan does not parse: %v\n%s", err, out.String())
	}
	if string(again.Stages[0].Tasks[0].Input) != string(task.Input) {
		t.Errorf("input after a round trip: %s, want %s", again.Stages[0].Tasks[0].Input, task.Input)
	}
}

// TestPlanFileRefusesUnknownTaskFields: a misspelt key inside a task is an error
// with its line, not silently dropped.
func TestPlanFileRefusesUnknownTaskFields(t *testing.T) {
	src := "from: a\nto: b\nstages:\n  - name: x\n    months: 1\n    tasks:\n      - name: y\n        automatd: true\n"
	_, err := parsePlan([]byte(src))
	if err == nil || !strings.Contains(err.Error(), "line 8") || !strings.Contains(err.Error(), "automatd") {
		t.Fatalf("error %v, want one naming line 8 and the field automatd", err)
	}
}
