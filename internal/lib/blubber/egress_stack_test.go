package blubber_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/wikimedia/conveyor/internal/dev/devstack"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/internal/lib/blubber"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// target is a service of the stack that a patchset's steps must not reach.
type target struct{ name, hostPort string }

// stackTargets are Temporal's frontend, the registry and the Kubernetes API, at
// the addresses the stack gives and at each of the host's other IPv4 addresses
// (a service listening on every address answers there too).
func stackTargets(t *testing.T, cfg config.Config) []target {
	t.Helper()
	var kc struct {
		Clusters []struct {
			Cluster struct{ Server string } `yaml:"cluster"`
		} `yaml:"clusters"`
	}
	b, err := os.ReadFile(cfg.Kubernetes.Kubeconfig)
	if err == nil {
		err = yaml.Unmarshal(b, &kc)
	}
	if err != nil || len(kc.Clusters) == 0 {
		t.Fatalf("reading the stack's kubeconfig %s (`make up` writes it): %v", cfg.Kubernetes.Kubeconfig, err)
	}
	api, err := url.Parse(kc.Clusters[0].Cluster.Server)
	if err != nil {
		t.Fatal(err)
	}
	_, registryPort, _ := net.SplitHostPort(cfg.Registry.Address)
	services := []target{
		{"temporal", cfg.Temporal.Address},
		{"registry", net.JoinHostPort("127.0.0.1", registryPort)},
		{"kubernetes", api.Host},
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	out := slices.Clone(services)
	for _, a := range addrs {
		ip, ok := a.(*net.IPNet)
		if !ok || ip.IP.To4() == nil || ip.IP.IsLoopback() {
			continue
		}
		for _, s := range services {
			_, port, _ := net.SplitHostPort(s.hostPort)
			out = append(out, target{s.name + "@" + ip.IP.String(), net.JoinHostPort(ip.IP.String(), port)})
		}
	}
	return out
}

// probeScript tries each target directly (a TCP connect) and through whatever
// proxy the step's environment names (an HTTP GET), prints one line per try, and
// exits 1 so that the build fails and hands its output back.
func probeScript(targets []target) string {
	var b strings.Builder
	// The proxy is asked by hand (busybox's static wget crashes resolving names
	// without NSS): an absolute-URI GET to the host:port in HTTP_PROXY, if any,
	// holding the connection open for a second (a client that hangs up at once
	// gets a 403 before the policy is asked, its request context gone).
	b.WriteString(`proxy=${HTTP_PROXY#http://}; proxy=${proxy%/}
viaproxy() {
	[ -n "$proxy" ] || return 0
	{ printf 'GET http://%s/ HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$1" "$1"; sleep 1; } |
		nc -w 5 "${proxy%:*}" "${proxy##*:}" 2>/dev/null | head -n 1 | tr -d '\r'
}
`)
	for _, tg := range targets {
		host, port, _ := net.SplitHostPort(tg.hostPort)
		fmt.Fprintf(&b, "if nc -w 3 %s %s </dev/null >/dev/null 2>&1; then echo 'probe %s direct reached'; else echo 'probe %s direct refused'; fi\n",
			host, port, tg.name, tg.name)
		fmt.Fprintf(&b, "echo \"probe %s proxy $(viaproxy %s)\"\n", tg.name, tg.hostPort)
	}
	b.WriteString("exit 1\n")
	return b.String()
}

// probe builds a one-step variant (a builder command, or with test the
// entrypoint run as the test step) that runs probeScript, and returns the
// step's error.
func probe(t *testing.T, s *stack, targets []target, test bool, egress *blubber.Egress) *blubber.StepError {
	t.Helper()
	cmd := []string{"/bin/sh", "-c", probeScript(targets)}
	variant := map[string]any{"builder": map[string]any{"command": cmd}, "entrypoint": []string{"/bin/true"}}
	if test {
		variant = map[string]any{"entrypoint": cmd}
	}
	doc, err := yaml.Marshal(map[string]any{"version": "v4", "base": devstack.BaseImage, "variants": map[string]any{"probe": variant}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := blubber.Parse(doc)
	if err != nil {
		t.Fatalf("the probe's config: %v", err)
	}
	dir := t.TempDir()
	// A fresh context makes every probe a cache miss: each run really connects.
	if err := os.WriteFile(filepath.Join(dir, "nonce"), []byte(rand.Text()), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := s.options(dir)
	opts.Test, opts.Egress = test, egress
	_, err = s.build(t, cfg, "probe", opts)
	var se *blubber.StepError
	if !errors.As(err, &se) {
		t.Fatalf("want the probe step to fail with its output (a *StepError), got %T: %v", err, err)
	}
	return se
}

// probeLines maps "name direct" and "name proxy" to what the probe saw.
func probeLines(out string) map[string]string {
	seen := map[string]string{}
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "probe" {
			seen[f[1]+" "+f[2]] = strings.Join(f[3:], " ")
		}
	}
	return seen
}

// TestStackEgress is the trust boundary of a build: a patchset's builder steps
// and tests reach none of the stack's services, neither directly nor through
// BuildKit's proxy, while the same probe on buildkitd's own network reaches
// Temporal (so the probe can tell).
func TestStackEgress(t *testing.T) {
	s := newStack(t)
	targets := stackTargets(t, s.cfg)
	egress := &blubber.Egress{Allow: config.DefaultEgress}

	t.Run("control: host network", func(t *testing.T) {
		got := probeLines(probe(t, s, targets[:1], false, nil).Output)
		if got["temporal direct"] != "reached" {
			t.Fatalf("without egress isolation the builder step did not reach Temporal at %s (%q): the probe cannot tell reached from refused", targets[0].hostPort, got)
		}
	})
	for _, test := range []bool{false, true} {
		name := "builder step"
		if test {
			name = "test step"
		}
		t.Run(name, func(t *testing.T) {
			se := probe(t, s, targets, test, egress)
			got := probeLines(se.Output)
			for _, tg := range targets {
				if d := got[tg.name+" direct"]; d != "refused" {
					t.Errorf("%s: connecting to %s %s at %s: %q, want refused", name, tg.name, "directly", tg.hostPort, d)
				}
				p, ok := got[tg.name+" proxy"]
				if !ok {
					t.Errorf("%s: no proxy line for %s in the output:\n%s", name, tg.name, se.Output)
				}
				if p != "" && !strings.Contains(p, " 403 ") {
					t.Errorf("%s: GET http://%s/ through the step's proxy answered %q; want no answer or the proxy's 403", name, tg.hostPort, p)
				}
			}
			if test {
				if len(se.Refused) != 0 {
					t.Errorf("the test step has no network, yet the proxy was asked for %v", se.Refused)
				}
				return
			}
			// Every request the proxy answered was refused by conveyor's policy (the
			// step's NO_PROXY sends loopback requests straight to its own loopback).
			for _, tg := range targets {
				if got[tg.name+" proxy"] != "" && !slices.Contains(se.Refused, "http://"+tg.hostPort+"/") {
					t.Errorf("the proxy answered GET http://%s/ (%q) without asking the egress policy (refused: %v)", tg.hostPort, got[tg.name+" proxy"], se.Refused)
				}
			}
			if len(se.Refused) == 0 {
				t.Errorf("no request went through the step's proxy (output:\n%s): the proxy path was not tried", se.Output)
			}
			if !strings.Contains(se.Error(), "refused by the build's egress policy (buildkit.egress.allow)") {
				t.Errorf("the error does not say the egress policy refused: %v", se)
			}
		})
	}
}

// TestStackEgressNodeBuilders builds and tests examples/node-hello as the pipeline
// does, isolated: apt fetches Debian's nodejs and npm, and npm ci the
// package-lock.json's modules from the npm registry, through the step's proxy;
// `npm test` then runs with no network at all.
func TestStackEgressNodeBuilders(t *testing.T) {
	cfg := stacktest.Debian(t)
	s := newStack(t)
	dir, bc := exampleCopy(t, "node-hello")
	opts := s.options(dir)
	opts.Egress = &blubber.Egress{Allow: cfg.Buildkit.Egress.Allow}
	opts.Test = true
	w := &stepWatch{prefix: blubber.TestVertexPrefix}
	opts.Progress = w.record
	s.mustBuild(t, bc, "test", opts)
	if seen, _ := w.result(); !seen {
		t.Errorf("the build had no step named %q...: the tests did not run", blubber.TestVertexPrefix)
	}
}

// TestStackCacheScopes: a cache mount written by one scope's build is there for
// the next build in that scope, and absent from every other scope's build of the
// same config: another project's, and the same project's reviewed branch.
func TestStackCacheScopes(t *testing.T) {
	s := newStack(t)
	nonce := strings.ToLower(rand.Text())
	cfg, err := blubber.Parse([]byte(`version: v4
base: ` + devstack.BaseImage + `
variants:
  plant:
    builder:
      command: [/bin/sh, -c, "cat nonce > /var/cache/probe/marker"]
      requirements: [nonce]
      caches: [{destination: /var/cache/probe, id: shared}]
  look:
    builder:
      command: [/bin/sh, -c, "echo marker=$(cat /var/cache/probe/marker 2>/dev/null || echo absent) look=$(cat look); exit 1"]
      requirements: [nonce, look]
      caches: [{destination: /var/cache/probe, id: shared}]
`))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("nonce", nonce)
	look := func(scope string) string {
		t.Helper()
		write("look", strings.ToLower(rand.Text())) // a cache miss: the step runs
		opts := s.options(dir)
		opts.CacheScope = scope
		_, err := s.build(t, cfg, "look", opts)
		var se *blubber.StepError
		if !errors.As(err, &se) {
			t.Fatalf("want the look step's output as a *StepError, got %T: %v", err, err)
		}
		for _, f := range strings.Fields(se.Output) {
			if v, ok := strings.CutPrefix(f, "marker="); ok {
				return v
			}
		}
		t.Fatalf("no marker= in the look step's output:\n%s", se.Output)
		return ""
	}

	planted := "repo-a/unreviewed-" + nonce
	opts := s.options(dir)
	opts.CacheScope = planted
	s.mustBuild(t, cfg, "plant", opts)
	if got := look(planted); got != nonce {
		t.Fatalf("the scope that wrote the cache reads %q, want %q: the cache mount does not persist, so this test cannot tell scopes apart", got, nonce)
	}
	for _, other := range []string{"repo-b/unreviewed-" + nonce, "repo-a/branch:main-" + nonce, ""} {
		if got := look(other); got != "absent" {
			t.Errorf("scope %q read %q from the cache that scope %q wrote; want it absent", other, got, planted)
		}
	}
}
