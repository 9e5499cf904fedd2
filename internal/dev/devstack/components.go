package devstack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/wikimedia/conveyor/internal/dev/devstack/proc"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// A component is one part of the stack: a background process, or a step (pushing
// the base images, giving the node its address) that has state but no process.
type component struct {
	name    string
	process bool
	// optional components start only when asked for (Options.With).
	optional bool
	// group, when set, is a name in Options.With that starts this component with
	// the others of its group; its state lives in the group's directory.
	group string
	// tool is the pinned tool build the component runs, if any.
	tool    string
	address func(*stack) string
	// prepare writes the component's configuration; for a process it returns what to run.
	prepare func(context.Context, *stack) (*process, error)
	// ready reports whether the component answers; Status calls it too.
	ready   func(context.Context, *stack) error
	timeout time.Duration
	// beforeStop and cleanup run during Down, before and after the process stops.
	beforeStop func(context.Context, *stack) error
	cleanup    func(*stack) error
	// stopSignal is what Down sends first. Default SIGTERM.
	stopSignal syscall.Signal
	// stopGrace is how long Down waits after stopSignal. Default 10s.
	stopGrace time.Duration
}

func (c component) grace() time.Duration {
	if c.stopGrace > 0 {
		return c.stopGrace
	}
	return 10 * time.Second
}

// components lists the stack in start order; Down walks it backwards.
func (s *stack) components() []component {
	return append(append([]component{
		temporalComponent(),
		codecComponent(),
		prometheusComponent(),
		jaegerComponent(),
	}, prodComponents()...), []component{
		registryComponent(),
		registryProxyComponent(),
		imagesComponent(),
		buildkitComponent(),
		etcdComponent(),
		nodeNetworkComponent(),
		apiserverComponent(),
		controllerManagerComponent(),
		schedulerComponent(),
		containerdComponent(),
		kubeletComponent(),
		kubeProxyComponent(),
		clusterComponent(),
		// codfw: production's second cluster, a control plane of its own with
		// nodes simulated by kwok (codfw.go).
		codfwPlane.etcd(),
		codfwPlane.apiserver(),
		codfwPlane.controllerManager(),
		codfwPlane.scheduler(),
		codfwKwokComponent(),
		codfwClusterComponent(),
		configRepoComponent(),
		debianComponent(),
		openstackComponent(),
		dockerdComponent(),
	}...)
}

// config is the configuration file that workers and the CLI use to reach this stack.
func (s *stack) config() config.Config {
	c := config.Defaults()
	c.Temporal.Address = temporalAddr
	c.Temporal.UIURL = "http://" + temporalUIAddr
	if s.profile == TemporalProfilePostgres {
		c.Temporal = ProdTemporal()
	}
	c.Temporal.PayloadKeyFile = s.payloadKeyFile()
	c.Buildkit.Address = "unix://" + s.buildkitSocket()
	c.Registry = config.Registry{Address: registryAddr, Username: registryUser, Password: s.secret("registry-password")}
	c.Kubernetes.Kubeconfig = s.kubeconfigPath("admin")
	c.Promotion.ConfigRepo = s.configRepoPath()
	c.Promotion.Clusters = []config.Cluster{
		{Name: "eqiad", Kubeconfig: s.kubeconfigPath("admin")},
		{Name: "codfw", Kubeconfig: s.codfwKubeconfig(), Simulated: true},
	}
	if s.openstackWanted() {
		c.OpenStack = s.openstackConfig()
	}
	c.Tracing.Endpoint = TracingEndpoint
	c.StateDir = s.dir
	return c
}

// path joins elements under the state directory.
func (s *stack) path(elem ...string) string {
	return filepath.Join(append([]string{s.dir}, elem...)...)
}

// mkdirs creates directories under the state directory.
func (s *stack) mkdirs(elem ...string) error {
	for _, e := range elem {
		if err := os.MkdirAll(s.path(e), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// secret returns a random value kept in the state directory, made on first use, so a
// stack keeps its credentials across restarts.
func (s *stack) secret(name string) string {
	p := s.path("secrets", name)
	if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
		return strings.TrimSpace(string(b))
	}
	buf := make([]byte, 16)
	if _, err := rand.Read(buf); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	v := hex.EncodeToString(buf)
	_ = os.MkdirAll(filepath.Dir(p), 0o700)
	_ = os.WriteFile(p, []byte(v+"\n"), 0o600)
	return v
}

// tool returns the path of a binary of a pinned tool build.
func (s *stack) tool(name, bin string) string { return filepath.Join(s.tools[name], bin) }

// pinnedTools are the tools/build.sh builds the stack runs.
var pinnedTools = []string{"temporal", "temporal-server", "buildkit", "etcd", "kubernetes", "kwok", "jaeger"}

// ensureTools builds any pinned tool that cs need and that is not in the cache yet
// (tools/build.sh), and records where each one is.
func (s *stack) ensureTools(ctx context.Context, cs []component) error {
	if err := s.locateTools(ctx); err != nil {
		return err
	}
	needed := map[string]bool{}
	for _, c := range cs {
		if c.tool != "" {
			needed[c.tool] = true
		}
	}
	var missing []string
	for _, n := range pinnedTools {
		if _, err := os.Stat(s.tools[n]); needed[n] && err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	s.say("building pinned tools %v once into %s (about 25 minutes on a fresh 2-core machine)", missing, s.cache)
	cmd := exec.CommandContext(ctx, s.buildScript(), missing...)
	cmd.Env = append(os.Environ(), "CONVEYOR_CACHE="+s.cache)
	cmd.Stdout, cmd.Stderr = s.progress, s.progress
	if s.progress == io.Discard {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building tools (run `make tools` to see the whole output): %w", err)
	}
	return nil
}

// locateTools records where each pinned tool's binaries are (built or not).
func (s *stack) locateTools(ctx context.Context) error {
	s.tools = map[string]string{}
	for _, n := range pinnedTools {
		dir, err := s.toolDir(ctx, n)
		if err != nil {
			return err
		}
		s.tools[n] = dir
	}
	return nil
}

func (s *stack) toolDir(ctx context.Context, name string) (string, error) {
	out, err := exec.CommandContext(ctx, s.buildScript(), "--print-dir", name).Output()
	if err != nil {
		return "", fmt.Errorf("asking %s where %s lives: %w", s.buildScript(), name, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func (s *stack) buildScript() string { return filepath.Join(s.repoDir(), "tools", "build.sh") }

// repoDir is the conveyor source tree the stack runs from: Options.RepoDir, else
// found upwards from the working directory, else the working directory.
func (s *stack) repoDir() string {
	if s.repo == "" {
		s.repo, _ = RepoDir()
	}
	if s.repo == "" {
		return "."
	}
	return s.repo
}

// RepoDir walks up from the working directory to the conveyor source tree (the
// directory holding tools/build.sh).
func RepoDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "tools", "build.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no conveyor source tree (tools/build.sh) above the working directory")
		}
		dir = parent
	}
}

// httpOK checks that url answers 200 (any 2xx).
func httpOK(ctx context.Context, client *http.Client, url string) error {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

var (
	tcpOpen   = proc.TCPOpen
	unixOpen  = proc.UnixOpen
	indent    = proc.Indent
	writeFile = proc.WriteFile
)
