package helm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"text/template/parse"

	"go.temporal.io/sdk/temporal"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	kubefake "helm.sh/helm/v3/pkg/kube/fake"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/wikimedia/conveyor/activities/contract"
)

// maxProblems bounds the problems an UntrustedChart error lists.
const maxProblems = 20

// pinnedDir is where a pinned chart keeps the checked objects, one file each.
const pinnedDir = "conveyor-checked"

// pinUntrusted checks a chart of an unreviewed patchset and returns the chart to
// install in its place: one whose templates only emit, verbatim, the objects (and
// notes) that were checked. Templates therefore never run against the cluster,
// so `lookup`, however reached (tpl of a value included), reads nothing, and a
// chart whose output varies between renders (randAlphaNum, now, .Release.Revision)
// installs what was checked on every attempt.
//
// The chart is rendered as Install renders it (action.Install in dry-run mode, with
// the cluster's capabilities and without contacting it), hooks and notes included.
// Each refusal is a non-retryable contract.ErrUntrustedChart listing every object
// and what is wrong with it; a failure to ask the cluster is retried.
func pinUntrusted(ch *chart.Chart, vals map[string]any, r contract.Release, field string, caps *chartutil.Capabilities, box sandbox) (*chart.Chart, error) {
	problems := templateProblems(ch)
	if len(problems) > 0 {
		return nil, untrusted(field, problems)
	}
	rel, err := renderAsInstall(ch, vals, r, caps)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("%s does not render with chart.values from .pipeline/config.yaml: %v", field, err), contract.ErrChart, err)
	}
	objs, problems := renderedObjects(rel)
	for _, o := range objs {
		ps, err := box.check(o)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			problems = append(problems, o.String()+": "+p)
		}
	}
	if len(problems) > 0 {
		return nil, untrusted(field, problems)
	}
	return pinnedChart(ch, objs, rel.Info.Notes)
}

// untrusted is the UntrustedChart error for field's problems.
func untrusted(field string, problems []string) error {
	n := len(problems)
	if n > maxProblems {
		problems = append(problems[:maxProblems:maxProblems], fmt.Sprintf("… and %d more", n-maxProblems))
	}
	msg := fmt.Sprintf("%s: conveyor deploys a chart of an unreviewed patchset only when all it renders stays in the release's namespace "+
		"(docs/security.md, \"Charts of patchsets\"); fix the chart, or use conveyor's chart (chart.path \"\"):\n- %s",
		field, strings.Join(problems, "\n- "))
	return temporal.NewNonRetryableApplicationError(msg, contract.ErrUntrustedChart, nil)
}

// templateProblems refuses what no render can show: templates that call Helm's
// `lookup` (which reads the cluster with the deploy pool's identity during the real
// install) and CRDs in crds/, which Helm installs before rendering anything. The
// templates of every subchart count, partials and NOTES.txt included; they are
// parsed as Go templates, so a mention in a comment or a string is no call.
func templateProblems(ch *chart.Chart) []string {
	var out []string
	var walk func(c *chart.Chart, prefix string)
	walk = func(c *chart.Chart, prefix string) {
		for _, f := range c.Templates {
			name := prefix + f.Name
			calls, err := templateCalls(name, string(f.Data), "lookup")
			if err != nil {
				out = append(out, fmt.Sprintf("%s does not parse as a template: %v", name, err))
			}
			for _, line := range calls {
				out = append(out, fmt.Sprintf("%s:%d calls lookup, which reads the cluster's objects (Secrets of other namespaces included) during the install: pass what the chart needs as values", name, line))
			}
		}
		for _, f := range c.Files {
			if strings.HasPrefix(f.Name, "crds/") {
				out = append(out, fmt.Sprintf("%s%s: a CRD changes the API of the whole cluster; Helm would install it before rendering", prefix, f.Name))
			}
		}
		for _, d := range c.Dependencies() {
			walk(d, prefix+"charts/"+d.Name()+"/")
		}
	}
	walk(ch, ch.Name()+"/")
	return out
}

