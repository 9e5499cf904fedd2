package grafana

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wikimedia/conveyor/workflows"
)

func load(t *testing.T) Dashboard {
	t.Helper()
	d, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDashboardIsWellFormed: every panel says what it shows, reads the
// dashboard's Prometheus variable, and has queries; the variables the queries use
// are defined.
func TestDashboardIsWellFormed(t *testing.T) {
	d := load(t)
	if d.Title == "" || d.UID == "" {
		t.Errorf("title %q uid %q: both are needed for Grafana to import it", d.Title, d.UID)
	}
	vars := map[string]Variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v := vars["datasource"]; v.Type != "datasource" {
		t.Errorf("no datasource variable: importers pick their Prometheus with it")
	}
	for _, name := range []string{"namespace", "job"} {
		if v, ok := vars[name]; !ok || v.AllValue != ".*" {
			t.Errorf("variable %s: %+v, want one whose All is .* (the queries match it with =~)", name, v)
		}
	}
	ids := map[int]string{}
	panels := 0
	for _, p := range d.Panels {
		if other, ok := ids[p.ID]; ok {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.Type == "row" {
			continue
		}
		panels++
		if p.Title == "" || p.Description == "" {
			t.Errorf("panel %d: title %q, description %q: say what it shows", p.ID, p.Title, p.Description)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q reads datasource %+v, want ${datasource}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
	}
	if panels < 10 {
		t.Errorf("%d panels", panels)
	}
	qs, err := d.Queries(map[string]string{"namespace": ".*", "job": ".*"})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if len(q.Metrics()) == 0 {
			t.Errorf("panel %q, query %s selects no metric with a label selector (name{...}): %s", q.Panel, q.RefID, q.Expr)
		}
	}
}

// TestDashboardQueriesParse has promtool parse every query, written as a recording
// rule: a query Grafana would reject fails here.
func TestDashboardQueriesParse(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not on the PATH: `make deps` (tools/deps.sh) installs Debian's prometheus package, which has it")
	}
	qs, err := load(t).Queries(map[string]string{"namespace": ".*", "job": ".*"})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, q := range qs {
		fmt.Fprintf(&b, "      - record: dashboard:query%d\n        expr: %q\n", i, q.Expr)
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput()
	if want := fmt.Sprintf("SUCCESS: %d rules found", len(qs)); err != nil || !strings.Contains(string(out), want) {
		t.Fatalf("promtool check rules on the dashboard's queries: %v\n%s", err, out)
	}
}

// TestDashboardReadsConveyorsMetrics: every conveyor_* metric of the dashboard is
// one conveyor records, with the suffix its kind gets on /metrics.
func TestDashboardReadsConveyorsMetrics(t *testing.T) {
	known := map[string]bool{"conveyor_webhook_events_total": true, workflows.MetricMigrationVMs: true,
		workflows.MetricPromotionReminders + "_total": true}
	for _, h := range []string{workflows.MetricPipelineStepDuration, workflows.MetricPromotionGateWait} {
		for _, s := range []string{"_bucket", "_count", "_sum"} {
			known[h+"_seconds"+s] = true
		}
	}
	qs, err := load(t).Queries(map[string]string{"namespace": ".*", "job": ".*"})
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, q := range qs {
		for _, m := range q.Metrics() {
			if !strings.HasPrefix(m, "conveyor_") {
				continue
			}
			seen++
			if !known[m] {
				t.Errorf("panel %q reads %s, which conveyor does not record", q.Panel, m)
			}
		}
	}
	if seen == 0 {
		t.Error("the dashboard reads none of conveyor's own metrics")
	}
}
