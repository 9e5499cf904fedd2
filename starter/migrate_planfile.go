package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/wikimedia/conveyor/workflows/migrations"

	"gopkg.in/yaml.v3"
)

// planFile is the YAML (or JSON) form of a migrations.MigrationPlan that
// `conveyor migrate plan|start --plan FILE` read: durations as Go durations
// ("168h") and the start as a date, so that a person can write it.
type planFile struct {
	From            string `yaml:"from"`
	To              string `yaml:"to"`
	Start           string `yaml:"start,omitempty"`
	ReminderEvery   string `yaml:"reminderEvery,omitempty"`
	MaxEventsPerRun int    `yaml:"maxEventsPerRun,omitempty"`
	// Stages are the workflow's own (migrations.StagePlan reads and writes its
	// YAML form itself).
	Stages []migrations.StagePlan `yaml:"stages"`
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
	p.Stages = f.Stages
	if f.Stages == nil {
		p.Stages = migrations.DefaultMigrationStages()
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
	f.Stages = p.Stages
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
