// Package gerrit holds the activity that reports a pipeline's result on a Gerrit
// patchset through the REST API: POST /a/changes/{change}/revisions/{revision}/review
// with a Verified vote and a message, authenticated with the configured account's
// HTTP password (basic auth). Nothing it needs to authenticate comes from the
// workflow's input.
package gerrit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/internal/lib/config"
	libgerrit "github.com/wikimedia/conveyor/internal/lib/gerrit"
	"github.com/wikimedia/conveyor/internal/lib/tracing"
)

// XSSIGuard prefixes every JSON answer of Gerrit's REST API.
const XSSIGuard = ")]}'"

// Tag marks conveyor's review messages so that Gerrit's UI can hide bot
// comments, and so that the triggers ignore them (gerrit.Event.IsOwnComment).
const Tag = libgerrit.Tag

// Activities posts reviews to the configured Gerrit. The worker builds one with New
// and registers it as a pointer; workflows call PostReview by name
// (contract.PostReview.Name).
type Activities struct {
	base     string
	username string
	password string
	temporal config.Temporal
	client   *http.Client
	// err is why the configuration cannot post reviews; New does not fail on it,
	// so a worker without Gerrit still serves its other activities.
	err error
}

// Option configures Activities.
type Option func(*Activities) error

// WithHTTPClient sends the requests through c. Default: a client with a 30s
// timeout.
func WithHTTPClient(c *http.Client) Option {
	return func(a *Activities) error {
		if c == nil {
			return errors.New("gerrit.WithHTTPClient: the client is nil")
		}
		a.client = c
		return nil
	}
}

// New returns the activities for cfg.Gerrit, linking to workflows in the Web UI of
// cfg.Temporal. An incomplete Gerrit section is not an error here: PostReview then
// fails, non-retryably, saying which setting is missing. A gerrit.passwordFile
// that cannot be read is: the worker refuses to start.
func New(cfg config.Config, opts ...Option) (*Activities, error) {
	a := &Activities{
		base:     strings.TrimRight(cfg.Gerrit.URL, "/"),
		username: cfg.Gerrit.Username,
		temporal: cfg.Temporal,
		client:   &http.Client{Timeout: 30 * time.Second, Transport: tracing.Transport("gerrit", nil)},
	}
	for _, o := range opts {
		if err := o(a); err != nil {
			return nil, err
		}
	}
	var err error
	if a.password, err = cfg.Gerrit.HTTPPassword(); err != nil {
		return nil, err
	}
	switch {
	case a.base == "":
		a.err = errors.New("gerrit.url is not configured (or CONVEYOR_GERRIT_URL): the worker cannot report to Gerrit")
	case a.username == "" || a.password == "":
		a.err = errors.New("gerrit.username and gerrit.password or gerrit.passwordFile are not configured (or CONVEYOR_GERRIT_USERNAME, CONVEYOR_GERRIT_PASSWORD): Gerrit's REST API needs an account's HTTP password")
	default:
		if u, err := url.Parse(a.base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			a.err = fmt.Errorf("gerrit.url %q is not an http(s) URL such as https://gerrit.example.org/r", cfg.Gerrit.URL)
		}
	}
	return a, nil
}

// reviewInput is Gerrit's ReviewInput, the part conveyor sends.
type reviewInput struct {
	Message string         `json:"message"`
	Labels  map[string]int `json:"labels,omitempty"`
	Tag     string         `json:"tag,omitempty"`
}

// reviewResult is Gerrit's ReviewResult, the part conveyor reads.
type reviewResult struct {
	Labels map[string]int `json:"labels"`
}

