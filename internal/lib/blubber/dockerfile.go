package blubber

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Dockerfile renders the plan of a variant as a Dockerfile, for people to read
// and for building with docker where there is no BuildKit client. It needs the
// Dockerfile 1.7 syntax (heredocs, COPY --exclude); BuildKit builds the same
// plan through Compile.
func (c *Config) Dockerfile(variant string) (string, error) {
	p, err := c.Plan(variant)
	if err != nil {
		return "", err
	}
	return p.Dockerfile(), nil
}

// Dockerfile renders the plan. Only the target stage sets the entrypoint and the
// labels; the other stages exist to be copied from.
func (p *Plan) Dockerfile() string {
	var b strings.Builder
	b.WriteString("# syntax=docker/dockerfile:1.7\n")
	fmt.Fprintf(&b, "# Rendered by conveyor's Blubber %s for variant %q; edit the Blubber config, not this file.\n", Version, p.Target().Variant)
	for _, st := range p.Stages {
		b.WriteString("\n")
		base := st.Base
		if base == "" {
			base = "scratch"
		}
		fmt.Fprintf(&b, "FROM %s AS %s\n", base, st.Variant)
		for _, s := range st.Steps {
			writeStep(&b, s)
		}
		if st == p.Target() {
			writeImageConfig(&b, st.Image)
		}
	}
	return b.String()
}

func writeStep(b *strings.Builder, s Step) {
	switch s := s.(type) {
	case *UserStep:
		fmt.Fprintf(b, "USER %d:%d\n", s.UID, s.GID)
		fmt.Fprintf(b, "ENV HOME=%s\n", dockerQuote(s.Home))
	case *ArgStep:
		for _, v := range s.Vars {
			fmt.Fprintf(b, "ARG %s=%s\n", v.Name, dockerQuote(v.Value))
		}
	case *WorkdirStep:
		fmt.Fprintf(b, "WORKDIR %s\n", s.Path)
	case *EnvStep:
		parts := make([]string, len(s.Vars))
		for i, v := range s.Vars {
			parts[i] = v.Name + "=" + dockerQuote(v.Value)
		}
		fmt.Fprintf(b, "ENV %s\n", strings.Join(parts, " \\\n    "))
	case *FileStep:
		delim := heredocDelimiter(s.Content)
		fmt.Fprintf(b, "COPY --chmod=%o <<'%s' %s\n%s%s\n", s.Mode, delim, s.Path, s.Content, delim)
	case *CopyStep:
		b.WriteString("COPY")
		switch s.From.Kind {
		case FromStage, FromImage:
			fmt.Fprintf(b, " --from=%s", s.From.Name)
		}
		fmt.Fprintf(b, " --chown=%d:%d", s.UID, s.GID)
		for _, e := range s.Exclude {
			fmt.Fprintf(b, " --exclude=%s", e)
		}
		fmt.Fprintf(b, " %s\n", jsonArray(append(append([]string{}, s.Sources...), s.Dest)))
	case *RunStep:
		writeRun(b, s)
	}
}

func writeRun(b *strings.Builder, s *RunStep) {
	b.WriteString("RUN")
	for _, m := range s.Mounts {
		b.WriteString(" --mount=type=bind")
		switch m.From.Kind {
		case FromStage, FromImage:
			fmt.Fprintf(b, ",from=%s", m.From.Name)
		}
		src := m.Source
		if m.From.Kind == FromContext {
			if src = strings.Trim(src, "/"); src == "" {
				src = "."
			}
		}
		fmt.Fprintf(b, ",source=%s,target=%s,rw", src, m.Target)
	}
	for _, c := range s.Caches {
		fmt.Fprintf(b, " --mount=type=cache,target=%s,id=%s,sharing=%s,uid=%d,gid=%d", c.Target, c.ID, c.Sharing, c.UID, c.GID)
	}
	switch {
	case s.Script != "" || strings.Contains(s.Shell, "\n"):
		script := s.Script + s.Shell
		delim := heredocDelimiter(script)
		if !strings.HasSuffix(script, "\n") {
			script += "\n"
		}
		fmt.Fprintf(b, " <<'%s'\n%s%s\n", delim, script, delim)
	case s.Shell != "":
		fmt.Fprintf(b, " %s\n", s.Shell)
	default:
		fmt.Fprintf(b, " %s\n", jsonArray(s.Args))
	}
}

func writeImageConfig(b *strings.Builder, img ImageConfig) {
	if img.User != "" {
		fmt.Fprintf(b, "USER %s\n", img.User)
	}
	if len(img.Entrypoint) > 0 {
		fmt.Fprintf(b, "ENTRYPOINT %s\n", jsonArray(img.Entrypoint))
	}
	keys := make([]string, 0, len(img.Labels))
	for k := range img.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + dockerQuote(img.Labels[k])
	}
	if len(parts) > 0 {
		fmt.Fprintf(b, "LABEL %s\n", strings.Join(parts, " "))
	}
}

// jsonArray writes the JSON form of an instruction's arguments.
func jsonArray(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(w)
		q[i] = strings.TrimSuffix(buf.String(), "\n")
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// dockerQuote quotes a value for ENV and LABEL. $ stays unescaped: like a
// Dockerfile, Compile expands $NAME in environment values.
func dockerQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

func heredocDelimiter(content string) string {
	delim := "EOF"
	for i := 0; strings.Contains(content, delim); i++ {
		delim = fmt.Sprintf("EOF_%d", i)
	}
	return delim
}
