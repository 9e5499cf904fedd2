package devstack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wikimedia/conveyor/internal/dev/gittest"
)

// The configuration registry of the local stack: a git repository in the state
// directory with the promotion plan and Helm values of the sample service "hello"
// (examples/hello), in the format of docs/promotion.md. It is made once, when it
// is absent; later runs of `dev up` leave it, and any local edits, alone.

// configRepoDir is the registry's directory under the state directory.
const configRepoDir = "configrepo"

func (s *stack) configRepoPath() string { return s.path(configRepoDir) }

func configRepoComponent() component {
	return component{
		name:    "configrepo",
		address: func(s *stack) string { return s.configRepoPath() },
		timeout: 10 * time.Second,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			return nil, s.makeConfigRepo(ctx)
		},
		ready: func(ctx context.Context, s *stack) error {
			_, err := gitIn(ctx, s.configRepoPath(), "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
			if err != nil {
				return fmt.Errorf("no commit in the configuration registry %s: %w", s.configRepoPath(), err)
			}
			return nil
		},
	}
}

// makeConfigRepo creates the sample registry unless the directory exists.
func (s *stack) makeConfigRepo(ctx context.Context) error {
	dir := s.configRepoPath()
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	tmp, err := os.MkdirTemp(s.dir, ".configrepo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for name, content := range sampleRegistry(s.productionClusters()) {
		if err := writeFile(filepath.Join(tmp, filepath.FromSlash(name)), content, 0o644); err != nil {
			return err
		}
	}
	for _, args := range [][]string{
		{"init", "--quiet", "--initial-branch", "main"},
		{"add", "--all"},
		{"commit", "--quiet", "--message", "Sample configuration registry of the local stack\n\nMade by `conveyor dev up`; see docs/promotion.md."},
	} {
		if _, err := gitIn(ctx, tmp, args...); err != nil {
			return err
		}
	}
	return os.Rename(tmp, dir)
}

// productionClusters are the names of the stack's clusters, in promotion order.
func (s *stack) productionClusters() []string {
	var names []string
	for _, c := range s.config().Promotion.Clusters {
		names = append(names, c.Name)
	}
	if len(names) == 0 {
		names = []string{"eqiad"}
	}
	return names
}

// devUp commits the sample as a fixed author at a fixed time so that the sample's
// commit is the same on every machine.
var devUp = gittest.Identity{Name: "conveyor dev up", Email: "conveyor@localhost", Date: "2026-01-01T00:00:00Z"}

// gitIn runs git in dir as devUp.
func gitIn(ctx context.Context, dir string, args ...string) (string, error) {
	return devUp.Run(ctx, dir, args...)
}

// sampleRegistry is the sample's files by path: the hello service promoted to
// clusters in order.
func sampleRegistry(clusters []string) map[string]string {
	var prod strings.Builder
	for _, c := range clusters {
		fmt.Fprintf(&prod, "  - cluster: %s\n    namespace: hello\n", c)
	}
	files := map[string]string{
		"README.md": `# Configuration registry (sample made by ` + "`conveyor dev up`" + `)

Per service, under services/<service>/: promotion.yaml (the promotion plan) and the Helm
values of conveyor's service chart: values.yaml for every environment, staging/values.yaml,
production/values.yaml and production/<cluster>/values.yaml, merged in that order.
The format is described in conveyor's docs/promotion.md ("Configuration registry").
Commit a change here, then start a promotion (` + "`conveyor promote start`" + `); the
promotion records the commit it read.
`,
		"services/hello/promotion.yaml": `# The promotion plan of hello: staging, then production cluster by cluster.
staging:
  cluster: ` + clusters[0] + `
  namespace: hello-staging
# Production clusters, in the order they are promoted.
production:
` + prod.String() + `# Pods of hello in each production cluster; a step's weight is the canary's share.
replicas: 4
steps:
  - weight: 10      # 1 canary pod of 4: an actual 25 %
    pause: 10s
  - weight: 50      # 2 of 4
    pause: 10s
  - weight: 100     # 4 of 4, then the new image becomes the stable release
analysis:
  requests: 50
  path: /cgi-bin/hello?name=canary
  maxErrorRatio: 0.01
  maxLatencyP95: 500ms
smokePath: /cgi-bin/hello?name=staging
approvers: [alice, bob]
reminderEvery: 1h
pauseTimeout: 72h
historyMax: 5
`,
		"services/hello/values.yaml": `# Helm values of hello in every environment (charts/service/values.yaml).
containerPort: 8080
service:
  port: 8080
probes:
  readiness: {path: /cgi-bin/healthz, periodSeconds: 1}
  liveness: {path: /cgi-bin/healthz}
test:
  path: /cgi-bin/hello?name=helm-test
resources:
  requests: {cpu: 10m, memory: 16Mi}
  limits: {cpu: 500m, memory: 256Mi}
`,
		"services/hello/staging/values.yaml": `env:
  ENVIRONMENT: staging
`,
		"services/hello/production/values.yaml": `env:
  ENVIRONMENT: production
`,
	}
	for _, c := range clusters {
		files["services/hello/production/"+c+"/values.yaml"] = "podAnnotations:\n  conveyor.wikimedia.org/datacenter: " + c + "\n"
	}
	return files
}
