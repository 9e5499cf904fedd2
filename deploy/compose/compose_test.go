package compose

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"

	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/workflows"
)

// composeFile is the stack this package's files belong to.
const composeFile = "../../docker-compose.yml"

// imagePrefix is where every image comes from: the project's own builds in the local
// registry, nothing from Docker Hub.
const imagePrefix = "localhost:5000/conveyor/"

// loadProject loads docker-compose.yml as `docker compose config` would, with an empty
// environment so that only the file's own defaults apply; no engine is involved.
func loadProject(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{composeFile},
		cli.WithWorkingDirectory(filepath.Dir(composeFile)), cli.WithName("conveyor"), cli.WithEnv(nil))
	if err != nil {
		t.Fatalf("reading %s: %v", composeFile, err)
	}
	p, err := opts.LoadProject(t.Context())
	if err != nil {
		t.Fatalf("loading %s: %v", composeFile, err)
	}
	return p
}

// oneShot says whether a service runs once (restart "no") rather than for good.
func oneShot(s types.ServiceConfig) bool { return s.Restart == types.RestartPolicyNo }

func TestImagesAreConveyorsOwn(t *testing.T) {
	for name, s := range loadProject(t).Services {
		if !strings.HasPrefix(s.Image, imagePrefix) {
			t.Errorf("service %s: image %q, want one under %s (built by `make images`)", name, s.Image, imagePrefix)
		}
	}
}

func TestLongRunningServicesHaveHealthchecks(t *testing.T) {
	p := loadProject(t)
	for _, want := range []string{"postgresql", "temporal-schema", "temporal", "temporal-ui", "registry", "buildkitd", "receiver"} {
		if _, ok := p.Services[want]; !ok {
			t.Errorf("no service %s", want)
		}
	}
	for name, s := range p.Services {
		if oneShot(s) {
			continue
		}
		hc := s.HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] != "CMD" {
			t.Errorf("service %s runs for good but has no healthcheck in exec form (test: [CMD, ...]): %+v", name, hc)
		}
	}
	for name, s := range p.Services {
		for dep, d := range s.DependsOn {
			target, ok := p.Services[dep]
			switch {
			case !ok:
				t.Errorf("service %s depends on %s, which does not exist", name, dep)
			case oneShot(target) && d.Condition != types.ServiceConditionCompletedSuccessfully:
				t.Errorf("service %s depends on the one-shot %s with %q, want %s", name, dep, d.Condition, types.ServiceConditionCompletedSuccessfully)
			case !oneShot(target) && d.Condition != types.ServiceConditionHealthy:
				t.Errorf("service %s depends on %s with %q, want %s", name, dep, d.Condition, types.ServiceConditionHealthy)
			}
		}
	}
	if d := p.Services["temporal"].DependsOn["temporal-schema"]; d.Condition != types.ServiceConditionCompletedSuccessfully {
		t.Errorf("temporal depends on temporal-schema with %q, want %s", d.Condition, types.ServiceConditionCompletedSuccessfully)
	}
}

func TestEveryPoolHasAWorker(t *testing.T) {
	p := loadProject(t)
	for _, pool := range workflows.Pools {
		name := "worker-" + pool
		s, ok := p.Services[name]
		if !ok {
			t.Errorf("pool %s has no service %s", pool, name)
			continue
		}
		want := []string{"--pools", pool, "--health-listen", ":8081", "--config", "/etc/conveyor/conveyor.yaml"}
		if len(s.Command) < len(want) || !slices.Equal([]string(s.Command[:len(want)]), want) {
			t.Errorf("service %s runs %q, want it to start with %q", name, s.Command, want)
		}
		if d, ok := s.DependsOn["temporal"]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("service %s depends on temporal with %+v, want condition %s", name, d, types.ServiceConditionHealthy)
		}
		if hc := s.HealthCheck; hc == nil || !strings.Contains(strings.Join(hc.Test, " "), "http://127.0.0.1:8081/readyz") {
			t.Errorf("service %s healthcheck %+v, want a GET of /readyz on 8081", name, hc)
		}
		if s.User != "65532:65532" || !s.ReadOnly || !slices.Equal(s.CapDrop, []string{"ALL"}) {
			t.Errorf("service %s: user %q read_only %v cap_drop %v, want 65532:65532, true, [ALL]", name, s.User, s.ReadOnly, s.CapDrop)
		}
	}
	for name := range p.Services {
		if pool, ok := strings.CutPrefix(name, "worker-"); ok && !slices.Contains(workflows.Pools, pool) {
			t.Errorf("service %s serves %q, which is not in workflows.Pools %v", name, pool, workflows.Pools)
		}
	}
}

