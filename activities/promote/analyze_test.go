package promote

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/activities/contract"
)

func TestLoadCountsErrorsAndSpreadsOverPods(t *testing.T) {
	var ok, bad atomic.Int32
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ok.Add(1) }))
	defer good.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bad.Add(1)
		http.Error(w, "broken", http.StatusInternalServerError)
	}))
	defer failing.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	a := &Activities{http: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	s := a.load(context.Background(), []string{good.URL + "/x", failing.URL + "/x", closedURL + "/x"}, 30)
	if s.requests != 30 || ok.Load() != 10 || bad.Load() != 10 {
		t.Fatalf("requests %d, good pod %d, failing pod %d: want 30 spread evenly", s.requests, ok.Load(), bad.Load())
	}
	if s.errors != 20 {
		t.Errorf("errors %d, want 20 (10 answers 500, 10 refused connections)", s.errors)
	}
	if len(s.latencies) != 30 || s.p95() <= 0 {
		t.Errorf("latencies %d, p95 %s", len(s.latencies), s.p95())
	}
}

func TestP95IsNearestRank(t *testing.T) {
	var s sample
	for i := 1; i <= 100; i++ {
		s.latencies = append(s.latencies, time.Duration(101-i)*time.Millisecond)
	}
	if got := s.p95(); got != 95*time.Millisecond {
		t.Errorf("p95 of 1..100ms = %s, want 95ms", got)
	}
	if (sample{}).p95() != 0 {
		t.Error("p95 of nothing is not 0")
	}
}

func TestVerdictNamesTheThreshold(t *testing.T) {
	plan := contract.AnalysisPlan{Requests: 20, MaxErrorRatio: 0.05, MaxLatencyP95: 100 * time.Millisecond}
	fast := func(n, errs int, d time.Duration) sample {
		s := sample{requests: n, errors: errs, firstError: "GET http://10.0.0.1:8080/: 500 broken"}
		for range n {
			s.latencies = append(s.latencies, d)
		}
		return s
	}
	pass := verdict(plan, "/", 1, fast(20, 1, time.Millisecond), fast(20, 0, time.Millisecond))
	if !pass.Passed || pass.ErrorRatio != 0.05 || !strings.HasPrefix(pass.Reason, "canary passed") {
		t.Errorf("1 error in 20 with maxErrorRatio 0.05: %+v", pass)
	}
	failed := verdict(plan, "/", 1, fast(20, 20, time.Millisecond), fast(20, 0, time.Millisecond))
	if failed.Passed || !strings.Contains(failed.Reason, "error ratio 1.000 is above maxErrorRatio 0.05") || !strings.Contains(failed.Reason, "500 broken") {
		t.Errorf("all failed: %+v", failed)
	}
	slow := verdict(plan, "/", 1, fast(20, 0, time.Second), fast(20, 0, time.Millisecond))
	if slow.Passed || !strings.Contains(slow.Reason, "p95 latency 1s is above maxLatencyP95 100ms") {
		t.Errorf("slow: %+v", slow)
	}
	short := verdict(plan, "/", 1, fast(5, 0, time.Millisecond), fast(5, 0, time.Millisecond))
	if short.Passed || !strings.Contains(short.Reason, "only 5 of 20 requests") {
		t.Errorf("cancelled half-way: %+v", short)
	}
}
