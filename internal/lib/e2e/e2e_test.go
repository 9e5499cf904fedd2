package e2e_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/internal/lib/e2e"
)

// hello is the service under test: the hello example's answers, served locally.
func hello() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") })
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		if strings.ContainsAny(name, " /") {
			http.Error(w, `{"error":"bad name"}`, http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, `{"greeting":"hello, %s"}`, name)
	})
	mux.HandleFunc("/items", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "post only", http.StatusMethodNotAllowed)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/healthz", http.StatusFound)
	})
	return mux
}

func newRunner(t *testing.T, opts ...e2e.Option) *e2e.Runner {
	t.Helper()
	r, err := e2e.New(append([]e2e.Option{e2e.WithRetryWindow(0)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRunReportsEveryCheck(t *testing.T) {
	srv := httptest.NewServer(hello())
	defer srv.Close()
	checks := []contract.Check{
		{Name: "health", Path: "/healthz"},
		{Name: "hello", Path: "/hello?name=e2e", ExpectStatus: 200, ExpectBodyContains: `"greeting":"hello, e2e"`},
		{Name: "bad name is refused", Path: "/hello?name=a%20b", ExpectStatus: 400},
		{Name: "post", Method: "post", Path: "/items", ExpectStatus: 201},
		{Name: "redirect is judged as is", Path: "/moved", ExpectStatus: 302},
		{Name: "wrong status", Path: "/missing"},
		{Name: "wrong body", Path: "/hello?name=x", ExpectBodyContains: "goodbye"},
		{Name: "", Path: "relative"},
	}
	var seen int
	results, err := newRunner(t).Run(context.Background(), srv.URL, checks, func(done int, _ contract.CheckResult) { seen = done })
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(checks) || seen != len(checks) {
		t.Fatalf("got %d results and %d progress calls for %d checks: %+v", len(results), seen, len(checks), results)
	}
	for i, wantOK := range []bool{true, true, true, true, true, false, false, false} {
		if results[i].OK != wantOK {
			t.Errorf("check %q: OK = %v, want %v (%s)", checks[i].Name, results[i].OK, wantOK, results[i].Detail)
		}
	}
	for i, want := range map[int]string{
		5: "want status 200, got 404",
		6: `want a body containing "goodbye", got "{\"greeting\":\"hello, x\"}"`,
		7: `path "relative": must start with /`,
	} {
		if !strings.Contains(results[i].Detail, want) {
			t.Errorf("check %d detail = %q, want it to contain %q", i, results[i].Detail, want)
		}
	}
	if results[7].Name != "e2e[7]" {
		t.Errorf("an unnamed check is reported as %q, want e2e[7]", results[7].Name)
	}
	failed := e2e.Failed(results)
	if len(failed) != 3 || !strings.HasPrefix(e2e.Summary(failed), "wrong status: GET "+srv.URL+"/missing: want status 200") {
		t.Errorf("summary of failures:\n%s", e2e.Summary(failed))
	}
}

func TestRunRetriesUntilTheServiceAnswers(t *testing.T) {
	// The listener exists from the start but refuses to answer the first attempts, as a
	// Service does for a moment after its pods became ready.
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) < 3 {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ready")
	}))
	defer srv.Close()
	r := newRunner(t, e2e.WithRetryWindow(10*time.Second), e2e.WithRetryPause(10*time.Millisecond))
	results, err := r.Run(context.Background(), srv.URL, []contract.Check{{Name: "ready", Path: "/", ExpectBodyContains: "ready"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !results[0].OK || !strings.Contains(results[0].Detail, "(attempt 3)") {
		t.Errorf("result %+v, want OK on attempt 3", results[0])
	}
}

func TestRunReportsRefusedConnections(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r := newRunner(t, e2e.WithRetryWindow(50*time.Millisecond), e2e.WithRetryPause(10*time.Millisecond))
	results, err := r.Run(context.Background(), "http://"+addr, []contract.Check{{Name: "health", Path: "/healthz"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if results[0].OK || !strings.Contains(results[0].Detail, "got no answer") || !strings.Contains(results[0].Detail, "refused") {
		t.Errorf("result %+v, want a refused connection reported", results[0])
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	r := newRunner(t, e2e.WithRetryWindow(time.Hour), e2e.WithRetryPause(10*time.Millisecond))
	done := make(chan error, 1)
	go func() {
		_, err := r.Run(ctx, srv.URL, []contract.Check{{Path: "/"}}, nil)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run returned no error after cancellation")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}
}

func TestRunRejectsARelativeBaseURL(t *testing.T) {
	if _, err := newRunner(t).Run(context.Background(), "10.0.0.1:80", nil, nil); err == nil {
		t.Fatal("want an error for a base URL without scheme")
	}
}

func TestOptionsValidate(t *testing.T) {
	for name, o := range map[string]e2e.Option{
		"window":  e2e.WithRetryWindow(-time.Second),
		"pause":   e2e.WithRetryPause(0),
		"timeout": e2e.WithRequestTimeout(0),
	} {
		if _, err := e2e.New(o); err == nil {
			t.Errorf("%s: want an error for an invalid value", name)
		}
	}
}

func TestBaseURLPathIsKept(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.URL.RequestURI() }))
	defer srv.Close()
	if _, err := newRunner(t).Run(context.Background(), srv.URL+"/api/", []contract.Check{{Path: "/v1/x?q=a%20b"}}, nil); err != nil {
		t.Fatal(err)
	}
	if got != "/api/v1/x?q=a%20b" {
		t.Errorf("request URI %q, want /api/v1/x?q=a%%20b", got)
	}
}