// secretWords are parts of environment variable names that would carry a secret.
var secretWords = []string{"PASSWORD", "SECRET", "TOKEN", "API_KEY", "APIKEY", "PWD"}

func TestNoSecretInTheClear(t *testing.T) {
	p := loadProject(t)
	var secretValues []string
	for name, sc := range p.Secrets {
		if sc.File == "" {
			t.Errorf("secret %s is not a file", name)
			continue
		}
		b, err := os.ReadFile(sc.File)
		if err != nil {
			t.Fatalf("secret %s: %v", name, err)
		}
		if line := strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]); !strings.HasPrefix(line, "#") {
			secretValues = append(secretValues, line)
		}
	}
	for name, s := range p.Services {
		for k, v := range s.Environment {
			if v == nil {
				continue
			}
			upper := strings.ToUpper(k)
			for _, w := range secretWords {
				if strings.Contains(upper, w) && !strings.HasSuffix(upper, "_FILE") {
					t.Errorf("service %s: environment %s=%q carries a secret: use a secrets: file and a *_FILE variable", name, k, *v)
				}
			}
			for _, sv := range secretValues {
				if strings.Contains(*v, sv) {
					t.Errorf("service %s: environment %s holds the value of a secret file", name, k)
				}
			}
		}
		for _, a := range slices.Concat([]string(s.Command), []string(s.Entrypoint)) {
			for _, sv := range secretValues {
				if strings.Contains(a, sv) {
					t.Errorf("service %s: its command holds the value of a secret file", name)
				}
			}
		}
	}
}

func TestConfigurationFilesAreConveyors(t *testing.T) {
	p := loadProject(t)
	// docker-compose 1.29 (Debian 12's) ignores configs: outside swarm, with a warning.
	if len(p.Configs) != 0 {
		t.Errorf("top-level configs %v: docker-compose 1.x ignores them outside swarm; bind-mount the files read-only instead", slices.Collect(maps.Keys(p.Configs)))
	}
	for name, s := range p.Services {
		var secrets []string
		for _, sc := range s.Secrets {
			secrets = append(secrets, "/run/secrets/"+sc.Source)
		}
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if !v.ReadOnly {
				t.Errorf("service %s mounts %s read-write", name, v.Source)
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("service %s mounts %s: %v", name, v.Source, err)
			}
			if v.Target == "/etc/conveyor/conveyor.yaml" {
				checkConveyorConfig(t, name, v.Source, secrets)
			}
		}
	}
}

// checkConveyorConfig decodes a conveyor.yaml strictly, as the workers do, and checks
// that it holds no password and that the secret files it names are mounted in service.
func checkConveyorConfig(t *testing.T, service, path string, mounted []string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c config.Config
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if c.Registry.Password != "" || c.Gerrit.Password != "" || c.OpenStack.Password != "" {
		t.Errorf("%s holds a password in the clear: use a *File field and a secret", path)
	}
	// Each pool reads only its own sections, so a service mounts only its own secrets.
	needs := map[string]string{"worker-build": c.Gerrit.PasswordFile, "worker-deploy": c.Kubernetes.Kubeconfig,
		"worker-migrate": c.OpenStack.PasswordFile}
	if f := needs[service]; f != "" && !slices.Contains(mounted, f) {
		t.Errorf("service %s reads %s (%s) but does not mount it as a secret", service, f, path)
	}
}
