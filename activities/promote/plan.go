package promote

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"k8s.io/apimachinery/pkg/util/validation"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/wikimedia/conveyor/activities/contract"
)

// planFile is the promotion plan's file name in services/<service>/.
const planFile = "promotion.yaml"

// Defaults of a plan's optional fields.
const (
	defaultReminderEvery = time.Hour
	defaultHistoryMax    = 5
	defaultRequests      = 50
)

// planYAML is services/<service>/promotion.yaml.
type planYAML struct {
	Staging       targetYAML   `yaml:"staging"`
	Production    []targetYAML `yaml:"production"`
	Replicas      int          `yaml:"replicas"`
	Steps         []stepYAML   `yaml:"steps"`
	Analysis      analysisYAML `yaml:"analysis"`
	Approvers     []string     `yaml:"approvers"`
	ReminderEvery string       `yaml:"reminderEvery"`
	PauseTimeout  string       `yaml:"pauseTimeout"`
	HistoryMax    *int         `yaml:"historyMax"`
	SmokePath     string       `yaml:"smokePath"`
}

type targetYAML struct {
	Cluster   string `yaml:"cluster"`
	Namespace string `yaml:"namespace"`
}

type stepYAML struct {
	Weight int `yaml:"weight"`
	// Pause is a duration ("30s", "5m") or "indefinite".
	Pause string `yaml:"pause"`
}

type analysisYAML struct {
	Requests      *int     `yaml:"requests"`
	Path          string   `yaml:"path"`
	MaxErrorRatio *float64 `yaml:"maxErrorRatio"`
	MaxLatencyP95 string   `yaml:"maxLatencyP95"`
}

// invalidPlan lists every problem of a service's configuration, one a line, each
// naming its file and field.
type invalidPlan struct{ problems []string }

func (e *invalidPlan) Error() string { return strings.Join(e.problems, "\n") }

// conveyorValues are the values conveyor sets itself; the registry's values files
// must not.
var conveyorValues = []string{"appName", "track", "replicaCount", "image.repository", "image.tag", "image.digest"}

