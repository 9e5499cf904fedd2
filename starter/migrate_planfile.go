package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/wikimedia/conveyor/workflows/migrations"

	"gopkg.in/yaml.v3"
)

// planFile is the YAML (or JSON) form of a workflows.MigrationPlan that
// `conveyor migrate plan|start --plan FILE` read: durations as Go durations
// ("168h") and the start as a date, so that a person can write it.
type planFile struct {
	From            string      `yaml:"from"`
	To              string      `yaml:"to"`
	Start           string      `yaml:"start,omitempty"`
	ReminderEvery   string      `yaml:"reminderEvery,omitempty"`
	MaxEventsPerRun int         `yaml:"maxEventsPerRun,omitempty"`
	Stages          []stageFile `yaml:"stages"`
}

type stageFile struct {
	Name        string     `yaml:"name"`
	Months      int        `yaml:"months"`
	EntryChecks []string   `yaml:"entryChecks,omitempty"`
	Tasks       []taskFile `yaml:"tasks"`
}

type taskFile struct {
	Name      string `yaml:"name"`
	Automated bool   `yaml:"automated,omitempty"`
	// Workflow and Input run an automated task as a child workflow.
	Workflow string         `yaml:"workflow,omitempty"`
	Input    map[string]any `yaml:"input,omitempty"`
}

// readPlanFile reads a plan file; path "-" is standard input. Unknown fields are
// errors with their line, so that a misspelt key is not silently ignored.
func readPlanFile(path string, stdin io.Reader) (migrations.MigrationPlan, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(stdin)
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return migrations.MigrationPlan{}, fmt.Errorf("reading the plan: %w (write one with `conveyor migrate plan --print-defaults > plan.yaml`)", err)
	}
	p, err := parsePlan(b)
	if err != nil {
		return migrations.MigrationPlan{}, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// parsePlan decodes a plan file's content. Stages may be left out: the plan
// then has DefaultMigrationStages.
func parsePlan(b []byte) (migrations.MigrationPlan, error) {
	var f planFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return migrations.MigrationPlan{}, fmt.Errorf("%s (the fields are from, to, start, reminderEvery, maxEventsPerRun, stages[].name/months/entryChecks/tasks[].name/automated/workflow/input)",
			strings.TrimPrefix(err.Error(), "yaml: "))
	}
	p := migrations.MigrationPlan{From: f.From, To: f.To, MaxEventsPerRun: f.MaxEventsPerRun}
	if f.Start != "" {
		t, err := parseDate(f.Start)
		if err != nil {
			return p, fmt.Errorf("start: %w", err)
		}
		p.Start = t
	}
	if f.ReminderEvery != "" {
		d, err := time.ParseDuration(f.ReminderEvery)
		if err != nil || d <= 0 {
			return p, fmt.Errorf("reminderEvery: %q is not a positive duration: write e.g. 168h for a week", f.ReminderEvery)
		}
		p.ReminderEvery = d
	}
	if f.Stages == nil {
		p.Stages = migrations.DefaultMigrationStages()
	}
	for _, s := range f.Stages {
		sp := migrations.StagePlan{Name: s.Name, Months: s.Months, EntryChecks: s.EntryChecks}
		for j, t := range s.Tasks {
			tp := migrations.TaskPlan{Name: t.Name, Automated: t.Automated, Workflow: t.Workflow}
			if t.Input != nil {
				b, err := json.Marshal(t.Input)
				if err != nil {
					return p, fmt.Errorf("stages[%d].tasks[%d].input: %w", len(p.Stages), j, err)
				}
				tp.Input = b
			}
			sp.Tasks = append(sp.Tasks, tp)
		}
		p.Stages = append(p.Stages, sp)
	}
	return p, nil
}

// encodePlan writes p in the plan file's YAML form.
func encodePlan(w io.Writer, p migrations.MigrationPlan) error {
	f := planFile{From: p.From, To: p.To, MaxEventsPerRun: p.MaxEventsPerRun}
	if !p.Start.IsZero() {
		f.Start = p.Start.UTC().Format(time.DateOnly)
	}
	if p.ReminderEvery > 0 {
		f.ReminderEvery = p.ReminderEvery.String()
	}
	for _, s := range p.Stages {
		sf := stageFile{Name: s.Name, Months: s.Months, EntryChecks: s.EntryChecks}
		for _, t := range s.Tasks {
			tf := taskFile{Name: t.Name, Automated: t.Automated, Workflow: t.Workflow}
			if len(t.Input) > 0 {
				if err := json.Unmarshal(t.Input, &tf.Input); err != nil {
					return fmt.Errorf("stage %s, task %s: input: %w", s.Name, t.Name, err)
				}
			}
			sf.Tasks = append(sf.Tasks, tf)
		}
		f.Stages = append(f.Stages, sf)
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return err
	}
	return enc.Close()
}

// parseDate reads a date (2026-12-01) or a time (2026-12-01T09:00:00Z), in UTC.
func parseDate(s string) (time.Time, error) {
	for _, layout := range []string{time.DateOnly, time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date: write YYYY-MM-DD (e.g. 2026-12-01) or an RFC 3339 time", s)
}
