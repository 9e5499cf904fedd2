package triggers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"go.temporal.io/api/serviceerror"

	"github.com/wikimedia/conveyor/internal/dev/fakegerrit"
)

const testSecret = "s3cret-0123456789abcdef"

func newTestServer(t *testing.T, s Starter, opts ...ServerOption) *httptest.Server {
	t.Helper()
	srv, err := NewServer(newTestHandler(t, s), testSecret, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts
}

// post delivers body to url as the webhooks plugin does and returns the status
// and the answer.
func post(t *testing.T, url string, body []byte, setup ...func(*http.Request)) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("X-Origin-Url", "https://gerrit.example.org/r/")
	for _, s := range setup {
		s(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func webhookSample(t *testing.T, name string) []byte {
	return mustRead(t, gerritTestdata("webhook", name))
}

func TestWebhookAnswers(t *testing.T) {
	s := newFakeStarter()
	ts := newTestServer(t, s, WithMaxBodyBytes(8<<10))
	events := ts.URL + EventsPath + "/" + testSecret
	for _, tc := range []struct {
		name string
		url  string
		body []byte
		code int
		want string
	}{
		{"patchset-created", events, webhookSample(t, "patchset-created.json"), http.StatusAccepted, `"workflowId":"verify/mediawiki/services/hello/1234/2"`},
		{"recheck", events, webhookSample(t, "comment-added-recheck.json"), http.StatusAccepted, `"action":"recheck"`},
		{"change-merged", events, webhookSample(t, "change-merged.json"), http.StatusAccepted, `"workflowId":"batch/mediawiki/services/hello/main"`},
		{"ref-updated", events, webhookSample(t, "ref-updated.json"), http.StatusAccepted, `"action":"publish"`},
		{"unknown type", events, webhookSample(t, "reviewer-added.json"), http.StatusOK, `"action":"ignore"`},
		{"bad secret", ts.URL + EventsPath + "/wrong-secret-0123456789", webhookSample(t, "patchset-created.json"), http.StatusUnauthorized, "unauthorized"},
		{"no secret", ts.URL + EventsPath, webhookSample(t, "patchset-created.json"), http.StatusUnauthorized, "unauthorized"},
		{"oversized", events, []byte(`{"type":"patchset-created","comment":"` + strings.Repeat("x", 9<<10) + `"}`), http.StatusRequestEntityTooLarge, "over 8192 bytes"},
		{"malformed", events, []byte(`{"type":"patchset-created",`), http.StatusBadRequest, "reading the event"},
		{"not an object", events, []byte(`["patchset-created"]`), http.StatusBadRequest, "want a JSON object"},
		{"empty", events, nil, http.StatusBadRequest, "reading the event"},
	} {
		code, body := post(t, tc.url, tc.body)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want %d with %q", tc.name, code, body, tc.code, tc.want)
		}
	}
	if len(s.starts) != 3 || len(s.signals) != 1 {
		t.Errorf("%d starts, %d signals; want 3 and 1", len(s.starts), len(s.signals))
	}
	// Without a Content-Length the limit still holds.
	req, _ := http.NewRequest(http.MethodPost, events, io.MultiReader(strings.NewReader(`{"comment":"`), strings.NewReader(strings.Repeat("y", 9<<10))))
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked oversized body: %d, want 413", resp.StatusCode)
	}
	resp, err = http.Get(events)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", resp.StatusCode)
	}
}

func TestWebhookRepeatsGetTheSameAnswer(t *testing.T) {
	s := newFakeStarter()
	ts := newTestServer(t, s)
	url := ts.URL + EventsPath + "/" + testSecret
	body := webhookSample(t, "patchset-created.json")
	code, first := post(t, url, body)
	for i := range 4 {
		if i == 2 {
			s.finish()
		}
		c, again := post(t, url, body)
		if c != code || again != first {
			t.Errorf("delivery %d: %d %s, the first got %d %s", i+2, c, again, code, first)
		}
	}
	if len(s.starts) != 1 {
		t.Errorf("5 deliveries started %d workflows", len(s.starts))
	}
}

