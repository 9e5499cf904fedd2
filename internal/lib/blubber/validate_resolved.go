package blubber

import (
	"errors"
	"slices"
	"strings"
)

// checkResolved checks what only shows once a variant is merged: include
// cycles, builders mixed with standalone builders, and work a scratch base
// cannot do.
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
		var declared []string
		for _, d := range []struct {
			name string
			set  bool
		}{{"builder", r.Builder != nil}, {"node", r.Node != nil}, {"python", r.Python != nil}, {"php", r.PHP != nil}} {
			if d.set {
				declared = append(declared, d.name)
			}
		}
		bp := field(p, "builders")
		if len(raw.Builders) == 0 && len(c.Builders) > 0 {
			bp = "builders"
		}
		if len(declared) > 0 {
			errs.add(bp, "is not allowed if any of field(s) %s is declared/included", fmtFields(declared))
		}
		count := map[string]int{}
		for _, b := range r.Builders {
			count[b.Kind()]++
		}
		for _, k := range []string{"node", "python", "php"} {
			if count[k] > 1 {
				errs.add(bp, "has %d %q entries (counting includes and the top level); a predefined builder may appear only once, so merge them", count[k], k)
			}
		}
	}
	if r.Base == nil || *r.Base == "" {
		if len(r.Apt.Packages) > 0 {
			errs.add(field(p, "apt.packages"), "cannot be installed on a scratch base (no base, or base: ~); set base to an image that has apt")
		}
		if runsCommands(r) {
			errs.add(p, "runs builders on a scratch base (no base, or base: ~), where there is no shell; set base to an image that has the build tools")
		}
	}
}

// runsCommands reports whether any builder of r would run a command.
func runsCommands(r *Resolved) bool {
	if r.Builder != nil && (!r.Builder.Command.IsZero() || r.Builder.Script != "") {
		return true
	}
	if (r.Node != nil && len(r.Node.Requirements) > 0) || (r.PHP != nil && len(r.PHP.Requirements) > 0) ||
		(r.Python != nil && len(r.Python.Requirements) > 0) {
		return true
	}
	for _, b := range r.Builders {
		if b.Kind() != "custom" || !b.Custom.Command.IsZero() || b.Custom.Script != "" {
			return true
		}
	}
	return false
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
