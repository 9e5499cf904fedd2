// Package grafana holds conveyor's Grafana dashboard (conveyor-dashboard.json),
// for those who run Grafana beside the Prometheus that scrapes conveyor
// (docs/operating.md, "Metrics and alerts"), and reads its queries so that the test
// suite can check each one: promtool parses them (dashboard_test.go) and the
// stack's Prometheus evaluates them after a pipeline (integration).
package grafana

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

//go:embed conveyor-dashboard.json
var dashboardJSON []byte

// Dashboard is the part of Grafana's dashboard model the checks read.
type Dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []Panel `json:"panels"`
	Templating struct {
		List []Variable `json:"list"`
	} `json:"templating"`
}

// Panel is one panel (or row) of the dashboard.
type Panel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Datasource  *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	Targets []Target `json:"targets"`
}

// Target is one query of a panel.
type Target struct {
	RefID string `json:"refId"`
	Expr  string `json:"expr"`
}

// Variable is a template variable ($datasource, $namespace...).
type Variable struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	AllValue string `json:"allValue"`
}

// Load parses the embedded dashboard.
func Load() (Dashboard, error) {
	var d Dashboard
	if err := json.Unmarshal(dashboardJSON, &d); err != nil {
		return d, fmt.Errorf("conveyor-dashboard.json: %w", err)
	}
	return d, nil
}

// Query is one panel query with the dashboard's variables replaced.
type Query struct {
	Panel, RefID, Expr string
}

// Queries returns every panel's queries, each variable $name replaced by
// values[name] (Grafana's $__rate_interval and $__interval by rate, when not
// given). A variable without a value is an error: the query would not parse.
func (d Dashboard) Queries(values map[string]string) ([]Query, error) {
	vals := map[string]string{"__rate_interval": "1m", "__interval": "15s"}
	for k, v := range values {
		vals[k] = v
	}
	var out []Query
	for _, p := range d.Panels {
		for _, t := range p.Targets {
			var missing []string
			expr := variableRE.ReplaceAllStringFunc(t.Expr, func(m string) string {
				name := strings.Trim(m, "${}")
				v, ok := vals[name]
				if !ok {
					missing = append(missing, m)
				}
				return v
			})
			if len(missing) > 0 {
				return nil, fmt.Errorf("panel %q, query %s: no value for %s", p.Title, t.RefID, strings.Join(missing, ", "))
			}
			out = append(out, Query{Panel: p.Title, RefID: t.RefID, Expr: expr})
		}
	}
	return out, nil
}

var (
	variableRE = regexp.MustCompile(`\$\{?[A-Za-z_][A-Za-z0-9_]*\}?`)
	// selectorRE finds the metric names of a query: every one is written with
	// its label selector, name{...}.
	selectorRE = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\{`)
)

// Metrics returns the metric names a query selects, sorted, without repeats.
func (q Query) Metrics() []string {
	var names []string
	for _, m := range selectorRE.FindAllStringSubmatch(q.Expr, -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	slices.Sort(names)
	return names
}
