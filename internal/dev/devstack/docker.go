package devstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// The optional Docker engine (`conveyor dev up --with docker`): Debian's dockerd,
// which runs docker-compose.yml (integration/compose_test.go). Its data, its runtime
// state, its socket and its pid file are under the state directory; it runs a
// containerd of its own (the stack's is elsewhere), and its networks take addresses
// from ranges that no other part of the stack uses. Down stops it (dockerd stops its
// containers first) and removes what it added to the kernel: its iptables chains and
// rules, and its bridges.
const (
	// WithDocker, in Options.With, starts the Docker engine; it is also its
	// directory under the state directory.
	WithDocker  = "docker"
	dockerGroup = WithDocker

	// dockerBridgeIP is the default bridge's gateway (docker0), and dockerPool the
	// range docker-compose's networks are cut from, one /24 each: neither overlaps
	// the nodes (10.213.0.0/24, 10.214.0.0/24), the pods (10.244.0.0/16,
	// 10.245.0.0/16), the services (10.96.0.0/16, 10.97.0.0/16) or the machine's own
	// network.
	dockerBridgeIP = "10.215.0.1/24"
	dockerPool     = "10.216.0.0/16"
)

// dockerOwned matches what dockerd adds to iptables: its chains (DOCKER,
// DOCKER-USER, DOCKER-ISOLATION-STAGE-*), rules on its bridges (docker0, and br-
// and 12 hex digits for each network), and its address ranges (the MASQUERADE and
// hairpin rules of published ports).
var dockerOwned = regexp.MustCompile(`DOCKER|\bdocker0\b|\bbr-[0-9a-f]{12}\b|\b10\.21[56]\.`)

// DockerHost is the DOCKER_HOST of the stack in stateDir's Docker engine.
func DockerHost(stateDir string) (string, error) {
	s, err := newStack(Options{StateDir: stateDir})
	if err != nil {
		return "", err
	}
	return "unix://" + s.dockerSocket(), nil
}

func (s *stack) dockerSocket() string { return s.path(dockerGroup, "docker.sock") }

func dockerdComponent() component {
	return component{
		name:     "dockerd",
		group:    dockerGroup,
		optional: true,
		process:  true,
		address:  func(s *stack) string { return "unix://" + s.dockerSocket() + ", bridge " + dockerBridgeIP },
		timeout:  60 * time.Second,
		// dockerd stops its containers first (each within its own stop timeout).
		stopGrace: 90 * time.Second,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			bin, err := exec.LookPath("dockerd")
			if err != nil {
				return nil, fmt.Errorf("no dockerd (%v): run `make deps` (Debian's docker.io)", err)
			}
			// With a containerd at the default address dockerd would use it
			// instead of starting its own: refuse rather than share one.
			if _, err := os.Stat("/run/containerd/containerd.sock"); err == nil {
				return nil, errors.New("a containerd listens on /run/containerd/containerd.sock: dockerd would use it; stop it first")
			}
			if err := s.mkdirs(dockerGroup+"/data", dockerGroup+"/exec"); err != nil {
				return nil, err
			}
			// Its own (empty) configuration file, never the machine's /etc/docker.
			conf := s.path(dockerGroup, "daemon.json")
			if err := writeFile(conf, "{}\n", 0o644); err != nil {
				return nil, err
			}
			return &process{Name: "dockerd", Bin: bin, Args: []string{
				"--config-file", conf,
				"--data-root", s.path(dockerGroup, "data"),
				"--exec-root", s.path(dockerGroup, "exec"),
				"--host", "unix://" + s.dockerSocket(),
				"--pidfile", s.path(dockerGroup, "dockerd.pid"),
				"--bip", dockerBridgeIP,
				"--default-address-pool", "base=" + dockerPool + ",size=24",
				// Forwarding is the stack's business (the node's CNI bridge turns
				// it on): a dockerd that turns it on itself also sets the FORWARD
				// policy to DROP, which would cut the pods off.
				"--ip-forward=false",
			}}, nil
		},
		ready: func(ctx context.Context, s *stack) error { return dockerPing(ctx, s.dockerSocket()) },
		cleanup: func(s *stack) error {
			if _, err := os.Stat(s.path(dockerGroup)); err != nil {
				return nil
			}
			if err := unmountUnder(s.path(dockerGroup)); err != nil {
				return err
			}
			return removeDockerNetworking()
		},
	}
}

// dockerPing asks the engine's API whether it is up.
func dockerPing(ctx context.Context, socket string) error {
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}}
	return httpOK(ctx, c, "http://docker/_ping")
}

// removeDockerNetworking deletes what a stopped dockerd leaves in the kernel: its
// iptables rules and chains in the filter and nat tables, and its bridges.
func removeDockerNetworking() error {
	var errs []error
	for _, table := range []string{"filter", "nat"} {
		out, err := exec.Command("iptables-save", "-t", table).Output()
		if err != nil {
			errs = append(errs, fmt.Errorf("iptables-save -t %s: %w", table, err))
			continue
		}
		script := dockerRulesRemoval(table, string(out))
		if script == "" {
			continue
		}
		cmd := exec.Command("iptables-restore", "--noflush")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("removing dockerd's iptables rules from %s: %v: %s\n%s", table, err, out, script))
		}
	}
	links, err := exec.Command("ip", "-o", "link", "show", "type", "bridge").Output()
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("listing bridges: %w", err))...)
	}
	for _, line := range strings.Split(string(links), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if dockerOwned.MatchString(name) {
			if err := run(context.Background(), "ip", "link", "del", name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// dockerRulesRemoval turns one table's iptables-save output into an
// iptables-restore --noflush script that deletes dockerd's rules from the other
// chains, then empties and deletes dockerd's chains; "" when there is none.
func dockerRulesRemoval(table, saved string) string {
	var dels, chains []string
	for _, line := range strings.Split(saved, "\n") {
		switch {
		case strings.HasPrefix(line, ":"):
			name := strings.Fields(line[1:])[0]
			if strings.HasPrefix(name, "DOCKER") {
				chains = append(chains, name)
			}
		case strings.HasPrefix(line, "-A "):
			chain := strings.Fields(line)[1]
			if !strings.HasPrefix(chain, "DOCKER") && dockerOwned.MatchString(line) {
				dels = append(dels, "-D"+strings.TrimPrefix(line, "-A"))
			}
		}
	}
	if len(dels) == 0 && len(chains) == 0 {
		return ""
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%s\n", table)
	for _, d := range dels {
		fmt.Fprintln(&b, d)
	}
	for _, c := range chains {
		fmt.Fprintf(&b, "-F %s\n", c)
	}
	for _, c := range chains {
		fmt.Fprintf(&b, "-X %s\n", c)
	}
	fmt.Fprintln(&b, "COMMIT")
	return b.String()
}
