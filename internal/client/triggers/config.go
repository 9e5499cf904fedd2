// Package triggers turns Gerrit's events into workflow starts: which projects are
// enabled and how (the triggers file, docs/triggers.md), the Handler that maps an
// event to a workflow with an id derived from the event, the HTTP endpoint of the
// webhooks plugin, the stream-events reader, and the schedules and long-running
// trigger workflows (nightly builds, merge batchers, the base image check) with
// their sync, list, pause and resume.
package triggers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/wikimedia/conveyor/workflows/changes"

	"gopkg.in/yaml.v3"

	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/internal/lib/gerrit"
	"github.com/wikimedia/conveyor/internal/lib/pipelineconfig"
)

// Defaults of the triggers file.
const (
	// DefaultNightlyCron is when nightly builds run: 04:00 UTC.
	DefaultNightlyCron = "0 4 * * *"
	// DefaultMaxBodyBytes bounds a webhook body: Gerrit's events are a few KiB,
	// a change with a huge commit message a few hundred.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultWebhookUser is the basic auth user name in the basic auth mode.
	DefaultWebhookUser = "gerrit"
	// MinSecretLength is the shortest webhook secret accepted.
	MinSecretLength = 16
)

// Webhook authentication modes.
const (
	// AuthPath: the secret is the last path element, POST /gerrit/events/<secret>.
	AuthPath = "path"
	// AuthBasic: the secret is the basic auth password, POST /gerrit/events.
	AuthBasic = "basic"
)

// Actions of a ref-updated rule.
const (
	// RefPublish runs the pipeline of the ref with Publish.
	RefPublish = "publish"
	// RefVerify runs the pipeline of the ref without publishing.
	RefVerify = "verify"
	// RefBatch adds the update to the branch's merge batch.
	RefBatch = "batch"
)

// file is the triggers file as written; absent fields take the defaults.
type file struct {
	Gerrit struct {
		URL string `yaml:"url"`
	} `yaml:"gerrit"`
	Webhook struct {
		Auth         string `yaml:"auth"`
		Secret       string `yaml:"secret"`
		SecretFile   string `yaml:"secretFile"`
		Username     string `yaml:"username"`
		MaxBodyBytes int64  `yaml:"maxBodyBytes"`
	} `yaml:"webhook"`
	Stream struct {
		Command    []string      `yaml:"command"`
		MinBackoff time.Duration `yaml:"minBackoff"`
		MaxBackoff time.Duration `yaml:"maxBackoff"`
	} `yaml:"stream"`
	Nightly struct {
		Cron string `yaml:"cron"`
	} `yaml:"nightly"`
	BaseImages struct {
		Every time.Duration `yaml:"every"`
	} `yaml:"baseImages"`
	Defaults settings  `yaml:"defaults"`
	Projects []project `yaml:"projects"`
}

// settings are a project's settings, or the defaults of every project.
type settings struct {
	Branches       []string `yaml:"branches"`
	Verify         *bool    `yaml:"verify"`
	Report         *bool    `yaml:"report"`
	PublishOnMerge *bool    `yaml:"publishOnMerge"`
	// PublishBranches are the branches whose builds publish; nil means
	// DefaultPublishBranches.
	PublishBranches []string `yaml:"publishBranches"`
	Batch           struct {
		QuietPeriod      time.Duration `yaml:"quietPeriod"`
		MaxWait          time.Duration `yaml:"maxWait"`
		MaxBatchesPerRun int           `yaml:"maxBatchesPerRun"`
		MaxEventsPerRun  int           `yaml:"maxEventsPerRun"`
	} `yaml:"batch"`
	Nightly    []string    `yaml:"nightly"`
	BaseImages *bool       `yaml:"baseImages"`
	RefUpdated []RefAction `yaml:"refUpdated"`
}

type project struct {
	Name              string `yaml:"name"`
	Repo              string `yaml:"repo"`
	Image             string `yaml:"image"`
	WebhookSecretFile string `yaml:"webhookSecretFile"`
	settings          `yaml:",inline"`
}

