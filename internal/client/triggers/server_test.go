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