func TestWebhookBasicAuth(t *testing.T) {
	s := newFakeStarter()
	ts := newTestServer(t, s, WithBasicAuth("gerrit"))
	url := ts.URL + EventsPath
	body := webhookSample(t, "patchset-created.json")
	if code, _ := post(t, url, body, func(r *http.Request) { r.SetBasicAuth("gerrit", testSecret) }); code != http.StatusAccepted {
		t.Errorf("right credentials: %d", code)
	}
	for _, auth := range [][2]string{{"gerrit", "wrong"}, {"other", testSecret}, {"", ""}} {
		code, _ := post(t, url, body, func(r *http.Request) {
			if auth[0] != "" {
				r.SetBasicAuth(auth[0], auth[1])
			}
		})
		if code != http.StatusUnauthorized {
			t.Errorf("credentials %q: %d, want 401", auth, code)
		}
	}
	// The secret in the path is not accepted in the basic mode.
	if code, _ := post(t, url+"/"+testSecret, body); code != http.StatusUnauthorized {
		t.Errorf("path secret in basic mode: %d, want 401", code)
	}
}

func TestWebhookAsksForARetryWhenTemporalIsDown(t *testing.T) {
	s := newFakeStarter()
	s.err = serviceerror.NewUnavailable("connection refused")
	ts := newTestServer(t, s)
	status, err := fakegerrit.Deliver(context.Background(), http.DefaultClient, ts.URL+EventsPath+"/"+testSecret,
		"https://gerrit.example.org/r/", webhookSample(t, "patchset-created.json"))
	if err != nil || status != http.StatusServiceUnavailable {
		t.Errorf("status %d, %v; want 503 so the plugin retries", status, err)
	}
}

func TestWebhookRefusesEventsUntilAccepting(t *testing.T) {
	s := newFakeStarter()
	var notYet atomic.Pointer[error]
	waiting := errors.New("waiting for Temporal at 127.0.0.1:7233")
	notYet.Store(&waiting)
	ts := newTestServer(t, s, WithAcceptWhen(func() error {
		if p := notYet.Load(); p != nil {
			return *p
		}
		return nil
	}))
	url := ts.URL + EventsPath + "/" + testSecret
	body := webhookSample(t, "patchset-created.json")
	if code, answer := post(t, url, body); code != http.StatusServiceUnavailable || !strings.Contains(answer, "waiting for Temporal at 127.0.0.1:7233") {
		t.Errorf("before accepting: %d %s, want 503 with the reason", code, answer)
	}
	if code, _ := post(t, ts.URL+EventsPath+"/wrong-secret-0123456789", body); code != http.StatusUnauthorized {
		t.Errorf("a wrong secret before accepting: %d, want 401", code)
	}
	if len(s.starts) != 0 {
		t.Errorf("%d workflows started before accepting, want none", len(s.starts))
	}
	notYet.Store(nil)
	if code, answer := post(t, url, body); code != http.StatusAccepted || !strings.Contains(answer, `"workflowId":"verify/mediawiki/services/hello/1234/2"`) {
		t.Errorf("once accepting: %d %s, want 202 verify", code, answer)
	}
	if _, err := NewServer(newTestHandler(t, s), testSecret, WithAcceptWhen(nil)); err == nil {
		t.Error("WithAcceptWhen(nil) accepted")
	}
}

func TestServerRefusesAShortSecret(t *testing.T) {
	if _, err := NewServer(newTestHandler(t, newFakeStarter()), "short"); err == nil || !strings.Contains(err.Error(), "want at least 16") {
		t.Errorf("error %v", err)
	}
}

// twoProjects enables hello and another project, each with its own webhook
// secret file, beside the global one.
const twoProjects = `
webhook:
  secretFile: global-secret
projects:
  - name: mediawiki/services/hello
    repo: /srv/hello
    webhookSecretFile: hello-secret
  - name: mediawiki/services/other
    repo: /srv/other
    webhookSecretFile: /ABS/other-secret
`

const (
	helloSecret = "hello-0123456789abcdef"
	otherSecret = "other-0123456789abcdef"
)

