package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// TestComposeStack runs docker-compose.yml for real, on the stack's Docker engine
// (Debian's dockerd and docker-compose 1.29): tools/images.sh builds and pushes every
// image it names (conveyor's own and the compose stack's, deploy/images/blubber.yaml),
// an override file pins each service to the digest just pushed, and `docker-compose up
// -d` under a project name of the test's own brings it up. Every long-running service
// must turn healthy by its own healthcheck and every one-shot must exit 0; then the
// Ping workflow runs through the compose stack's Temporal and a worker of each pool
// (`conveyor ping` in the receiver's container), and the published ports answer on
// loopback. `docker-compose down -v` must leave no container, network or volume of
// the project behind, and none of dockerd's iptables rules or bridges that were not
// there before.
//
// The deploy pool's kubeconfig is the stack's cluster (its API server at
// 10.213.0.1:6443, which the containers reach through their gateway); Gerrit and
// OpenStack point at a closed loopback port, so nothing leaves the machine. A change
// pipeline does not run through it yet: docs/production.md says what stands in the way.
func TestComposeStack(t *testing.T) {
	c, host := stacktest.Docker(t)
	prefix := c.Registry.Address + "/conveyor-compose-test"
	images := buildConveyorImages(t, c, prefix)
	p := newComposeProject(t, c, host, prefix, images)

	before := p.leftovers(t)
	start := time.Now()
	p.run(t, 15*time.Minute, "up", "-d")
	p.waitServices(t, 5*time.Minute)
	t.Logf("every service of %s healthy or completed %s after `up`", p.name, time.Since(start).Round(time.Second))

	out := p.run(t, 2*time.Minute, "exec", "-T", "receiver", "/usr/bin/conveyor", "--config", "/etc/conveyor/conveyor.yaml", "ping")
	for _, pool := range []string{"build", "deploy", "migrate"} {
		if !strings.Contains(out, pool) {
			t.Errorf("conveyor ping in the compose stack printed %q, want an answer from the %s pool", out, pool)
		}
	}
	for _, url := range []string{"http://127.0.0.1:" + p.env["CONVEYOR_UI_PORT"] + "/",
		"http://127.0.0.1:" + p.env["CONVEYOR_RECEIVER_PORT"] + "/readyz"} {
		stacktest.WaitFor(t, time.Minute, "GET "+url, func() error {
			_, err := httpGet(t.Context(), url)
			return err
		})
	}

	start = time.Now()
	p.down(t)
	t.Logf("down in %s", time.Since(start).Round(time.Second))
	after := p.leftovers(t)
	for what, a := range after {
		if extra := without(a, before[what]); len(extra) > 0 {
			t.Errorf("docker-compose down left %s behind: %q", what, extra)
		}
	}
}

// composeProject is one docker-compose project of docker-compose.yml on an engine.
type composeProject struct {
	name, host string
	files      []string
	env        map[string]string
	project    *types.Project
}