// RefAction is a ref-updated rule: updates of refs matching Ref (a path.Match
// pattern over the full ref, e.g. refs/tags/v*) run Action.
type RefAction struct {
	Ref    string `yaml:"ref"`
	Action string `yaml:"action"`
}

// Config is the triggers file, read and checked, defaults filled in.
type Config struct {
	// GerritURL is the server whose repositories are fetched by default.
	GerritURL string
	Webhook   Webhook
	Stream    StreamConfig
	// NightlyCron is the nightly builds' cron expression, in UTC.
	NightlyCron string
	// BaseImagesEvery is the base image check's interval.
	BaseImagesEvery time.Duration
	Projects        []Project

	// secretFile is webhook.secretFile, read by LoadFile.
	secretFile string
}

// Webhook is how the webhooks endpoint authenticates and what it accepts.
type Webhook struct {
	Auth         string
	Secret       string
	Username     string
	MaxBodyBytes int64
}

// StreamConfig is how `conveyor gerrit stream` reads events.
type StreamConfig struct {
	// Command prints stream-events' lines, e.g. ssh -p 29418 host gerrit stream-events.
	Command    []string
	MinBackoff time.Duration
	MaxBackoff time.Duration
}

// LoadFile reads the triggers file at path, then the webhook secret from
// webhook.secretFile (relative to the file's directory) or, overriding it,
// $CONVEYOR_WEBHOOK_SECRET, and each project's own from its webhookSecretFile
// (relative too). gerritURL is the default Gerrit
// address (conveyor's configuration's gerrit.url); the file's gerrit.url wins.
func LoadFile(path, gerritURL string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the triggers file: %w", err)
	}
	c, err := Parse(b, gerritURL)
	if err != nil {
		return nil, fmt.Errorf("triggers file %s: %w", path, err)
	}
	if c.Webhook.Secret == "" && c.secretFile != "" {
		if !filepath.IsAbs(c.secretFile) {
			c.secretFile = filepath.Join(filepath.Dir(path), c.secretFile)
		}
		s, err := os.ReadFile(c.secretFile)
		if err != nil {
			return nil, fmt.Errorf("triggers file %s: webhook.secretFile: %w", path, err)
		}
		c.Webhook.Secret = strings.TrimSpace(string(s))
	}
	if s := os.Getenv("CONVEYOR_WEBHOOK_SECRET"); s != "" {
		c.Webhook.Secret = s
	}
	for i := range c.Projects {
		p := &c.Projects[i]
		if p.webhookSecretFile == "" {
			continue
		}
		if !filepath.IsAbs(p.webhookSecretFile) {
			p.webhookSecretFile = filepath.Join(filepath.Dir(path), p.webhookSecretFile)
		}
		if p.webhookSecret, err = config.SecretFile(fmt.Sprintf("triggers file %s: projects[%d] (%s).webhookSecretFile", path, i, p.Name), p.webhookSecretFile); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// ProjectSecrets are the projects' own webhook secrets (projects[].webhookSecretFile,
// read by LoadFile), by project; nil when no project has one.
func (c *Config) ProjectSecrets() map[string]string {
	var out map[string]string
	for _, p := range c.Projects {
		if p.webhookSecret != "" {
			if out == nil {
				out = map[string]string{}
			}
			out[p.Name] = p.webhookSecret
		}
	}
	return out
}

// Parse reads a triggers file's content; LoadFile also reads the secret file and
// the environment. Every problem is reported, one a line, naming the field.
func Parse(data []byte, gerritURL string) (*Config, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	c := &Config{
		GerritURL: strings.TrimRight(cmp(f.Gerrit.URL, gerritURL), "/"),
		Webhook: Webhook{
			Auth: cmp(f.Webhook.Auth, AuthPath), Secret: f.Webhook.Secret,
			Username: cmp(f.Webhook.Username, DefaultWebhookUser), MaxBodyBytes: f.Webhook.MaxBodyBytes,
		},
		Stream:          StreamConfig{Command: f.Stream.Command, MinBackoff: f.Stream.MinBackoff, MaxBackoff: f.Stream.MaxBackoff},
		NightlyCron:     cmp(f.Nightly.Cron, DefaultNightlyCron),
		BaseImagesEvery: f.BaseImages.Every,
	}
	if c.Webhook.MaxBodyBytes == 0 {
		c.Webhook.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Webhook.Auth != AuthPath && c.Webhook.Auth != AuthBasic {
		bad("webhook.auth: want %s or %s, got %q", AuthPath, AuthBasic, c.Webhook.Auth)
	}
	if c.Webhook.MaxBodyBytes < 0 {
		bad("webhook.maxBodyBytes: want a positive size in bytes, got %d", c.Webhook.MaxBodyBytes)
	}
	if c.Stream.MinBackoff <= 0 {
		c.Stream.MinBackoff = time.Second
	}
	if c.Stream.MaxBackoff <= 0 {
		c.Stream.MaxBackoff = time.Minute
	}
	if c.Stream.MaxBackoff < c.Stream.MinBackoff {
		bad("stream.maxBackoff (%s) is shorter than stream.minBackoff (%s)", c.Stream.MaxBackoff, c.Stream.MinBackoff)
	}
	if n := len(strings.Fields(c.NightlyCron)); (n < 5 || n > 7) && !strings.HasPrefix(c.NightlyCron, "@") {
		bad("nightly.cron: %q is not a cron expression (5 fields: minute hour day-of-month month day-of-week, in UTC), e.g. %q", c.NightlyCron, DefaultNightlyCron)
	}
	if c.BaseImagesEvery < 0 || (c.BaseImagesEvery > 0 && c.BaseImagesEvery < time.Minute) {
		bad("baseImages.every: want at least 1m, got %s", c.BaseImagesEvery)
	}
	if c.BaseImagesEvery == 0 {
		c.BaseImagesEvery = changes.DefaultBaseCheckEvery
	}

	seen := map[string]bool{}
	images := map[string]string{} // image -> the project that publishes it
	for i, p := range f.Projects {
		where := fmt.Sprintf("projects[%d]", i)
		name := strings.Trim(strings.TrimSpace(p.Name), "/")
		if name == "" {
			bad("%s.name: empty: give the Gerrit project, e.g. mediawiki/services/hello", where)
			continue
		}
		where = fmt.Sprintf("projects[%d] (%s)", i, name)
		if seen[name] {
			bad("%s: the project is listed twice", where)
		}
		seen[name] = true
		pc := Project{Name: name, Repo: p.Repo, Image: p.Image, webhookSecretFile: strings.TrimSpace(p.WebhookSecretFile)}
		switch {
		case p.Image != "" && !imageRE.MatchString(p.Image):
			bad("%s.image: %q is not a repository name (lowercase letters, digits, '-', '.', '_', '/'), e.g. hello", where, p.Image)
		case p.Image == "":
			// Derived from the project's name, which is conveyor's, never from
			// the repository's own pipeline.image.
			pc.Image = pipelineconfig.DefaultImage(name)
			if !imageRE.MatchString(pc.Image) {
				bad("%s.image: unset, and %q derived from the project's name is not a repository name: set image", where, pc.Image)
			}
		}
		if other, ok := images[pc.Image]; ok {
			bad("%s.image: %q is also the image of %s: each project publishes its own image, and so promotes its own service; "+
				"set image on one of them", where, pc.Image, other)
		} else {
			images[pc.Image] = where
		}
		if pc.Repo == "" {
			if c.GerritURL == "" {
				bad("%s.repo: no repository: set repo, or gerrit.url here or in conveyor's configuration (then %s/%s is used)", where, "<gerrit.url>", name)
			}
			pc.Repo = c.GerritURL + "/" + name
		}
		s := merge(f.Defaults, p.settings)
		pc.Branches = s.Branches
		pc.Verify, pc.Report = boolOr(s.Verify, true), boolOr(s.Report, true)
		pc.PublishOnMerge, pc.BaseImages = boolOr(s.PublishOnMerge, true), boolOr(s.BaseImages, true)
		pc.Batch = changes.BatchSettings{QuietPeriod: s.Batch.QuietPeriod, MaxWait: s.Batch.MaxWait,
			MaxBatchesPerRun: s.Batch.MaxBatchesPerRun, MaxEventsPerRun: s.Batch.MaxEventsPerRun}.WithDefaults()
		if pc.Batch.MaxWait < pc.Batch.QuietPeriod {
			bad("%s.batch: maxWait (%s) is shorter than quietPeriod (%s)", where, pc.Batch.MaxWait, pc.Batch.QuietPeriod)
		}
		for j, b := range pc.Branches {
			if gerrit.ShortBranch(b) == "" {
				bad("%s.branches[%d]: %q is not a branch (write main or refs/heads/main)", where, j, b)
			}
			pc.Branches[j] = gerrit.ShortBranch(b)
		}
		pc.PublishBranches = DefaultPublishBranches
		if s.PublishBranches != nil {
			pc.PublishBranches = nil
		}
		for j, b := range s.PublishBranches {
			if gerrit.ShortBranch(b) == "" || strings.ContainsAny(b, "*?[") {
				bad("%s.publishBranches[%d]: %q is not a branch (write main or refs/heads/main; no patterns)", where, j, b)
				continue
			}
			pc.PublishBranches = append(pc.PublishBranches, gerrit.ShortBranch(b))
		}
		for j, b := range s.Nightly {
			if gerrit.ShortBranch(b) == "" {
				bad("%s.nightly[%d]: %q is not a branch", where, j, b)
				continue
			}
			pc.Nightly = append(pc.Nightly, gerrit.ShortBranch(b))
		}
		for j, r := range s.RefUpdated {
			if _, err := path.Match(r.Ref, "refs/heads/main"); err != nil || !strings.HasPrefix(r.Ref, "refs/") {
				bad("%s.refUpdated[%d].ref: %q is not a pattern of full refs such as refs/tags/v*", where, j, r.Ref)
			}
			if !slices.Contains([]string{RefPublish, RefVerify, RefBatch}, r.Action) {
				bad("%s.refUpdated[%d].action: want %s, %s or %s, got %q", where, j, RefPublish, RefVerify, RefBatch, r.Action)
			}
			if r.Action == RefBatch && !strings.HasPrefix(r.Ref, "refs/heads/") {
				bad("%s.refUpdated[%d]: action batch needs branches (refs/heads/...), got %q", where, j, r.Ref)
			}
		}
		pc.RefUpdated = s.RefUpdated
		c.Projects = append(c.Projects, pc)
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "\n"))
	}
	c.secretFile = f.Webhook.SecretFile
	return c, nil
}

