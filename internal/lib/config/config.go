// Package config is conveyor's one configuration file, read by the workers and the
// command line alike. Every value can be overridden by an environment variable (and,
// in the commands, by a flag that sets the same field).
//
// The file is YAML:
//
//	temporal:
//	  address: 127.0.0.1:7233
//	  namespace: default
//	  uiURL: http://127.0.0.1:8233
//	  payloadKeyFile: /etc/conveyor/payload-keys
//	buildkit:
//	  address: unix:///srv/conveyor/.local/buildkit/buildkitd.sock
//	  egress:
//	    allow: [registry.npmjs.org, "*.debian.org"]
//	registry:
//	  address: localhost:5000
//	  username: conveyor
//	  passwordFile: /etc/conveyor/registry-password
//	kubernetes:
//	  kubeconfig: /srv/conveyor/.local/kubernetes/admin.kubeconfig
//	gerrit:
//	  url: https://gerrit.example.org/r
//	  username: conveyor-bot
//	  passwordFile: /etc/conveyor/gerrit-http-password
//	retention:
//	  workspaces: {maxAge: 168h, keep: 3}
//	  candidates: {maxAge: 336h, keep: 10}
//	stateDir: /srv/conveyor/.local
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultStateDir is where the local stack keeps its state, relative to the working
// directory, unless CONVEYOR_STATE_DIR or the configuration says otherwise.
const DefaultStateDir = ".local"

// FileName is the name of the configuration file that `conveyor dev up` writes into
// the state directory.
const FileName = "conveyor.yaml"

// Config is everything a worker or the command line needs to reach the outside systems.
type Config struct {
	Temporal   Temporal   `yaml:"temporal"`
	Buildkit   Buildkit   `yaml:"buildkit"`
	Registry   Registry   `yaml:"registry"`
	Kubernetes Kubernetes `yaml:"kubernetes"`
	Gerrit     Gerrit     `yaml:"gerrit,omitempty"`
	OpenStack  OpenStack  `yaml:"openstack,omitempty"`
	// Promotion says where the per-environment deployment settings are kept and
	// which clusters production has.
	Promotion Promotion `yaml:"promotion,omitempty"`
	// Retention says how long `conveyor gc` keeps workspaces and candidate images.
	Retention Retention `yaml:"retention,omitempty"`
	// Tracing says where the workers and the webhook receiver send their traces.
	Tracing Tracing `yaml:"tracing,omitempty"`
	// StateDir holds workspaces and the local stack's state.
	StateDir string `yaml:"stateDir"`
}

// Retention is what `conveyor gc` keeps (docs/operating.md, "Garbage collection").
// Each kind keeps its newest Keep items and any item younger than MaxAge; gc
// deletes only what is both older and beyond the count.
type Retention struct {
	// Workspaces are the checkouts under <stateDir>/workspaces, one per commit,
	// counted per repository and aged by their last use. Default
	// DefaultWorkspaceRetention.
	Workspaces Keep `yaml:"workspaces,omitempty"`
	// Candidates are the images under <registry>/candidates/, counted per image
	// and aged by the start of the pipeline run that pushed them. Default
	// DefaultCandidateRetention.
	Candidates Keep `yaml:"candidates,omitempty"`
}

// Keep is a retention policy: an item is deleted only when it is older than
// MaxAge and not among the newest Keep of its group.
type Keep struct {
	// MaxAge is written as a Go duration: 168h, 90m.
	MaxAge time.Duration `yaml:"maxAge,omitempty"`
	Keep   int           `yaml:"keep,omitempty"`
}

// UnmarshalYAML reads {maxAge: 168h, keep: 3}, leaving a field that is not
// written as it was (its default), and says which field is wrong and how to write
// it.
func (k *Keep) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: expected a mapping such as {maxAge: 168h, keep: 3}", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		switch key.Value {
		case "maxAge":
			d, err := time.ParseDuration(val.Value)
			if err != nil || val.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: maxAge %q is not a duration: write a Go duration such as 168h or 90m (hours are the largest unit)", val.Line, val.Value)
			}
			k.MaxAge = d
		case "keep":
			if err := val.Decode(&k.Keep); err != nil {
				return fmt.Errorf("line %d: keep %q is not a whole number", val.Line, val.Value)
			}
		default:
			return fmt.Errorf("line %d: field %q is not a retention field: give maxAge and keep", key.Line, key.Value)
		}
	}
	return nil
}

// MarshalYAML writes maxAge as a duration (168h0m0s), as UnmarshalYAML reads it.
func (k Keep) MarshalYAML() (any, error) {
	return struct {
		MaxAge string `yaml:"maxAge"`
		Keep   int    `yaml:"keep"`
	}{k.MaxAge.String(), k.Keep}, nil
}