// parsePlan turns the files of services/<service>/ into a plan, checking every
// field and that the merged values of each environment fit the scaffold chart.
func (a *Activities) parsePlan(service string, files map[string][]byte) (contract.PromotionPlan, error) {
	dir := "services/" + service + "/"
	pf := dir + planFile
	var problems []string
	bad := func(file, field, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s: %s: %s", file, field, fmt.Sprintf(format, args...)))
	}

	var y planYAML
	dec := yaml.NewDecoder(bytes.NewReader(files[pf]))
	dec.KnownFields(true)
	if err := dec.Decode(&y); err != nil && !errors.Is(err, io.EOF) {
		return contract.PromotionPlan{}, &invalidPlan{[]string{fmt.Sprintf("%s: %v (fields: staging, production, replicas, steps, analysis, approvers, reminderEvery, pauseTimeout, historyMax, smokePath)", pf, strings.TrimPrefix(err.Error(), "yaml: "))}}
	}
	plan := contract.PromotionPlan{Service: service, Replicas: y.Replicas, Approvers: y.Approvers, HistoryMax: defaultHistoryMax, SmokePath: y.SmokePath}

	// Which files may be there, and the values of each.
	allowed := map[string]bool{pf: true, dir + "values.yaml": true, dir + "staging/values.yaml": true, dir + "production/values.yaml": true}
	for _, t := range y.Production {
		allowed[dir+"production/"+t.Cluster+"/values.yaml"] = true
	}
	for _, p := range sortedKeys(files) {
		if !allowed[p] && path.Ext(p) != ".md" {
			bad(p, "file", "not a file of the registry's format: a service has %s, values.yaml, staging/values.yaml, production/values.yaml and production/<cluster>/values.yaml (for a cluster of the plan)", planFile)
		}
	}
	values := map[string]map[string]any{}
	for _, p := range sortedKeys(files) {
		if p == pf || !allowed[p] {
			continue
		}
		m, err := parseValues(p, files[p])
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		values[p] = m
	}

	// Targets.
	target := func(field string, t targetYAML, layers []string) contract.Target {
		if t.Cluster == "" {
			bad(pf, field+".cluster", "missing: name one of the worker's clusters (%s)", a.clusterNames())
		} else if _, ok := a.clusters[t.Cluster]; !ok {
			hint := ""
			if a.fallback {
				hint = " (the worker has no promotion.clusters and uses kubernetes.kubeconfig as eqiad)"
			}
			bad(pf, field+".cluster", "%q is not one of the worker's clusters (%s)%s: fix the name or add the cluster to promotion.clusters", t.Cluster, a.clusterNames(), hint)
		}
		if errs := validation.IsDNS1123Label(t.Namespace); len(errs) > 0 {
			bad(pf, field+".namespace", "%q: %s", t.Namespace, strings.Join(errs, "; "))
		}
		merged := map[string]any{}
		var used []string
		for _, l := range layers {
			if v, ok := values[dir+l]; ok {
				merged = mergeMaps(merged, v)
				used = append(used, dir+l)
			}
		}
		out := contract.Target{Cluster: t.Cluster, Namespace: t.Namespace}
		if len(merged) > 0 {
			b, err := sigsyaml.Marshal(merged)
			if err != nil {
				bad(strings.Join(used, " + "), "values", "%v", err)
			}
			out.Values = string(b)
			if err := a.checkValues(service, merged); err != nil {
				bad(strings.Join(used, " + "), "values", "do not fit conveyor's service chart (charts/service/values.yaml) in %s of %s: %v", t.Namespace, t.Cluster, err)
			}
		}
		return out
	}
	plan.Staging = target("staging", y.Staging, []string{"values.yaml", "staging/values.yaml"})
	if len(y.Production) == 0 {
		bad(pf, "production", "missing: list the production clusters in promotion order, e.g. [{cluster: eqiad, namespace: %s}, {cluster: codfw, namespace: %s}]", service, service)
	}
	seen := map[string]bool{}
	for i, t := range y.Production {
		field := fmt.Sprintf("production[%d]", i)
		if seen[t.Cluster] {
			bad(pf, field+".cluster", "%q is listed twice: promote each cluster once", t.Cluster)
		}
		seen[t.Cluster] = true
		plan.Production = append(plan.Production, target(field, t, []string{"values.yaml", "production/values.yaml", "production/" + t.Cluster + "/values.yaml"}))
	}

	// Canary.
	if y.Replicas < 1 || y.Replicas > 100 {
		bad(pf, "replicas", "%d: want the number of pods in each production cluster, 1 to 100", y.Replicas)
	}
	if len(y.Steps) == 0 {
		bad(pf, "steps", "missing: list the canary's weights in percent, ending at 100, e.g. [{weight: 10, pause: 5m}, {weight: 50, pause: indefinite}, {weight: 100}]")
	}
	prev := 0
	for i, s := range y.Steps {
		field := fmt.Sprintf("steps[%d]", i)
		switch {
		case s.Weight < 1 || s.Weight > 100:
			bad(pf, field+".weight", "%d: want a percentage from 1 to 100", s.Weight)
		case s.Weight <= prev:
			bad(pf, field+".weight", "%d is not above the previous step's %d: weights must increase", s.Weight, prev)
		}
		prev = max(prev, s.Weight)
		step := contract.CanaryStep{Weight: s.Weight}
		switch s.Pause {
		case "", "0":
		case "indefinite":
			step.Indefinite = true
		default:
			d, err := time.ParseDuration(s.Pause)
			if err != nil || d < 0 {
				bad(pf, field+".pause", "%q: want a duration such as 30s or 5m, or indefinite (wait for resume or promote-full)", s.Pause)
			}
			step.Pause = d
		}
		plan.Steps = append(plan.Steps, step)
	}
	if len(y.Steps) > 0 && y.Steps[len(y.Steps)-1].Weight != 100 {
		bad(pf, fmt.Sprintf("steps[%d].weight", len(y.Steps)-1), "the last step must be 100 (the canary takes all the traffic before it becomes the stable release)")
	}

	// Analysis.
	plan.Analysis.Requests = defaultRequests
	if r := y.Analysis.Requests; r != nil {
		plan.Analysis.Requests = *r
		if *r < 1 || *r > 10000 {
			bad(pf, "analysis.requests", "%d: want 1 to 10000 requests to each of the canary and the stable pods", *r)
		}
	}
	if y.Analysis.MaxErrorRatio == nil {
		bad(pf, "analysis.maxErrorRatio", "missing: the highest acceptable share of failed requests, 0 to 1 (e.g. 0.01)")
	} else {
		plan.Analysis.MaxErrorRatio = *y.Analysis.MaxErrorRatio
		if r := *y.Analysis.MaxErrorRatio; r < 0 || r > 1 {
			bad(pf, "analysis.maxErrorRatio", "%g: want a ratio from 0 to 1 (e.g. 0.01 for 1%%)", r)
		}
	}
	if d, ok := duration(y.Analysis.MaxLatencyP95); !ok || d <= 0 {
		bad(pf, "analysis.maxLatencyP95", "%q: want the highest acceptable 95th percentile latency, a positive duration such as 500ms", y.Analysis.MaxLatencyP95)
	} else {
		plan.Analysis.MaxLatencyP95 = d
	}
	plan.Analysis.Path = y.Analysis.Path
	for field, p := range map[string]string{"analysis.path": y.Analysis.Path, "smokePath": y.SmokePath} {
		if p != "" && (!strings.HasPrefix(p, "/") || strings.ContainsAny(p, " \t\n#")) {
			bad(pf, field, "%q: want an absolute path with an optional query, such as /healthz", p)
		}
	}

	// Gate.
	if len(y.Approvers) == 0 {
		bad(pf, "approvers", "missing: list who may approve or reject production, e.g. [alice, bob]")
	}
	for i, ap := range y.Approvers {
		if strings.TrimSpace(ap) == "" || ap != strings.TrimSpace(ap) {
			bad(pf, fmt.Sprintf("approvers[%d]", i), "%q: want a non-empty name without surrounding spaces", ap)
		} else if slices.Index(y.Approvers, ap) < i {
			bad(pf, fmt.Sprintf("approvers[%d]", i), "%q is listed twice", ap)
		}
	}
	plan.ReminderEvery = defaultReminderEvery
	if y.ReminderEvery != "" {
		if d, ok := duration(y.ReminderEvery); !ok || d < time.Second {
			bad(pf, "reminderEvery", "%q: want a duration of at least 1s, such as 1h", y.ReminderEvery)
		} else {
			plan.ReminderEvery = d
		}
	}
	if y.PauseTimeout != "" {
		if d, ok := duration(y.PauseTimeout); !ok || d < 0 {
			bad(pf, "pauseTimeout", "%q: want a duration such as 24h (0 or absent: wait for ever)", y.PauseTimeout)
		} else {
			plan.PauseTimeout = d
		}
	}
	if y.HistoryMax != nil {
		plan.HistoryMax = *y.HistoryMax
		if *y.HistoryMax < 2 || *y.HistoryMax > 100 {
			bad(pf, "historyMax", "%d: want 2 to 100 Helm revisions (at least the current one and one to roll back to)", *y.HistoryMax)
		}
	}
	if len(problems) > 0 {
		return contract.PromotionPlan{}, &invalidPlan{problems}
	}
	return plan, nil
}