// loadTwoProjects writes twoProjects and its secret files into a directory and
// loads it as `gerrit serve` does.
func loadTwoProjects(t *testing.T) *Config {
	t.Helper()
	t.Setenv("CONVEYOR_WEBHOOK_SECRET", "")
	dir := t.TempDir()
	writeFile(t, dir+"/triggers.yaml", strings.ReplaceAll(twoProjects, "/ABS", dir))
	writeFile(t, dir+"/global-secret", testSecret+"\n")
	writeFile(t, dir+"/hello-secret", helloSecret+"\n")
	writeFile(t, dir+"/other-secret", otherSecret+"\n")
	cfg, err := LoadFile(dir+"/triggers.yaml", "")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestWebhookProjectSecrets: a project's own secret is good for that project's
// events only; the global secret, while configured, for every project's.
func TestWebhookProjectSecrets(t *testing.T) {
	cfg := loadTwoProjects(t)
	if got := cfg.ProjectSecrets(); len(got) != 2 || got["mediawiki/services/hello"] != helloSecret || got["mediawiki/services/other"] != otherSecret {
		t.Fatalf("project secrets %v", got)
	}
	s := newFakeStarter()
	h, err := NewHandler(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(h, cfg.Webhook.Secret, WithProjectSecrets(cfg.ProjectSecrets()))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	hello := webhookSample(t, "patchset-created.json")
	other := bytes.ReplaceAll(hello, []byte("mediawiki/services/hello"), []byte("mediawiki/services/other"))
	for _, tc := range []struct {
		name, secret string
		body         []byte
		code         int
	}{
		{"hello with hello's secret", helloSecret, hello, http.StatusAccepted},
		{"other with other's secret", otherSecret, other, http.StatusAccepted},
		{"hello with other's secret", otherSecret, hello, http.StatusForbidden},
		{"other with hello's secret", helloSecret, other, http.StatusForbidden},
		{"hello with the global secret", testSecret, hello, http.StatusAccepted},
		{"other with the global secret", testSecret, other, http.StatusAccepted},
		{"a wrong secret", "wrong-0123456789abcdef", hello, http.StatusUnauthorized},
	} {
		if code, answer := post(t, ts.URL+EventsPath+"/"+tc.secret, tc.body); code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, code, answer, tc.code)
		}
	}
	if len(s.starts) != 2 {
		t.Errorf("%d verifications started, want 2 (one per project)", len(s.starts))
	}

	// Without the global secret only the projects' own are accepted.
	srv, err = NewServer(h, "", WithProjectSecrets(cfg.ProjectSecrets()))
	if err != nil {
		t.Fatal(err)
	}
	ts2 := httptest.NewServer(srv.Handler())
	t.Cleanup(ts2.Close)
	if code, _ := post(t, ts2.URL+EventsPath+"/"+testSecret, hello); code != http.StatusUnauthorized {
		t.Errorf("the global secret once it is gone: %d, want 401", code)
	}
	if code, _ := post(t, ts2.URL+EventsPath+"/"+helloSecret, hello); code != http.StatusOK && code != http.StatusAccepted {
		t.Errorf("hello's own secret without a global one: %d", code)
	}
}

func TestWebhookProjectSecretsAreChecked(t *testing.T) {
	h := newTestHandler(t, newFakeStarter())
	for name, tc := range map[string]struct {
		global  string
		secrets map[string]string
		want    string
	}{
		"short":          {testSecret, map[string]string{"a": "short"}, "secret of project a has 5 characters"},
		"shared":         {testSecret, map[string]string{"a": helloSecret, "b": helloSecret}, "projects a and b have the same webhook secret"},
		"the global one": {testSecret, map[string]string{"a": testSecret}, "project a's webhook secret is the global one"},
		"none at all":    {"", nil, "want at least 16"},
	} {
		if _, err := NewServer(h, tc.global, WithProjectSecrets(tc.secrets)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
	dir := t.TempDir()
	writeFile(t, dir+"/triggers.yaml", "projects:\n  - name: p\n    repo: /srv/p\n    webhookSecretFile: missing\n")
	if _, err := LoadFile(dir+"/triggers.yaml", ""); err == nil || !strings.Contains(err.Error(), "projects[0] (p).webhookSecretFile") {
		t.Errorf("a missing secret file: %v, want the field named", err)
	}
}
