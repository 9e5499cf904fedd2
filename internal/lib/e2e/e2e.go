// Package e2e runs a repository's smoke checks: plain HTTP requests against a base URL,
// each answer compared with the status and body text the check expects. It knows
// nothing of Kubernetes or Temporal; activities/helm runs it against a release's
// Service from the worker host.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/internal/lib/tracing"
)

// maxBody bounds how much of an answer is read: enough for any smoke check.
const maxBody = 1 << 20

// Runner runs checks. Its zero value is not usable: build it with New.
type Runner struct {
	client  *http.Client
	window  time.Duration
	pause   time.Duration
	timeout time.Duration
}

// Option configures a Runner.
type Option func(*Runner) error

// WithRetryWindow sets how long a failing check is retried before it counts as
// failed; the default is 10s. Each check is tried at least once. A Service can refuse
// connections for a moment right after its pods became ready.
func WithRetryWindow(d time.Duration) Option {
	return func(r *Runner) error {
		if d < 0 {
			return fmt.Errorf("retry window %s is negative", d)
		}
		r.window = d
		return nil
	}
}

// WithRetryPause sets the pause between two attempts of a check; the default is 1s.
func WithRetryPause(d time.Duration) Option {
	return func(r *Runner) error {
		if d <= 0 {
			return fmt.Errorf("retry pause %s is not positive", d)
		}
		r.pause = d
		return nil
	}
}

// WithRequestTimeout bounds each request, answer included; the default is 5s.
func WithRequestTimeout(d time.Duration) Option {
	return func(r *Runner) error {
		if d <= 0 {
			return fmt.Errorf("request timeout %s is not positive", d)
		}
		r.timeout = d
		return nil
	}
}

// New returns a Runner. Its HTTP client opens a fresh connection for every attempt:
// a kept-alive connection could outlive the pod or Service it reached.
func New(opts ...Option) (*Runner, error) {
	r := &Runner{
		client: &http.Client{
			// No proxy: ClusterIPs are reached directly, whatever HTTP_PROXY says.
			// Each attempt is a span of the pipeline's trace.
			Transport: tracing.Transport("e2e", &http.Transport{DisableKeepAlives: true}),
			// A smoke check judges the answer it gets, not where a redirect leads.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		window:  10 * time.Second,
		pause:   time.Second,
		timeout: 5 * time.Second,
	}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Run runs every check against baseURL in order and reports each one; it stops early
// only when ctx is done. progress, if not nil, is called after each check.
func (r *Runner) Run(ctx context.Context, baseURL string, checks []contract.Check, progress func(done int, last contract.CheckResult)) ([]contract.CheckResult, error) {
	base, err := url.Parse(baseURL)
	if err != nil || base.Scheme == "" || base.Host == "" {
		return nil, fmt.Errorf("base URL %q is not an absolute http URL", baseURL)
	}
	results := make([]contract.CheckResult, 0, len(checks))
	for i, c := range checks {
		res := r.runCheck(ctx, base, i, c)
		if err := ctx.Err(); err != nil {
			return results, err
		}
		results = append(results, res)
		if progress != nil {
			progress(i+1, res)
		}
	}
	return results, nil
}

// Failed returns the results that did not pass.
func Failed(results []contract.CheckResult) []contract.CheckResult {
	var out []contract.CheckResult
	for _, r := range results {
		if !r.OK {
			out = append(out, r)
		}
	}
	return out
}

// Summary is one line per failed check, "name: detail", for error messages.
func Summary(failed []contract.CheckResult) string {
	lines := make([]string, len(failed))
	for i, f := range failed {
		lines[i] = f.Name + ": " + f.Detail
	}
	return strings.Join(lines, "\n")
}

// runCheck tries c until it passes or the retry window is over, and reports the last
// attempt.
func (r *Runner) runCheck(ctx context.Context, base *url.URL, i int, c contract.Check) contract.CheckResult {
	name := c.Name
	if name == "" {
		name = fmt.Sprintf("e2e[%d]", i)
	}
	method := strings.ToUpper(c.Method)
	if method == "" {
		method = http.MethodGet
	}
	want := c.ExpectStatus
	if want == 0 {
		want = http.StatusOK
	}
	target, err := resolve(base, c.Path)
	if err != nil {
		return contract.CheckResult{Name: name, Detail: fmt.Sprintf("path %q: %v", c.Path, err)}
	}
	what := method + " " + target
	deadline := time.Now().Add(r.window)
	for attempt := 1; ; attempt++ {
		detail, ok := r.attempt(ctx, method, target, want, c.ExpectBodyContains)
		if ok || ctx.Err() != nil || time.Now().Add(r.pause).After(deadline) {
			if attempt > 1 {
				detail += fmt.Sprintf(" (attempt %d)", attempt)
			}
			return contract.CheckResult{Name: name, OK: ok, Detail: what + ": " + detail}
		}
		t := time.NewTimer(r.pause)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// attempt sends one request and says how its answer compares with the expectations.
func (r *Runner) attempt(ctx context.Context, method, target string, wantStatus int, wantBody string) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return err.Error(), false
	}
	resp, err := r.client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Sprintf("want status %d, got no answer: %v", wantStatus, err), false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Sprintf("reading the answer (status %d): %v", resp.StatusCode, err), false
	}
	if resp.StatusCode != wantStatus {
		return fmt.Sprintf("want status %d, got %d; body: %s", wantStatus, resp.StatusCode, excerpt(body)), false
	}
	if wantBody != "" && !strings.Contains(string(body), wantBody) {
		return fmt.Sprintf("want a body containing %q, got %s", wantBody, excerpt(body)), false
	}
	return fmt.Sprintf("status %d", resp.StatusCode), true
}

// resolve joins a check's path (with its query) to the base URL.
func resolve(base *url.URL, path string) (string, error) {
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") {
		return "", errors.New("must start with /")
	}
	ref, err := url.Parse(path)
	if err != nil {
		return "", err
	}
	u := *base
	u.Path = strings.TrimSuffix(base.Path, "/") + ref.Path
	u.RawPath = ""
	if ref.RawPath != "" {
		u.RawPath = strings.TrimSuffix(base.EscapedPath(), "/") + ref.RawPath
	}
	u.RawQuery = ref.RawQuery
	return u.String(), nil
}

// excerpt quotes the start of a body for a message.
func excerpt(b []byte) string {
	const n = 200
	if len(b) > n {
		return fmt.Sprintf("%q… (%d bytes)", b[:n], len(b))
	}
	return fmt.Sprintf("%q", b)
}