// DefaultWorkspaceRetention keeps a week of checkouts and, whatever their age,
// the last 3 of each repository.
var DefaultWorkspaceRetention = Keep{MaxAge: 7 * 24 * time.Hour, Keep: 3}

// DefaultCandidateRetention keeps two weeks of candidate images and, whatever
// their age, the last 10 of each image.
var DefaultCandidateRetention = Keep{MaxAge: 14 * 24 * time.Hour, Keep: 10}

// MinWorkspaceAge is the shortest retention.workspaces.maxAge: a checkout is in
// use for at most the longest activity that reads one (an hour's build), and
// gc tells one in use from an idle one only by that age.
const MinWorkspaceAge = 2 * time.Hour

// Temporal says how to reach the Temporal frontend.
type Temporal struct {
	Address   string `yaml:"address"`
	Namespace string `yaml:"namespace"`
	// UIURL is the Web UI's base address, used to print links to workflows.
	UIURL string `yaml:"uiURL"`
	// TLSCert, TLSKey and TLSCA are PEM files for mutual TLS; empty means plain gRPC.
	TLSCert    string `yaml:"tlsCert,omitempty"`
	TLSKey     string `yaml:"tlsKey,omitempty"`
	TLSCA      string `yaml:"tlsCA,omitempty"`
	TLSServer  string `yaml:"tlsServerName,omitempty"`
	APIKeyFile string `yaml:"apiKeyFile,omitempty"`
	// PayloadKeyFile, when set, turns on the encryption of payloads (workflow
	// and activity inputs and results, signals, memos, failure messages) with
	// the keys it lists (docs/security.md); the client and the workers must
	// share it. Empty: payloads are kept in the clear.
	PayloadKeyFile string `yaml:"payloadKeyFile,omitempty"`
}

// Buildkit says how to reach buildkitd and what build steps may reach.
type Buildkit struct {
	// Address is a buildkitd address such as unix:///run/buildkit/buildkitd.sock.
	Address string `yaml:"address"`
	// Egress is what a repository's build steps may reach (docs/security.md).
	Egress Egress `yaml:"egress"`
}

// Egress says where the steps of a build (builders: npm, pip, apt, a config's own
// commands) may fetch from. Each step runs in a network namespace of its own whose
// only way out is buildkitd's HTTP(S) proxy, which fetches only from these hosts;
// test steps have no network at all. Neither reaches conveyor's own services.
type Egress struct {
	// Allow lists host names ("registry.npmjs.org") and suffix patterns
	// ("*.debian.org"); default DefaultEgress. An empty list allows nothing.
	Allow []string `yaml:"allow"`
}

var egressHostRE = regexp.MustCompile(`^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$`)

// DefaultEgress is the package registries that builders fetch from: npm, Debian,
// PyPI, Packagist and the Go module proxy.
var DefaultEgress = []string{
	"registry.npmjs.org",
	"deb.debian.org", "security.debian.org",
	"pypi.org", "files.pythonhosted.org",
	"repo.packagist.org",
	"proxy.golang.org", "sum.golang.org",
}

// Registry is the artifact registry images are pushed to.
type Registry struct {
	// Address is host[:port], e.g. localhost:5000.
	Address  string `yaml:"address"`
	Username string `yaml:"username,omitempty"`
	Password string `yaml:"password,omitempty"`
	// PasswordFile holds the password on its first line (a mounted Secret); Load
	// reads it into Password when Password is empty.
	PasswordFile string `yaml:"passwordFile,omitempty"`
}

// Kubernetes says which cluster deploys go to.
type Kubernetes struct {
	Kubeconfig string `yaml:"kubeconfig"`
	// ReleaseClusterRole, when set, is a ClusterRole that the deploy pool binds to
	// its own identity in each ci-… namespace it creates, before installing there
	// (charts/conveyor sets it: docs/production.md, "RBAC").
	ReleaseClusterRole string `yaml:"releaseClusterRole,omitempty"`
}

// OpenStack is the Keystone a pair of deployments share and the deployments (regions)
// the cloud migration moves between (docs/migration.md).
type OpenStack struct {
	// AuthURL is Keystone's v3 endpoint, e.g. http://127.0.0.1:5050/v3.
	AuthURL string `yaml:"authURL,omitempty"`
	// Username, Password, ProjectName and Domain are the credentials of an account
	// with the admin role; Domain names both the user's and the project's domain
	// ("Default" when empty).
	Username     string `yaml:"username,omitempty"`
	Password     string `yaml:"password,omitempty"`
	PasswordFile string `yaml:"passwordFile,omitempty"`
	ProjectName  string `yaml:"projectName,omitempty"`
	Domain       string `yaml:"domain,omitempty"`
	// Deployments maps a deployment's name (eqiad1, codfw2dev) to its region in
	// the Keystone catalog.
	Deployments map[string]OpenStackDeployment `yaml:"deployments,omitempty"`
}

