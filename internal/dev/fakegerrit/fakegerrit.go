// Package fakegerrit is a fake Gerrit for tests, since a real one cannot run on the
// local stack: an httptest server that implements the review endpoint of the REST
// API (POST /a/changes/{change}/revisions/{revision}/review) with basic auth and
// the XSSI guard, and records the reviews it is given. Deliver plays the webhooks
// plugin's part: it POSTs an event the way the plugin does.
//
// It is for tests only: a test in this package fails if any non-test package
// imports it.
package fakegerrit

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// XSSIGuard prefixes Gerrit's JSON answers.
const XSSIGuard = ")]}'"

// Review is one review the fake was given.
type Review struct {
	// Change and Revision are the path's identifiers, unescaped
	// ("mediawiki/services/hello~1234", "3f1c2a…").
	Change   string
	Revision string
	Message  string
	Labels   map[string]int
	Tag      string
	At       time.Time
}

// Server is a running fake Gerrit.
type Server struct {
	// URL is the base address, e.g. http://127.0.0.1:41234.
	URL string
	// Username and Password are the HTTP credentials it accepts.
	Username, Password string

	srv     *httptest.Server
	mu      sync.Mutex
	reviews []Review
	fail    []int
	changed chan struct{}
	held    *hold
}

// hold is a review request made to wait (Hold).
type hold struct {
	arrived, release chan struct{}
}

// New starts a fake Gerrit that accepts username and password, stopped when the
// test ends.
func New(tb testing.TB, username, password string) *Server {
	tb.Helper()
	s := &Server{Username: username, Password: password, changed: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /a/changes/{change}/revisions/{revision}/review", s.review)
	mux.HandleFunc("GET /config/server/version", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, "3.11.0-fake")
	})
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	tb.Cleanup(s.srv.Close)
	return s
}

// FailNext makes the next len(codes) review requests answer with these status
// codes, in order, before the fake records anything again.
func (s *Server) FailNext(codes ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = append(s.fail, codes...)
}

// Hold makes the next review request wait, once it has arrived (arrived is then
// closed), until release is called: a review in flight, for tests of a worker's
// drain.
func (s *Server) Hold() (arrived <-chan struct{}, release func()) {
	h := &hold{arrived: make(chan struct{}), release: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = h
	var once sync.Once
	return h.arrived, func() { once.Do(func() { close(h.release) }) }
}

// Reviews returns the reviews recorded so far, oldest first.
func (s *Server) Reviews() []Review {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reviews)
}

// WaitForReview waits until a recorded review satisfies match, or ctx ends.
func (s *Server) WaitForReview(ctx context.Context, match func(Review) bool) (Review, error) {
	for {
		s.mu.Lock()
		for _, r := range s.reviews {
			if match(r) {
				s.mu.Unlock()
				return r, nil
			}
		}
		changed := s.changed
		n := len(s.reviews)
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return Review{}, fmt.Errorf("waiting for a review (%d recorded, none matching): %w", n, ctx.Err())
		}
	}
}

func (s *Server) review(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(s.Username)) != 1 ||
		subtle.ConstantTimeCompare([]byte(pass), []byte(s.Password)) != 1 {
		w.Header().Set("WWW-Authenticate", `Basic realm="Gerrit Code Review"`)
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	s.mu.Lock()
	if len(s.fail) > 0 {
		code := s.fail[0]
		s.fail = s.fail[1:]
		s.mu.Unlock()
		http.Error(w, "fake failure", code)
		return
	}
	h := s.held
	s.held = nil
	s.mu.Unlock()
	if h != nil {
		close(h.arrived)
		select {
		case <-h.release:
		case <-r.Context().Done():
			return
		}
	}

	var in struct {
		Message string         `json:"message"`
		Labels  map[string]int `json:"labels"`
		Tag     string         `json:"tag"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	if err := dec.Decode(&in); err != nil {
		http.Error(w, "Bad Request: "+err.Error(), http.StatusBadRequest)
		return
	}
	for label, v := range in.Labels {
		if label != "Verified" && label != "Code-Review" {
			http.Error(w, fmt.Sprintf("label %q is not a label of this project", label), http.StatusBadRequest)
			return
		}
		if v < -2 || v > 2 || (label == "Verified" && (v < -1 || v > 1)) {
			http.Error(w, fmt.Sprintf("label %s: value %d is out of range", label, v), http.StatusBadRequest)
			return
		}
	}
	s.mu.Lock()
	s.reviews = append(s.reviews, Review{
		Change: r.PathValue("change"), Revision: r.PathValue("revision"),
		Message: in.Message, Labels: in.Labels, Tag: in.Tag, At: time.Now(),
	})
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	labels := in.Labels
	if labels == nil {
		labels = map[string]int{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"labels": labels})
}

// writeJSON answers as Gerrit does: the XSSI guard, a newline, then the JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(append([]byte(XSSIGuard+"\n"), b...))
}

// Deliver POSTs an event the way the webhooks plugin does (Content-Type
// application/json; charset=utf-8 and X-Origin-Url) and returns the status code.
// Like one attempt of the plugin, it does not retry.
func Deliver(ctx context.Context, c *http.Client, endpoint, originURL string, event []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(event))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("X-Origin-Url", originURL)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