// templateCalls returns the lines where the template text calls function fn.
func templateCalls(name, text, fn string) ([]int, error) {
	t := parse.New(name)
	t.Mode = parse.SkipFuncCheck | parse.ParseComments
	trees := map[string]*parse.Tree{}
	if _, err := t.Parse(text, "", "", trees); err != nil {
		return nil, err
	}
	var lines []int
	var visit func(n parse.Node)
	visit = func(n parse.Node) {
		switch n := n.(type) {
		case nil:
		case *parse.ListNode:
			if n == nil {
				return
			}
			for _, c := range n.Nodes {
				visit(c)
			}
		case *parse.ActionNode:
			visit(n.Pipe)
		case *parse.PipeNode:
			if n == nil {
				return
			}
			for _, c := range n.Cmds {
				visit(c)
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				visit(a)
			}
		case *parse.ChainNode:
			visit(n.Node)
		case *parse.IdentifierNode:
			if n.Ident == fn {
				lines = append(lines, 1+strings.Count(text[:min(int(n.Pos), len(text))], "\n"))
			}
		case *parse.IfNode:
			visit(&n.BranchNode)
		case *parse.RangeNode:
			visit(&n.BranchNode)
		case *parse.WithNode:
			visit(&n.BranchNode)
		case *parse.BranchNode:
			visit(n.Pipe)
			visit(n.List)
			visit(n.ElseList)
		case *parse.TemplateNode:
			visit(n.Pipe)
		}
	}
	for _, tr := range trees {
		visit(tr.Root)
	}
	if _, ok := trees[name]; !ok {
		visit(t.Root)
	}
	return lines, nil
}

// renderAsInstall renders ch as action.Install does, on a configuration of its
// own that reaches no cluster: caps stand for the cluster's, and lookup finds
// nothing.
func renderAsInstall(ch *chart.Chart, vals map[string]any, r contract.Release, caps *chartutil.Capabilities) (*release.Release, error) {
	mem := driver.NewMemory()
	mem.SetNamespace(r.Namespace)
	cfg := &action.Configuration{
		KubeClient:   &kubefake.PrintingKubeClient{Out: io.Discard},
		Releases:     storage.Init(mem),
		Capabilities: caps,
		Log:          func(string, ...any) {},
	}
	in := action.NewInstall(cfg)
	in.ReleaseName, in.Namespace, in.DryRun = r.Name, r.Namespace, true
	return in.Run(ch, vals)
}

// sourceRE starts each manifest of a release: Helm writes "---\n# Source: <template>\n".
var sourceRE = regexp.MustCompile(`(?m)^---\n# Source: (.*)\n`)

// renderedObjects decodes each object of rel's manifest and hooks, named by the
// template it came from, and lists the documents that are no object.
func renderedObjects(rel *release.Release) ([]renderedObject, []string) {
	type doc struct{ source, text string }
	var docs []doc
	idx := sourceRE.FindAllStringSubmatchIndex(rel.Manifest, -1)
	if len(idx) == 0 && strings.TrimSpace(rel.Manifest) != "" {
		docs = append(docs, doc{"the release manifest", rel.Manifest})
	}
	for i, m := range idx {
		end := len(rel.Manifest)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		docs = append(docs, doc{rel.Manifest[m[2]:m[3]], rel.Manifest[m[1]:end]})
	}
	for _, h := range rel.Hooks {
		docs = append(docs, doc{h.Path, h.Manifest})
	}
	var objs []renderedObject
	var problems []string
	for _, d := range docs {
		dec := yaml.NewYAMLOrJSONDecoder(strings.NewReader(d.text), 4096)
		for {
			var m map[string]any
			err := dec.Decode(&m)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: does not decode as YAML: %v", d.source, err))
				break
			}
			if len(m) == 0 {
				continue
			}
			b, err := json.Marshal(m)
			obj := &unstructured.Unstructured{}
			if err == nil {
				err = obj.UnmarshalJSON(b)
			}
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: does not decode as a Kubernetes object: %v", d.source, err))
				continue
			}
			objs = append(objs, renderedObject{source: d.source, obj: obj})
		}
	}
	return objs, problems
}

// pinnedChart is ch with templates that emit objs and notes verbatim: each object
// is a file of the chart (JSON, which is YAML) that a template returns with
// .Files.Get, so nothing of the original templates runs again. The values and
// their schema stay, so the release records the values it was given.
func pinnedChart(ch *chart.Chart, objs []renderedObject, notes string) (*chart.Chart, error) {
	md := *ch.Metadata
	md.Dependencies = nil
	p := &chart.Chart{Metadata: &md, Values: ch.Values, Schema: ch.Schema}
	add := func(tmpl, file string, data []byte) {
		p.Files = append(p.Files, &chart.File{Name: file, Data: data})
		p.Templates = append(p.Templates, &chart.File{Name: tmpl, Data: []byte(fmt.Sprintf("{{ .Files.Get %q }}", file))})
	}
	for i, o := range objs {
		b, err := o.obj.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("encoding %s: %w", o, err)
		}
		data := append([]byte("# checked from "+strconv.Quote(o.source)+"\n"), b...)
		add(fmt.Sprintf("templates/%03d.yaml", i), fmt.Sprintf("%s/%03d.json", pinnedDir, i), append(data, '\n'))
	}
	if notes != "" {
		add("templates/NOTES.txt", pinnedDir+"/NOTES.txt", []byte(notes))
	}
	return p, nil
}
