package triggers

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadTheExampleFile(t *testing.T) {
	t.Setenv("CONVEYOR_WEBHOOK_SECRET", "")
	c, err := Parse(mustRead(t, "testdata/triggers.yaml"), "https://ignored.example.org")
	if err != nil {
		t.Fatal(err)
	}
	if c.GerritURL != "https://gerrit.example.org/r" || c.Webhook.Auth != AuthPath || c.Webhook.MaxBodyBytes != 65536 ||
		c.NightlyCron != "0 4 * * *" || c.BaseImagesEvery != 2*time.Hour || c.Stream.MinBackoff != 2*time.Second || len(c.Stream.Command) != 14 {
		t.Errorf("config %+v", c)
	}
	hello, ok := c.Project("mediawiki/services/hello")
	if !ok {
		t.Fatal("hello is not enabled")
	}
	if hello.Repo != "https://gerrit.example.org/r/mediawiki/services/hello" || !hello.Verify || !hello.Report || !hello.PublishOnMerge ||
		!slices.Equal(hello.Branches, []string{"main", "master"}) || hello.Batch.QuietPeriod != 10*time.Minute || hello.Batch.MaxWait != time.Hour ||
		!slices.Equal(hello.RebuildBranches(), []string{"main"}) {
		t.Errorf("hello %+v", hello)
	}
	if a, ok := hello.RefAction("refs/tags/v1.4.0"); !ok || a != RefPublish {
		t.Errorf("refs/tags/v1.4.0: %q %v", a, ok)
	}
	if _, ok := hello.RefAction("refs/heads/main"); ok {
		t.Error("refs/heads/main has a rule")
	}
	base, _ := c.Project("operations/docker-images/base")
	if base.Repo != "https://gitlab.example.org/base.git" || base.PublishOnMerge || base.BaseImages || base.RebuildBranches() != nil ||
		base.Batch.QuietPeriod != 2*time.Minute || base.Batch.MaxWait != time.Hour || !base.BranchEnabled("production") || base.BranchEnabled("main") {
		t.Errorf("base %+v", base)
	}
	v, _ := c.Project("labs/tools/verify-only")
	if v.Report || !v.Verify || v.PublishOnMerge {
		t.Errorf("verify-only %+v", v)
	}
	if _, ok := c.Project("not/enabled"); ok {
		t.Error("an unlisted project is enabled")
	}

	full, err := LoadFile(filepath.Join("testdata", "triggers.yaml"), "")
	if err != nil || full.Webhook.Secret != "0123456789abcdef0123" {
		t.Errorf("secret %q from the file next to the triggers file, %v", full.Webhook.Secret, err)
	}
	if got := full.ProjectSecrets(); len(got) != 1 || got["mediawiki/services/hello"] != "hello-only-0123456789abcdef" {
		t.Errorf("project secrets %v, want hello's from the file next to the triggers file", got)
	}
}

func TestSecretFromFileAndEnvironment(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	writeFile(t, secret, "from-the-file-0123456789\n")
	f := filepath.Join(dir, "triggers.yaml")
	writeFile(t, f, "webhook:\n  secretFile: "+secret+"\nprojects: [{name: p, repo: /srv/p}]\n")
	t.Setenv("CONVEYOR_WEBHOOK_SECRET", "")
	c, err := LoadFile(f, "")
	if err != nil || c.Webhook.Secret != "from-the-file-0123456789" {
		t.Errorf("secret %q, %v", c.Webhook.Secret, err)
	}
	t.Setenv("CONVEYOR_WEBHOOK_SECRET", "from-the-environment-0123")
	c, _ = LoadFile(f, "")
	if c.Webhook.Secret != "from-the-environment-0123" {
		t.Errorf("secret %q, want the environment's", c.Webhook.Secret)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"projects: [{name: p}]", "projects[0] (p).repo: no repository: set repo, or gerrit.url"},
		{"webhook: {auth: token}", `webhook.auth: want path or basic, got "token"`},
		{"projects: [{name: p, repo: r, refUpdated: [{ref: 'refs/tags/v*', action: pubish}]}]", `projects[0] (p).refUpdated[0].action: want publish, verify or batch, got "pubish"`},
		{"projects: [{name: p, repo: r, refUpdated: [{ref: 'v*', action: publish}]}]", "is not a pattern of full refs"},
		{"projects: [{name: p, repo: r, refUpdated: [{ref: 'refs/tags/*', action: batch}]}]", "action batch needs branches"},
		{"projects: [{name: p, repo: r, batch: {quietPeriod: 2h, maxWait: 1h}}]", "maxWait (1h0m0s) is shorter than quietPeriod (2h0m0s)"},
		{"projects: [{name: p, repo: r}, {name: p, repo: r}]", "projects[1] (p): the project is listed twice"},
		{"projects: [{name: ''}]", "projects[0].name: empty"},
		{"nightly: {cron: 'at four'}", `nightly.cron: "at four" is not a cron expression`},
		{"projects: [{name: p, repo: r, branches: [refs/tags/x]}]", `branches[0]: "refs/tags/x" is not a branch`},
		{"projects: [{name: p, repo: r, verfy: false}]", "field verfy not found"},
		{"baseImages: {every: 5s}", "baseImages.every: want at least 1m"},
	} {
		_, err := Parse([]byte(tc.yaml), "")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.yaml, err, tc.want)
		}
	}
	_, err := Parse([]byte("projects: [{name: p}, {name: q, repo: r, refUpdated: [{ref: x, action: y}]}]"), "")
	if err == nil || strings.Count(err.Error(), "\n") < 2 {
		t.Errorf("error %v, want every problem, one a line", err)
	}
}
