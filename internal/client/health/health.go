// Package health makes conveyor's long-running processes (conveyor-worker and
// `conveyor gerrit serve`) services that Kubernetes and docker-compose can run:
// GET /healthz says the process is alive, GET /readyz that it is connected to
// Temporal (a recent successful CheckHealth) and that its own parts (a worker's
// pools) are ready. On SIGTERM the process calls Drain: both answer 503 from then
// on, so that no new traffic is routed to it while it finishes what it is doing.
package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
)

// The endpoints a Probe serves.
const (
	// LivePath answers 200 while the process runs and is not shutting down.
	LivePath = "/healthz"
	// ReadyPath answers 200 while the process is connected to Temporal and every
	// check passes, 503 with what is not ready otherwise.
	ReadyPath = "/readyz"
)

// Pinger is the part of a Temporal client a Probe uses.
type Pinger interface {
	CheckHealth(ctx context.Context, req *client.CheckHealthRequest) (*client.CheckHealthResponse, error)
}

var _ Pinger = client.Client(nil)

// A Check returns why a part of the process is not ready, or nil when it is.
type Check func(ctx context.Context) error

type namedCheck struct {
	name  string
	check Check
}

// Probe answers /healthz and /readyz from the outcome of its last round of checks:
// Temporal's CheckHealth, then each Check, every interval (Run).
type Probe struct {
	temporal Pinger
	address  string
	checks   []namedCheck
	interval time.Duration
	timeout  time.Duration

	mu       sync.Mutex
	draining bool
	checked  time.Time // when the last round that found everything ready ended
	problems []string  // what the last round found not ready; nil before the first
}

// Option configures a Probe.
type Option func(*Probe) error

// WithInterval runs a round of checks every d. Default: 3s.
func WithInterval(d time.Duration) Option {
	return func(p *Probe) error {
		if d <= 0 {
			return fmt.Errorf("health.WithInterval: want a positive duration, got %s", d)
		}
		p.interval = d
		return nil
	}
}

// WithTimeout bounds a round of checks. Default: 2s.
func WithTimeout(d time.Duration) Option {
	return func(p *Probe) error {
		if d <= 0 {
			return fmt.Errorf("health.WithTimeout: want a positive duration, got %s", d)
		}
		p.timeout = d
		return nil
	}
}

// WithTemporalAddress names Temporal's address in what /readyz says while
// Temporal is unreachable ("temporal: unreachable at ADDRESS: …"). Default: the
// address is not named.
func WithTemporalAddress(address string) Option {
	return func(p *Probe) error {
		if address == "" {
			return errors.New("health.WithTemporalAddress: empty address")
		}
		p.address = address
		return nil
	}
}

// WithCheck adds check, reported under name, to what readiness needs; checks run
// in the order added, after Temporal's CheckHealth has succeeded. Default: none.
func WithCheck(name string, check Check) Option {
	return func(p *Probe) error {
		if name == "" || check == nil {
			return errors.New("health.WithCheck: want a name and a check")
		}
		p.checks = append(p.checks, namedCheck{name, check})
		return nil
	}
}

// New returns a probe of the Temporal connection temporal and the checks of opts.
// It reports not ready until Run has completed a round.
func New(temporal Pinger, opts ...Option) (*Probe, error) {
	if temporal == nil {
		return nil, errors.New("health.New: nil Temporal client")
	}
	p := &Probe{temporal: temporal, interval: 3 * time.Second, timeout: 2 * time.Second}
	for _, o := range opts {
		if err := o(p); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Run checks at once, then every interval, until ctx is done.
func (p *Probe) Run(ctx context.Context) {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		p.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// round runs every check once and records what is not ready.
func (p *Probe) round(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	problems := []string{}
	if _, err := p.temporal.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		at := ""
		if p.address != "" {
			at = " at " + p.address
		}
		problems = append(problems, "temporal: unreachable"+at+": "+oneLine(err))
	} else {
		for _, c := range p.checks {
			if err := c.check(ctx); err != nil {
				problems = append(problems, c.name+": "+oneLine(err))
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.problems = problems
	if len(problems) == 0 {
		p.checked = time.Now()
	}
}

// Drain marks the process as shutting down: /healthz and /readyz answer 503 from
// now on.
func (p *Probe) Drain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.draining = true
}

// Ready returns nil when the process is ready, else what is not, one item a line.
func (p *Probe) Ready() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.draining:
		return errors.New("shutting down")
	case p.problems == nil:
		return errors.New("temporal: not checked yet")
	case len(p.problems) > 0:
		return errors.New(strings.Join(p.problems, "\n"))
	}
	// A round that hangs past its timeout (or a Run that stopped) must not leave
	// the last good answer standing.
	if age := time.Since(p.checked); age > 2*p.interval+p.timeout {
		return fmt.Errorf("temporal: last checked %s ago", age.Round(time.Second))
	}
	return nil
}

// Register serves GET LivePath and GET ReadyPath on mux.
func (p *Probe) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+LivePath, p.live)
	mux.HandleFunc("GET "+ReadyPath, p.ready)
}

// Handler returns a handler serving only the probe's endpoints.
func (p *Probe) Handler() http.Handler {
	mux := http.NewServeMux()
	p.Register(mux)
	return mux
}

func (p *Probe) live(w http.ResponseWriter, _ *http.Request) {
	p.mu.Lock()
	draining := p.draining
	p.mu.Unlock()
	if draining {
		answer(w, http.StatusServiceUnavailable, "shutting down")
		return
	}
	answer(w, http.StatusOK, "ok")
}

func (p *Probe) ready(w http.ResponseWriter, _ *http.Request) {
	if err := p.Ready(); err != nil {
		answer(w, http.StatusServiceUnavailable, "not ready:\n"+err.Error())
		return
	}
	answer(w, http.StatusOK, "ready")
}

func answer(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body+"\n")
}

// oneLine keeps an error on the line of its check.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