// merge lays a project's settings over the defaults.
func merge(def, p settings) settings {
	if p.Branches == nil {
		p.Branches = slices.Clone(def.Branches)
	}
	if p.PublishBranches == nil {
		p.PublishBranches = slices.Clone(def.PublishBranches)
	}
	for _, b := range []struct{ dst, src **bool }{{&p.Verify, &def.Verify}, {&p.Report, &def.Report},
		{&p.PublishOnMerge, &def.PublishOnMerge}, {&p.BaseImages, &def.BaseImages}} {
		if *b.dst == nil {
			*b.dst = *b.src
		}
	}
	if p.Batch.QuietPeriod == 0 {
		p.Batch.QuietPeriod = def.Batch.QuietPeriod
	}
	if p.Batch.MaxWait == 0 {
		p.Batch.MaxWait = def.Batch.MaxWait
	}
	if p.Batch.MaxBatchesPerRun == 0 {
		p.Batch.MaxBatchesPerRun = def.Batch.MaxBatchesPerRun
	}
	if p.Batch.MaxEventsPerRun == 0 {
		p.Batch.MaxEventsPerRun = def.Batch.MaxEventsPerRun
	}
	if p.Nightly == nil {
		p.Nightly = def.Nightly
	}
	if p.RefUpdated == nil {
		p.RefUpdated = def.RefUpdated
	}
	return p
}

func boolOr(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
