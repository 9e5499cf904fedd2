package blubber

import (
	"errors"
	"slices"
	"strings"
)

// checkResolved checks what only shows once a variant is merged: include
// cycles and builders mixed with standalone builders.
func checkResolved(c *Config, n string, errs *errorList) {
	p := field("variants", n)
	r, err := c.Resolve(n)
	if err != nil {
		var fe Errors
		if errors.As(err, &fe) && !errs.cycle {
			errs.errs = append(errs.errs, fe...)
			errs.cycle = true
		}
		return
	}
	raw := c.Variants[n]
	if len(r.Builders) > 0 {
		bp := field(p, "builders")
		if len(raw.Builders) == 0 && len(c.Builders) > 0 {
			bp = "builders"
		}
		checkBuildersBeside(bp, r.Common, errs)
	}
}

// noteIgnored notes what a variant asks for that its build ignores, as
// upstream's does: a Python builder without a version, a custom builder
// without a command, and on a variant without a base (which has no shell to
// run anything in) apt, builders and the environment.
func noteIgnored(c *Config, n string, notes *errorList) {
	r, err := c.Resolve(n)
	if err != nil {
		return
	}
	p := field("variants", n)
	if r.Base != nil && *r.Base != "" {
		pythons := []*PythonBuilder{r.Python}
		customs := []*CustomBuilder{r.Builder}
		for _, b := range r.Builders {
			pythons, customs = append(pythons, b.Python), append(customs, b.Custom)
		}
		for _, py := range pythons {
			if py != nil && py.Version == "" && len(py.Requirements) > 0 {
				notes.add(p, "the python builder is ignored without a version; set python.version (e.g. python3)")
			}
		}
		for _, b := range customs {
			if b != nil && b.Command.IsZero() && b.Script == "" && len(b.Requirements) > 0 {
				notes.add(p, "a custom builder without command or script is ignored, its requirements too; add a command, or copy the files with copies")
			}
		}
		return
	}
	a := r.Apt
	if len(a.Packages) > 0 || len(a.Sources) > 0 || len(a.Proxies) > 0 {
		notes.add(field(p, "apt"), "is ignored: the variant has no base (scratch), so nothing can install packages; set base to an image that has apt")
	}
	if r.Builder != nil || r.Node != nil || r.Python != nil || r.PHP != nil || len(r.Builders) > 0 {
		notes.add(p, "builders are ignored: the variant has no base (scratch), where there is no shell; set base to an image that has the build tools")
	}
	if len(r.Runs.Environment) > 0 {
		notes.add(field(p, "runs.environment"), "is ignored: the variant has no base (scratch), so its image gets only its copies, entrypoint and labels")
	}
	if len(r.Arguments) > 0 {
		notes.add(field(p, "arguments"), "are ignored: the variant has no base (scratch), where nothing runs that could use them")
	}
}

// checkBuildersBeside refuses `builders` (at path p) beside a standalone
// builder, node, python or php key, as upstream does.
func checkBuildersBeside(p string, cm Common, errs *errorList) {
	var declared []string
	for _, d := range []struct {
		name string
		set  bool
	}{{"builder", cm.Builder != nil}, {"node", cm.Node != nil}, {"python", cm.Python != nil}, {"php", cm.PHP != nil}} {
		if d.set {
			declared = append(declared, d.name)
		}
	}
	if len(declared) > 0 {
		errs.add(p, "is not allowed if any of field(s) %s is declared/included; move them into builders as entries, or drop builders", fmtFields(declared))
	}
}

// checkBuildersList checks one `builders` list as written (p is "" for the
// top level, or the variant's path): a predefined builder appears in it at
// most once, and at the top level it stands alone (a variant's list is checked
// once merged, by checkResolved).
func checkBuildersList(p string, cm Common, errs *errorList) {
	if len(cm.Builders) == 0 {
		return
	}
	bp := field(p, "builders")
	count := map[string]int{}
	for _, b := range cm.Builders {
		count[b.Kind()]++
	}
	for _, k := range []string{"node", "python", "php"} {
		if count[k] > 1 {
			errs.add(bp, "has %d %q entries; a predefined builder may appear only once in a list (custom ones may repeat), so merge them", count[k], k)
		}
	}
	if p == "" {
		checkBuildersBeside(bp, cm, errs)
	}
}

// stageDeps returns the variants whose filesystems r needs: those it copies,
// takes requirements from or mounts, in first-use order.
func stageDeps(c *Config, r *Resolved) []string {
	var deps []string
	add := func(from string) {
		if from != r.Name && c.Variants[from] != nil && !slices.Contains(deps, from) {
			deps = append(deps, from)
		}
	}
	addReqs := func(reqs []Artifact) {
		for _, a := range reqs {
			add(a.From)
		}
	}
	addCustom := func(b *CustomBuilder) {
		addReqs(b.Requirements)
		for _, m := range b.Mounts {
			add(m.From)
		}
	}
	if r.Python != nil {
		addReqs(r.Python.Requirements)
	}
	if r.Node != nil {
		addReqs(r.Node.Requirements)
	}
	if r.PHP != nil {
		addReqs(r.PHP.Requirements)
	}
	if r.Builder != nil {
		addCustom(r.Builder)
	}
	for _, b := range r.Builders {
		switch {
		case b.Custom != nil:
			addCustom(b.Custom)
		case b.Node != nil:
			addReqs(b.Node.Requirements)
		case b.Python != nil:
			addReqs(b.Python.Requirements)
		case b.PHP != nil:
			addReqs(b.PHP.Requirements)
		}
	}
	for _, cp := range r.Copies {
		add(cp.From)
	}
	return deps
}

// checkStageCycles rejects variants that need their own filesystem through a
// chain of copies, requirements or mounts.
func checkStageCycles(c *Config, errs *errorList) {
	deps := map[string][]string{}
	for _, n := range c.VariantNames() {
		r, err := c.Resolve(n)
		if err != nil {
			return
		}
		deps[n] = stageDeps(c, r)
	}
	state := map[string]int{} // 0 new, 1 on the stack, 2 done
	var stack []string
	var visit func(n string) bool
	visit = func(n string) bool {
		switch state[n] {
		case 1:
			i := slices.Index(stack, n)
			cycle := append(slices.Clone(stack[i:]), n)
			from := stack[len(stack)-1]
			errs.add(field("variants", from), "copies, requirements or mounts form a cycle (%s); a variant cannot need its own files, so remove one of these references",
				strings.Join(cycle, " -> "))
			return false
		case 2:
			return true
		}
		state[n] = 1
		stack = append(stack, n)
		for _, d := range deps[n] {
			if !visit(d) {
				return false
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = 2
		return true
	}
	for _, n := range c.VariantNames() {
		if !visit(n) {
			return
		}
	}
}
