package blubber

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// aptProxyConf is where the proxies are written for the privileged phase;
// the phase removes it, so that the image does not keep build-time proxies.
const aptProxyConf = "/etc/apt/apt.conf.d/99blubber-proxies"

// aptSteps writes the proxies, installs ca-certificates when extra sources
// will be fetched (an https source needs it), writes the sources and their
// keys, installs the packages of each release, and removes the proxy
// configuration, as upstream does.
func aptSteps(a Apt) []Step {
	var steps []Step
	if len(a.Proxies) > 0 {
		var conf strings.Builder
		for _, p := range a.Proxies {
			proto := "http"
			if strings.HasPrefix(p.URL, "https:") {
				proto = "https"
			}
			if p.Source == "" {
				fmt.Fprintf(&conf, "Acquire::%s::Proxy %q;\n", proto, p.URL)
				continue
			}
			host := p.Source
			if u, err := url.Parse(p.Source); err == nil && u.Host != "" {
				host, proto = u.Host, u.Scheme
			}
			fmt.Fprintf(&conf, "Acquire::%s::Proxy::%s %q;\n", proto, host, p.URL)
		}
		steps = append(steps, &FileStep{Path: aptProxyConf, Content: conf.String(), Mode: 0o644})
	}
	const install = "DEBIAN_FRONTEND=noninteractive apt-get install -y"
	if len(a.Sources) > 0 && len(a.Packages) > 0 {
		steps = append(steps, &RunStep{Name: "install ca-certificates for the APT sources",
			Shell: "apt-get update && " + install + " ca-certificates && rm -rf /var/lib/apt/lists/*"})
	}
	for i, s := range a.Sources {
		opt := ""
		if s.SignedBy != "" {
			key := fmt.Sprintf("/etc/apt/keyrings/blubber-%d.asc", i)
			steps = append(steps, &FileStep{Path: key, Content: strings.TrimSpace(s.SignedBy) + "\n", Mode: 0o644})
			opt = "[signed-by=" + key + "] "
		}
		line := fmt.Sprintf("deb %s%s %s %s", opt, s.URL, s.Distribution, strings.Join(s.Components, " "))
		steps = append(steps, &FileStep{Path: fmt.Sprintf("/etc/apt/sources.list.d/blubber-%d.list", i),
			Content: strings.TrimSpace(line) + "\n", Mode: 0o644})
	}
	var cmds []string
	if len(a.Packages) > 0 {
		releases := make([]string, 0, len(a.Packages))
		for r := range a.Packages {
			releases = append(releases, r)
		}
		sort.Strings(releases)
		cmds = append(cmds, "apt-get update")
		for _, r := range releases {
			cmd := install
			if r != "" {
				cmd += " -t " + shellQuote(r)
			}
			cmds = append(cmds, cmd+" "+shellJoin(a.Packages[r]))
		}
		cmds = append(cmds, "rm -rf /var/lib/apt/lists/*")
	}
	if len(a.Proxies) > 0 {
		cmds = append(cmds, "rm -f "+aptProxyConf)
	}
	if len(cmds) == 0 {
		return steps
	}
	name := "install APT packages"
	if len(a.Packages) == 0 {
		name = "remove the APT proxy configuration"
	}
	return append(steps, &RunStep{Name: name, Shell: strings.Join(cmds, " && ")})
}