// newComposeProject writes the test's override file: every service's image pinned
// to the digest tools/images.sh pushed, the deploy pool's kubeconfig for the stack's
// cluster, and a conveyor.yaml whose Gerrit and OpenStack are a closed loopback port.
// The test's cleanup takes the project down if the test did not.
func newComposeProject(t *testing.T, c config.Config, host, prefix string, digests map[string]string) *composeProject {
	t.Helper()
	ports := freePorts(t, 2)
	p := &composeProject{name: "conveyor-it-" + randomHex(t)[:8], host: host, env: map[string]string{
		"CONVEYOR_UI_PORT":       strconv.Itoa(ports[0]),
		"CONVEYOR_RECEIVER_PORT": strconv.Itoa(ports[1]),
	}}
	main := filepath.Join(repoDir, "docker-compose.yml")
	opts, err := cli.NewProjectOptions([]string{main}, cli.WithWorkingDirectory(repoDir), cli.WithName(p.name), cli.WithEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if p.project, err = opts.LoadProject(t.Context()); err != nil {
		t.Fatalf("loading docker-compose.yml: %v", err)
	}

	dir := t.TempDir()
	conf, err := os.ReadFile(filepath.Join(repoDir, "deploy", "compose", "conveyor.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	closed := regexp.MustCompile(`https://[a-z]+\.example\.org`)
	writeTestFile(t, filepath.Join(dir, "conveyor.yaml"), closed.ReplaceAllString(string(conf), "http://127.0.0.1:9"))
	writeTestFile(t, filepath.Join(dir, "kubeconfig"), string(clusterKubeconfig(t, c.Kubernetes.Kubeconfig)))

	services := map[string]any{}
	for name, s := range p.project.Services {
		image := path.Base(s.Image)
		image, _, _ = strings.Cut(image, ":")
		d := digests[prefix+"/"+image+":test"]
		if d == "" {
			t.Fatalf("service %s runs %s, which tools/images.sh did not push (it pushed %v)", name, s.Image, digests)
		}
		o := map[string]any{"image": prefix + "/" + image + "@" + d}
		for _, v := range s.Volumes {
			if v.Target == "/etc/conveyor/conveyor.yaml" {
				o["volumes"] = []string{filepath.Join(dir, "conveyor.yaml") + ":/etc/conveyor/conveyor.yaml:ro"}
			}
		}
		services[name] = o
	}
	override, err := yaml.Marshal(map[string]any{
		"services": services,
		"secrets":  map[string]any{"kubeconfig": map[string]any{"file": filepath.Join(dir, "kubeconfig")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dir, "override.yml"), string(override))
	p.files = []string{main, filepath.Join(dir, "override.yml")}
	t.Cleanup(func() {
		if !p.isDown(t) {
			t.Logf("the project's logs:\n%s", p.tryRun(time.Minute, "logs", "--no-color", "--tail", "40"))
			p.down(t)
		}
	})
	return p
}

// clusterKubeconfig is the stack's admin kubeconfig with the API server at the node's
// address, which the containers reach and its certificate names.
func clusterKubeconfig(t *testing.T, kubeconfig string) []byte {
	t.Helper()
	kc, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, cl := range kc.Clusters {
		cl.Server = "https://10.213.0.1:6443"
	}
	b, err := clientcmd.Write(*kc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeTestFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// command is a docker-compose (or, with compose false, docker) command on the
// project's engine.
func (p *composeProject) command(timeout time.Duration, compose bool, args ...string) *exec.Cmd {
	bin := "/usr/bin/docker"
	if compose {
		bin = "/usr/bin/docker-compose"
		pre := []string{"--project-name", p.name, "--project-directory", repoDir}
		for _, f := range p.files {
			pre = append(pre, "--file", f)
		}
		args = append(pre, args...)
	}
	// coreutils' timeout takes seconds, not Go's "1m0s".
	cmd := exec.Command("timeout", append([]string{strconv.Itoa(int(timeout.Seconds())) + "s", bin}, args...)...)
	cmd.Dir = repoDir
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+p.host)
	for k, v := range p.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

// run runs docker-compose ARGS and returns its standard output; it fails the test
// with both outputs when the command fails.
func (p *composeProject) run(t *testing.T, timeout time.Duration, args ...string) string {
	t.Helper()
	cmd := p.command(timeout, true, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker-compose %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

func (p *composeProject) tryRun(timeout time.Duration, args ...string) string {
	out, _ := p.command(timeout, true, args...).CombinedOutput()
	return string(out)
}

func (p *composeProject) docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := p.command(time.Minute, false, args...).Output()
	if err != nil {
		t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

func (p *composeProject) down(t *testing.T) {
	t.Helper()
	p.run(t, 5*time.Minute, "down", "--volumes", "--remove-orphans", "--timeout", "60")
}

func (p *composeProject) isDown(t *testing.T) bool {
	t.Helper()
	return len(strings.Fields(p.docker(t, "ps", "-aq", "--filter", "label=com.docker.compose.project="+p.name))) == 0
}

// containerState is what docker inspect says of one of the project's containers.
type containerState struct {
	Name  string
	State struct {
		Status   string
		ExitCode int
		Health   *struct{ Status string }
	}
	Config struct{ Labels map[string]string }
}

// waitServices waits until every service of the compose file has a container that is
// healthy (a long-running service) or exited 0 (a one-shot, restart "no").
func (p *composeProject) waitServices(t *testing.T, timeout time.Duration) {
	t.Helper()
	stacktest.WaitFor(t, timeout, "every compose service healthy or completed", func() error {
		ids := strings.Fields(p.docker(t, "ps", "-aq", "--filter", "label=com.docker.compose.project="+p.name))
		if len(ids) == 0 {
			return fmt.Errorf("no containers")
		}
		var states []containerState
		if err := json.Unmarshal([]byte(p.docker(t, append([]string{"inspect"}, ids...)...)), &states); err != nil {
			return err
		}
		got := map[string]containerState{}
		for _, s := range states {
			got[s.Config.Labels["com.docker.compose.service"]] = s
		}
		var waiting []string
		for name, s := range p.project.Services {
			st, ok := got[name]
			switch {
			case !ok:
				waiting = append(waiting, name+": no container")
			case s.Restart == types.RestartPolicyNo && st.State.Status == "exited" && st.State.ExitCode != 0:
				t.Fatalf("the one-shot %s exited %d:\n%s", name, st.State.ExitCode, p.tryRun(time.Minute, "logs", "--no-color", name))
			case s.Restart == types.RestartPolicyNo:
				if st.State.Status != "exited" {
					waiting = append(waiting, name+": "+st.State.Status)
				}
			case st.State.Health == nil:
				t.Fatalf("service %s has no healthcheck in its container", name)
			case st.State.Health.Status != "healthy":
				waiting = append(waiting, name+": "+st.State.Status+", "+st.State.Health.Status)
			}
		}
		if len(waiting) > 0 {
			slices.Sort(waiting)
			return fmt.Errorf("%s", strings.Join(waiting, "; "))
		}
		return nil
	})
}

// dockerdRule matches what dockerd adds to iptables (internal/dev/devstack/docker.go).
var dockerdRule = regexp.MustCompile(`DOCKER|\bdocker0\b|\bbr-[0-9a-f]{12}\b|\b10\.21[56]\.`)

// leftovers lists, by kind, what a project could leave behind: its containers,
// networks and volumes, and dockerd's iptables rules and bridges (which other parts
// of the stack never add, so other tests cannot change them meanwhile).
func (p *composeProject) leftovers(t *testing.T) map[string][]string {
	t.Helper()
	label := "label=com.docker.compose.project=" + p.name
	l := map[string][]string{
		"containers": strings.Fields(p.docker(t, "ps", "-aq", "--filter", label)),
		"networks":   strings.Fields(p.docker(t, "network", "ls", "-q", "--filter", label)),
		"volumes":    strings.Fields(p.docker(t, "volume", "ls", "-q", "--filter", label)),
	}
	for _, table := range []string{"filter", "nat"} {
		out, err := exec.Command("iptables-save", "-t", table).Output()
		if err != nil {
			t.Fatalf("iptables-save: %v", err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "-A ") && dockerdRule.MatchString(line) {
				l["iptables rules"] = append(l["iptables rules"], table+": "+line)
			}
		}
	}
	out, err := exec.Command("ip", "-o", "link", "show", "type", "bridge").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 1 && dockerdRule.MatchString(f[1]) {
			l["bridges"] = append(l["bridges"], strings.TrimSuffix(f[1], ":"))
		}
	}
	return l
}

// without is what a holds and b does not.
func without(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