// OpenStackDeployment is one deployment of a pair.
type OpenStackDeployment struct {
	// Region is the deployment's region name in Keystone's catalog.
	Region string `yaml:"region"`
}

// Promotion is what the staged promotion (promotions.Promotion) reads.
type Promotion struct {
	// ConfigRepo is the git repository (a path or URL) of the configuration
	// registry: Helm values and a promotion plan per environment and service.
	ConfigRepo string `yaml:"configRepo,omitempty"`
	// ProtectedBranch is the configuration registry's reviewed branch: a
	// promotion reads its plan (and so its approvers) only from a commit on it,
	// whatever ref the starter names. Default DefaultProtectedBranch.
	ProtectedBranch string `yaml:"protectedBranch,omitempty"`
	// Clusters are the Kubernetes clusters, staging and one per data centre for
	// production; the plan names them.
	Clusters []Cluster `yaml:"clusters,omitempty"`
}

// DefaultProtectedBranch is the configuration registry's reviewed branch unless
// promotion.protectedBranch says otherwise.
const DefaultProtectedBranch = "main"

// Cluster is one Kubernetes cluster deploys can go to.
type Cluster struct {
	// Name is how plans refer to it, e.g. eqiad or codfw.
	Name       string `yaml:"name"`
	Kubeconfig string `yaml:"kubeconfig"`
	// Simulated says the cluster's nodes are simulated (kwok): pods never run,
	// so a canary there is analysed by readiness only.
	Simulated bool `yaml:"simulated,omitempty"`
}

// Gerrit is the code review server that triggers pipelines and receives their
// results (docs/triggers.md).
type Gerrit struct {
	// URL is the server's base address, e.g. https://gerrit.example.org/r; REST
	// calls go to URL/a/..., and repositories are fetched from URL/<project>
	// unless the triggers file says otherwise.
	URL string `yaml:"url,omitempty"`
	// Username and Password are an account's HTTP credentials (Settings → HTTP
	// Credentials in Gerrit's UI), sent with basic auth.
	Username string `yaml:"username,omitempty"`
	Password string `yaml:"password,omitempty"`
	// PasswordFile holds the HTTP password on its first line; it is read when
	// Password is empty.
	PasswordFile string `yaml:"passwordFile,omitempty"`
}

// HTTPPassword returns the password, read from PasswordFile when Password is
// empty; "" when neither is set.
func (g Gerrit) HTTPPassword() (string, error) {
	if g.Password != "" || g.PasswordFile == "" {
		return g.Password, nil
	}
	return SecretFile("gerrit.passwordFile", g.PasswordFile)
}

// Defaults returns the configuration of a local stack in the default state directory.
func Defaults() Config {
	return Config{
		Temporal:  Temporal{Address: "127.0.0.1:7233", Namespace: "default", UIURL: "http://127.0.0.1:8233"},
		Buildkit:  Buildkit{Egress: Egress{Allow: slices.Clone(DefaultEgress)}},
		Registry:  Registry{Address: "localhost:5000"},
		Retention: Retention{Workspaces: DefaultWorkspaceRetention, Candidates: DefaultCandidateRetention},
		StateDir:  DefaultStateDir,
	}
}

// envOverrides maps each environment variable to the field it overrides. The standard
// TEMPORAL_* names are honoured so the temporal CLI and conveyor can share a shell.
func envOverrides(c *Config) []struct {
	name string
	dst  *string
} {
	return []struct {
		name string
		dst  *string
	}{
		{"TEMPORAL_ADDRESS", &c.Temporal.Address},
		{"TEMPORAL_NAMESPACE", &c.Temporal.Namespace},
		{"TEMPORAL_TLS_CERT", &c.Temporal.TLSCert},
		{"TEMPORAL_TLS_KEY", &c.Temporal.TLSKey},
		{"TEMPORAL_TLS_CA", &c.Temporal.TLSCA},
		{"TEMPORAL_TLS_SERVER_NAME", &c.Temporal.TLSServer},
		{"CONVEYOR_TEMPORAL_UI_URL", &c.Temporal.UIURL},
		{"CONVEYOR_TEMPORAL_PAYLOAD_KEY_FILE", &c.Temporal.PayloadKeyFile},
		{"CONVEYOR_BUILDKIT_ADDRESS", &c.Buildkit.Address},
		{"CONVEYOR_REGISTRY", &c.Registry.Address},
		{"CONVEYOR_REGISTRY_USERNAME", &c.Registry.Username},
		{"CONVEYOR_REGISTRY_PASSWORD", &c.Registry.Password},
		{"CONVEYOR_REGISTRY_PASSWORD_FILE", &c.Registry.PasswordFile},
		{"KUBECONFIG", &c.Kubernetes.Kubeconfig},
		{"CONVEYOR_GERRIT_URL", &c.Gerrit.URL},
		{"CONVEYOR_GERRIT_USERNAME", &c.Gerrit.Username},
		{"CONVEYOR_GERRIT_PASSWORD", &c.Gerrit.Password},
		{"CONVEYOR_GERRIT_PASSWORD_FILE", &c.Gerrit.PasswordFile},
		{"OS_AUTH_URL", &c.OpenStack.AuthURL},
		{"OS_USERNAME", &c.OpenStack.Username},
		{"OS_PASSWORD", &c.OpenStack.Password},
		{"OS_PROJECT_NAME", &c.OpenStack.ProjectName},
		{"CONVEYOR_CONFIG_REPO", &c.Promotion.ConfigRepo},
		{"CONVEYOR_TRACING_ENDPOINT", &c.Tracing.Endpoint},
		{"CONVEYOR_STATE_DIR", &c.StateDir},
	}
}

