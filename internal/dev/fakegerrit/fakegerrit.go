// Package fakegerrit is a fake Gerrit for tests, since a real one cannot run on the
// local stack: an httptest server that implements the review endpoint of the REST
// API (POST /a/changes/{change}/revisions/{revision}/review) with basic auth and
// the XSSI guard, and records the reviews it is given. A change made known with
// AddChange is checked as Gerrit checks it: a review of a revision that is not
// one of its patchsets is answered 404. CommentAdded is the comment-added event
// Gerrit emits for a review; Deliver plays the webhooks plugin's part: it POSTs
// an event the way the plugin does.
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
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
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
	// Patchset is the revision's patchset number, when the change is known
	// (AddChange); 0 otherwise.
	Patchset int
	// TraceParent is the request's W3C traceparent header, "" without one
	// (Gerrit ignores it; conveyor's traced clients send it).
	TraceParent string
}

// Change is a change the fake knows (AddChange).
type Change struct {
	Project string
	Branch  string
	// ID is the Change-Id, I and 40 hex digits.
	ID     string
	Number int
	// Revisions are the commits of its patchsets, patchset 1 first.
	Revisions []string
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
	changes []Change
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

// AddChange makes c known: reviews of it must then name one of its patchsets,
// by commit or number, as Gerrit requires.
func (s *Server) AddChange(c Change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.changes = append(s.changes, c)
}

// lookup finds the known change that id names in any of the REST API's forms
// (project~number, number, project~branch~Change-Id, Change-Id) and the
// patchset that revision names (a commit, a number or "current"): ps is 0 when
// the change is known and the revision is not one of its patchsets. ok is false
// for a change the fake does not know.
func (s *Server) lookup(id, revision string) (c Change, ps int, ok bool) {
	for _, c := range s.changes {
		num := strconv.Itoa(c.Number)
		if id != num && id != c.ID && id != c.Project+"~"+num && id != c.Project+"~"+c.Branch+"~"+c.ID {
			continue
		}
		for i, rev := range c.Revisions {
			if strings.EqualFold(rev, revision) || revision == strconv.Itoa(i+1) || (revision == "current" && i == len(c.Revisions)-1) {
				return c, i + 1, true
			}
		}
		return c, 0, true
	}
	return Change{}, 0, false
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
	_, ps, known := s.lookup(r.PathValue("change"), r.PathValue("revision"))
	if known && ps == 0 {
		s.mu.Unlock()
		http.Error(w, "Not found: "+r.PathValue("revision"), http.StatusNotFound)
		return
	}
	s.reviews = append(s.reviews, Review{
		Change: r.PathValue("change"), Revision: r.PathValue("revision"),
		Message: in.Message, Labels: in.Labels, Tag: in.Tag, At: time.Now(), Patchset: ps,
		TraceParent: r.Header.Get("traceparent"),
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

// CommentAdded is the comment-added event Gerrit emits for review r, one of this
// fake's reviews of a known change, as stream-events prints it and the webhooks
// plugin posts it: the author is the fake's account, the comment is Gerrit's
// "Patch Set N: Verified-1" header, a blank line and the review's message, the
// approvals carry values as strings. Like the events of Gerrit's documentation,
// it carries no tag.
func (s *Server) CommentAdded(r Review) ([]byte, error) {
	s.mu.Lock()
	c, ps, known := s.lookup(r.Change, r.Revision)
	s.mu.Unlock()
	if !known || ps == 0 {
		return nil, fmt.Errorf("fakegerrit: the review of %s at %s is not of a patchset made known with AddChange", r.Change, r.Revision)
	}
	header := fmt.Sprintf("Patch Set %d:", ps)
	var approvals []map[string]string
	for _, label := range slices.Sorted(maps.Keys(r.Labels)) {
		v := r.Labels[label]
		header += fmt.Sprintf(" %s%+d", label, v)
		approvals = append(approvals, map[string]string{"type": label, "description": label, "value": strconv.Itoa(v), "oldValue": "0"})
	}
	author := map[string]string{"name": s.Username, "username": s.Username}
	return json.Marshal(map[string]any{
		"author":    author,
		"approvals": approvals,
		"comment":   header + "\n\n" + r.Message,
		"patchSet": map[string]any{"number": ps, "revision": c.Revisions[ps-1],
			"ref": fmt.Sprintf("refs/changes/%02d/%d/%d", c.Number%100, c.Number, ps), "uploader": author},
		"change":         map[string]any{"project": c.Project, "branch": c.Branch, "id": c.ID, "number": c.Number, "status": "NEW"},
		"project":        map[string]string{"name": c.Project},
		"refName":        "refs/heads/" + c.Branch,
		"changeKey":      map[string]string{"key": c.ID},
		"type":           "comment-added",
		"eventCreatedOn": r.At.Unix(),
	})
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