// duration parses a Go duration; "" is not one.
func duration(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	return d, err == nil
}

// parseValues reads one values file: a YAML mapping that leaves conveyor's own
// values alone.
func parseValues(file string, b []byte) (map[string]any, error) {
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: not a YAML mapping of Helm values: %v", file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if m == nil {
		m = map[string]any{}
	}
	var problems []string
	for _, key := range conveyorValues {
		if _, ok := lookup(m, key); ok {
			problems = append(problems, fmt.Sprintf("%s: %s: conveyor sets it (the image under promotion, the service name, the track, the plan's replicas): remove it", file, key))
		}
	}
	if v, ok := lookup(m, "hpa.enabled"); ok && v == true {
		problems = append(problems, fmt.Sprintf("%s: hpa.enabled: an autoscaler would fight the canary's replica ratio; set the plan's replicas instead", file))
	}
	if v, ok := lookup(m, "service.enabled"); ok && v == false {
		problems = append(problems, fmt.Sprintf("%s: service.enabled: the stable release's Service is what the canary joins; it cannot be disabled", file))
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "\n"))
	}
	return m, nil
}

// lookup finds a dotted key in nested maps.
func lookup(m map[string]any, key string) (any, bool) {
	first, rest, nested := strings.Cut(key, ".")
	v, ok := m[first]
	if !ok || !nested {
		return v, ok
	}
	sub, isMap := v.(map[string]any)
	if !isMap {
		return nil, false
	}
	return lookup(sub, rest)
}

// exampleDigest stands in for the image when the values are checked.
const exampleDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

// checkValues renders the scaffold chart with vals as the stable release would,
// validating them against its schema.
func (a *Activities) checkValues(service string, vals map[string]any) error {
	ch, err := a.loadChart()
	if err != nil {
		return err
	}
	full, err := releaseValues("", service, "stable", "localhost/conveyor/check@"+exampleDigest, 1)
	if err != nil {
		return err
	}
	full = mergeMaps(vals, full)
	opts := chartutil.ReleaseOptions{Name: service, Namespace: "default", Revision: 1, IsInstall: true}
	rv, err := chartutil.ToRenderValuesWithSchemaValidation(ch, full, opts, chartutil.DefaultCapabilities, false)
	if err != nil {
		return errors.New(strings.Join(strings.Fields(err.Error()), " "))
	}
	if _, err := engine.Render(ch, rv); err != nil {
		return err
	}
	return nil
}