// Path returns the configuration file to read: explicit if set, else $CONVEYOR_CONFIG,
// else conveyor.yaml in the state directory ($CONVEYOR_STATE_DIR or .local).
func Path(explicit string) string {
	if explicit != "" {
		return explicit
	}
	if p := os.Getenv("CONVEYOR_CONFIG"); p != "" {
		return p
	}
	dir := os.Getenv("CONVEYOR_STATE_DIR")
	if dir == "" {
		dir = DefaultStateDir
	}
	return filepath.Join(dir, FileName)
}

// Load reads the configuration file at path over the defaults, then applies the
// environment. A missing file is not an error when the path was not given explicitly:
// the defaults and the environment still apply.
func Load(path string, explicit bool) (Config, error) {
	c := Defaults()
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return Config{}, fmt.Errorf("reading configuration %s: %w", path, err)
		}
	case errors.Is(err, fs.ErrNotExist) && !explicit:
	default:
		return Config{}, fmt.Errorf("reading configuration: %w", err)
	}
	for _, o := range envOverrides(&c) {
		if v, ok := os.LookupEnv(o.name); ok && v != "" {
			*o.dst = v
		}
	}
	for i, host := range c.Buildkit.Egress.Allow {
		if !egressHostRE.MatchString(host) {
			return Config{}, fmt.Errorf("%s: buildkit.egress.allow[%d]: %q is not a host name or a *.suffix pattern (write registry.npmjs.org or \"*.debian.org\": no scheme, port or path)", path, i, host)
		}
	}
	if err := c.Retention.check(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	if err := c.Tracing.check(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	if c.Registry.Password == "" && c.Registry.PasswordFile != "" {
		if c.Registry.Password, err = SecretFile("registry.passwordFile", c.Registry.PasswordFile); err != nil {
			return Config{}, err
		}
	}
	return c, nil
}

// check refuses a retention that would delete what is in use or that cannot mean
// anything.
func (r Retention) check() error {
	for _, k := range []struct {
		field string
		keep  Keep
	}{{"retention.workspaces", r.Workspaces}, {"retention.candidates", r.Candidates}} {
		if k.keep.MaxAge < 0 || k.keep.Keep < 0 {
			return fmt.Errorf("%s: maxAge %s and keep %d must not be negative", k.field, k.keep.MaxAge, k.keep.Keep)
		}
	}
	if r.Workspaces.MaxAge < MinWorkspaceAge {
		return fmt.Errorf("retention.workspaces.maxAge: %s is shorter than %s: a checkout that young may be in use by a build; give at least %s (the default is %s)",
			r.Workspaces.MaxAge, MinWorkspaceAge, MinWorkspaceAge, DefaultWorkspaceRetention.MaxAge)
	}
	return nil
}

// SecretFile reads the secret on the first line of the file that key (a
// configuration key or a flag, for the error) names.
func SecretFile(key, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if line = strings.TrimSpace(line); line == "" {
		return "", fmt.Errorf("%s %s is empty: it should hold the secret on one line", key, path)
	}
	return line, nil
}

// Write stores c at path (mode 0600: it holds the registry password).
func Write(path string, c Config) error {
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Errorf("encoding configuration: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("writing configuration: %w", err)
	}
	header := "# Written by `conveyor dev up` for the local stack. Environment variables and flags override it.\n"
	return os.WriteFile(path, append([]byte(header), b...), 0o600)
}

// WorkflowURL returns the Web UI page of a workflow run, or "" when t has no UI URL.
func (t Temporal) WorkflowURL(workflowID, runID string) string {
	if t.UIURL == "" {
		return ""
	}
	return fmt.Sprintf("%s/namespaces/%s/workflows/%s/%s", strings.TrimRight(t.UIURL, "/"),
		url.PathEscape(t.Namespace), url.PathEscape(workflowID), url.PathEscape(runID))
}