// PostReview posts in's result on its patchset: Verified in.Verified (no vote when
// 0) and a message naming the outcome, the failed step with its output tail, and
// the workflow's page in the Temporal Web UI.
//
// The review is posted at in.BuiltCommit, the commit the pipeline built; when
// in.Revision (the event's) names another commit nothing is posted and
// PostReview fails with the non-retryable contract.ErrRevisionNotBuilt. Without
// a BuiltCommit nothing was built: the message is posted at in.Revision (or
// in.Patchset) without a vote.
//
// Posting the same review twice is harmless: the vote is the same, and Gerrit
// shows the message twice. Gerrit's refusals (4xx but 408 and 429: no such change,
// no permission, bad credentials) fail with the non-retryable
// contract.ErrGerritRejected; server errors and network failures are retried by
// the activity's policy.
func (a *Activities) PostReview(ctx context.Context, in contract.ReviewInput) (_ contract.ReviewOutput, err error) {
	ctx, span := tracing.Span(ctx, "gerrit review",
		attribute.String("gerrit.project", in.Project), attribute.Int("gerrit.change", in.Change), attribute.Int("gerrit.patchset", in.Patchset))
	defer func() {
		span.SetAttributes(attribute.Int("gerrit.verified", in.Verified))
		tracing.End(span, err)
	}()
	if a.err != nil {
		return contract.ReviewOutput{}, temporal.NewNonRetryableApplicationError(a.err.Error(), contract.ErrInvalidConfig, nil)
	}
	if err := checkBuilt(in); err != nil {
		return contract.ReviewOutput{}, temporal.NewNonRetryableApplicationError(err.Error(), contract.ErrRevisionNotBuilt, nil)
	}
	if in.BuiltCommit != "" {
		in.Revision = in.BuiltCommit
	} else {
		in.Verified = 0
	}
	endpoint, err := a.reviewURL(in)
	if err != nil {
		return contract.ReviewOutput{}, temporal.NewNonRetryableApplicationError(err.Error(), contract.ErrGerritRejected, nil)
	}
	body := reviewInput{Message: Message(in, a.temporal.WorkflowURL(in.WorkflowID, in.RunID)), Tag: Tag}
	if in.Verified != 0 {
		body.Labels = map[string]int{"Verified": in.Verified}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return contract.ReviewOutput{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(b))
	if err != nil {
		return contract.ReviewOutput{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("building the review request for %s: %v", endpoint, err), contract.ErrGerritRejected, nil)
	}
	req.Header.Set("Content-Type", "application/json; charset=UTF-8")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(a.username, a.password)
	resp, err := a.client.Do(req)
	if err != nil {
		return contract.ReviewOutput{}, fmt.Errorf("posting the review to %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return contract.ReviewOutput{}, fmt.Errorf("reading Gerrit's answer from %s: %w", endpoint, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := fmt.Sprintf("posting the review to %s: Gerrit answered %s: %s", endpoint, resp.Status, firstLine(string(answer)))
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
			if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
				msg += " (check gerrit.username and the HTTP password, and that the account may vote Verified on " + in.Project + ")"
			}
			return contract.ReviewOutput{}, temporal.NewNonRetryableApplicationError(msg, contract.ErrGerritRejected, nil)
		}
		return contract.ReviewOutput{}, errors.New(msg)
	}
	var res reviewResult
	if err := decodeGerritJSON(answer, &res); err != nil {
		return contract.ReviewOutput{}, fmt.Errorf("reading Gerrit's answer from %s: %w", endpoint, err)
	}
	activity.GetLogger(ctx).Info("Posted review", "url", endpoint, "verified", in.Verified, "labels", res.Labels)
	return contract.ReviewOutput{Labels: res.Labels, URL: endpoint}, nil
}

// checkBuilt refuses a review whose revision (the event's) is not the commit
// the pipeline built: a vote there would vouch for code nobody tested.
func checkBuilt(in contract.ReviewInput) error {
	if in.BuiltCommit == "" || in.Revision == "" || strings.EqualFold(in.BuiltCommit, in.Revision) {
		return nil
	}
	return fmt.Errorf("refusing to review change %d of %s: the pipeline %s built commit %s, but the event names revision %s (patchset %d); "+
		"conveyor votes only on the commit it built, so nothing was posted: check what the pipeline's ref (the patchset's refs/changes/… ref) "+
		"points at, and comment \"recheck\" on the patchset to verify it again",
		in.Change, in.Project, in.WorkflowID, in.BuiltCommit, in.Revision, in.Patchset)
}

// reviewURL is the review endpoint of in's patchset.
func (a *Activities) reviewURL(in contract.ReviewInput) (string, error) {
	var change string
	switch {
	case in.Change > 0 && in.Project != "":
		change = url.PathEscape(in.Project) + "~" + strconv.Itoa(in.Change)
	case in.Change > 0:
		change = strconv.Itoa(in.Change)
	case in.ChangeID != "" && in.Project != "" && in.Branch != "":
		change = url.PathEscape(in.Project) + "~" + url.PathEscape(in.Branch) + "~" + url.PathEscape(in.ChangeID)
	case in.ChangeID != "":
		change = url.PathEscape(in.ChangeID)
	default:
		return "", fmt.Errorf("the review names no change (project %q): give a change number or a Change-Id", in.Project)
	}
	revision := in.Revision
	if revision == "" && in.Patchset > 0 {
		revision = strconv.Itoa(in.Patchset)
	}
	if revision == "" {
		return "", fmt.Errorf("the review of change %s names no revision: give the patchset's commit or number", change)
	}
	return a.base + "/a/changes/" + change + "/revisions/" + url.PathEscape(revision) + "/review", nil
}

// decodeGerritJSON strips the XSSI guard Gerrit puts before every JSON answer and
// decodes the rest.
func decodeGerritJSON(b []byte, v any) error {
	b = bytes.TrimPrefix(bytes.TrimLeft(b, " \r\n\t"), []byte(XSSIGuard))
	return json.Unmarshal(b, v)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
