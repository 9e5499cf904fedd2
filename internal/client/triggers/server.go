package triggers

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/wikimedia/conveyor/internal/client/health"
	"github.com/wikimedia/conveyor/internal/client/telemetry"
	"github.com/wikimedia/conveyor/internal/lib/gerrit"
	"github.com/wikimedia/conveyor/internal/lib/tracing"
)

// EventsPath is where the webhooks plugin POSTs: EventsPath/<secret> in the path
// mode, EventsPath with basic auth in the basic mode.
const EventsPath = "/gerrit/events"

// Server is the HTTP endpoint of Gerrit's webhooks plugin. The plugin signs
// nothing, so the endpoint authenticates with a shared secret (in the path or as
// the basic auth password): the global one, good for every project, or a
// project's own (WithProjectSecrets), good for that project's events only,
// since it sits in that project's webhooks.config where the project's owners
// can read it. It answers:
//
//   - 401 for a missing or wrong secret, before reading the body;
//   - 403 for an event of another project than the secret's;
//   - 413 for a body over the limit, 400 for one that is not a JSON object;
//   - 200 for an event it does not act on;
//   - 202 for an event it acted on, the same for every delivery of the event;
//   - 503 when the workflow could not be started, or the process is not yet
//     connected to Temporal (WithAcceptWhen): the plugin retries.
type Server struct {
	h        EventHandler
	auth     string
	secret   []byte
	projects []projectSecret
	username string
	maxBody  int64
	timeout  time.Duration
	logger   *slog.Logger
	probe    *health.Probe
	accept   func() error
	metrics  *telemetry.Metrics
	answered *prometheus.CounterVec
}

// projectSecret is one project's webhook secret, kept as its hash.
type projectSecret struct {
	project string
	sum     [sha256.Size]byte
}

// ServerOption configures a Server.
type ServerOption func(*Server) error

// WithBasicAuth authenticates with basic auth (user name username, password the
// secret) instead of the secret in the path. Default: the secret in the path.
func WithBasicAuth(username string) ServerOption {
	return func(s *Server) error {
		if username == "" {
			return errors.New("triggers.WithBasicAuth: empty user name")
		}
		s.auth, s.username = AuthBasic, username
		return nil
	}
}

// WithProjectSecrets accepts, besides the global secret, each project's own
// secret (project name → secret, at least MinSecretLength characters each, no two
// alike) for the events of that project only. With them the global secret may be
// "". Default: only the global secret.
func WithProjectSecrets(secrets map[string]string) ServerOption {
	return func(s *Server) error {
		seen := map[[sha256.Size]byte]string{}
		for _, project := range slices.Sorted(maps.Keys(secrets)) {
			secret := secrets[project]
			if len(secret) < MinSecretLength {
				return fmt.Errorf("the webhook secret of project %s has %d characters, want at least %d: write one into its projects[].webhookSecretFile (e.g. openssl rand -hex 24)", project, len(secret), MinSecretLength)
			}
			sum := sha256.Sum256([]byte(secret))
			if other, dup := seen[sum]; dup {
				return fmt.Errorf("projects %s and %s have the same webhook secret: give each project its own (projects[].webhookSecretFile), or either could send the other's events", other, project)
			}
			seen[sum] = project
			s.projects = append(s.projects, projectSecret{project: project, sum: sum})
		}
		return nil
	}
}

// WithMaxBodyBytes refuses bodies over n bytes with 413. Default:
// DefaultMaxBodyBytes (1 MiB).
func WithMaxBodyBytes(n int64) ServerOption {
	return func(s *Server) error {
		if n <= 0 {
			return fmt.Errorf("triggers.WithMaxBodyBytes: want a positive size, got %d", n)
		}
		s.maxBody = n
		return nil
	}
}

// WithHandleTimeout bounds how long an event may take to start its workflow.
// Default: 4s, under the plugin's default socket timeout of 5s.
func WithHandleTimeout(d time.Duration) ServerOption {
	return func(s *Server) error {
		if d <= 0 {
			return fmt.Errorf("triggers.WithHandleTimeout: want a positive duration, got %s", d)
		}
		s.timeout = d
		return nil
	}
}

// WithServerLogger logs each request to l. Default: slog.Default().
func WithServerLogger(l *slog.Logger) ServerOption {
	return func(s *Server) error {
		if l == nil {
			return errors.New("triggers.WithServerLogger: nil logger")
		}
		s.logger = l
		return nil
	}
}

// WithProbe serves p's health.LivePath and health.ReadyPath beside the events, so
// that the receiver's readiness follows its Temporal connection and its drain.
// Default: GET /healthz answers ok while the process runs, and there is no /readyz.
func WithProbe(p *health.Probe) ServerOption {
	return func(s *Server) error {
		if p == nil {
			return errors.New("triggers.WithProbe: nil probe")
		}
		s.probe = p
		return nil
	}
}

// WithAcceptWhen acts on events only while ready returns nil; until then each
// authenticated, well-formed event is answered 503 with ready's error and
// Retry-After, before the handler sees it, so that the plugin delivers it again.
// A receiver started before Temporal uses it to refuse events until it has
// reached Temporal. Default: events are always handed to the handler.
func WithAcceptWhen(ready func() error) ServerOption {
	return func(s *Server) error {
		if ready == nil {
			return errors.New("triggers.WithAcceptWhen: nil function")
		}
		s.accept = ready
		return nil
	}
}

// WithMetrics serves GET /metrics from m and counts the events answered there:
// conveyor_webhook_events_total by HTTP status code and event type.
func WithMetrics(m *telemetry.Metrics) ServerOption {
	return func(s *Server) error {
		if m == nil {
			return errors.New("triggers.WithMetrics: nil metrics")
		}
		s.metrics = m
		s.answered = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conveyor_webhook_events_total",
			Help: "Gerrit events answered by the webhook endpoint, by HTTP status code (202 acted on, 200 ignored, 4xx refused, 503 to be delivered again) and event type.",
		}, []string{"code", "type"})
		return m.Registry.Register(s.answered)
	}
}

// NewServer returns the endpoint for h, accepting requests that carry secret
// (at least MinSecretLength characters) and the project secrets of
// WithProjectSecrets. secret may be "" when there are
// project secrets: then only those are accepted.
func NewServer(h EventHandler, secret string, opts ...ServerOption) (*Server, error) {
	s := &Server{h: h, auth: AuthPath, maxBody: DefaultMaxBodyBytes, timeout: 4 * time.Second, logger: slog.Default()}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	switch {
	case secret == "" && len(s.projects) > 0:
	case len(secret) < MinSecretLength:
		return nil, fmt.Errorf("the webhook secret has %d characters, want at least %d: set webhook.secretFile in the triggers file or CONVEYOR_WEBHOOK_SECRET, or give the projects their own (projects[].webhookSecretFile) (e.g. openssl rand -hex 24)", len(secret), MinSecretLength)
	default:
		sum := sha256.Sum256([]byte(secret))
		for _, p := range s.projects {
			if p.sum == sum {
				return nil, fmt.Errorf("project %s's webhook secret is the global one (webhook.secretFile): give the project a secret of its own", p.project)
			}
		}
		s.secret = []byte(secret)
	}
	return s, nil
}

// Handler returns the HTTP handler: POST EventsPath[/<secret>], and GET /healthz
// and (WithProbe) GET /readyz.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	// Each event is a span, continuing the trace of a traceparent header; the
	// workflow it starts continues the same trace (internal/client/telemetry).
	events := tracing.Handler(http.HandlerFunc(s.events), "gerrit event")
	mux.Handle("POST "+EventsPath, events)
	mux.Handle("POST "+EventsPath+"/{secret}", events)
	if s.metrics != nil {
		s.metrics.Register(mux)
	}
	if s.probe != nil {
		s.probe.Register(mux)
		return mux
	}
	mux.HandleFunc("GET "+health.LivePath, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux
}

// authorized says whether the request carries a secret and whose: project is
// the project whose own secret it is, "" for the global secret. It compares in
// constant time (over hashes, so lengths do not leak), with every secret.
func (s *Server) authorized(r *http.Request) (project string, ok bool) {
	var got string
	switch s.auth {
	case AuthBasic:
		user, pass, hasAuth := r.BasicAuth()
		if !hasAuth || subtle.ConstantTimeCompare([]byte(user), []byte(s.username)) != 1 {
			return "", false
		}
		got = pass
	default:
		got = r.PathValue("secret")
	}
	if got == "" {
		return "", false
	}
	sum := sha256.Sum256([]byte(got))
	if s.secret != nil {
		global := sha256.Sum256(s.secret)
		ok = subtle.ConstantTimeCompare(sum[:], global[:]) == 1
	}
	for _, p := range s.projects {
		if subtle.ConstantTimeCompare(sum[:], p.sum[:]) == 1 {
			project, ok = p.project, true
		}
	}
	return project, ok
}

func (s *Server) events(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w := &statusWriter{ResponseWriter: rw}
	var evType string
	if s.answered != nil {
		defer func() { s.answered.WithLabelValues(strconv.Itoa(w.status), evType).Inc() }()
	}
	log := s.logger.With("remote", r.RemoteAddr, "origin", r.Header.Get("X-Origin-Url"))
	scope, ok := s.authorized(r)
	if !ok {
		if s.auth == AuthBasic {
			w.Header().Set("WWW-Authenticate", `Basic realm="conveyor"`)
		}
		log.Warn("Refused an event: wrong or missing secret")
		writeAnswer(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
		return
	}
	if r.ContentLength > s.maxBody {
		writeAnswer(w, http.StatusRequestEntityTooLarge, map[string]string{"error": fmt.Sprintf("the body is over %d bytes", s.maxBody)})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeAnswer(w, http.StatusRequestEntityTooLarge, map[string]string{"error": fmt.Sprintf("the body is over %d bytes", s.maxBody)})
			return
		}
		writeAnswer(w, http.StatusBadRequest, map[string]string{"error": "reading the body: " + err.Error()})
		return
	}
	ev, err := gerrit.ParseEvent(body)
	if err != nil {
		log.Warn("Refused a malformed event", "error", err)
		writeAnswer(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	evType = ev.Type
	log = log.With("type", ev.Type, "project", ev.ProjectName(), "key", ev.Key())
	span := trace.SpanFromContext(r.Context())
	span.SetAttributes(attribute.String("gerrit.event", ev.Type), attribute.String("gerrit.project", ev.ProjectName()), attribute.String("gerrit.key", ev.Key()))
	if scope != "" && ev.ProjectName() != scope {
		log.Warn("Refused an event: the secret is another project's", "secretOf", scope)
		writeAnswer(w, http.StatusForbidden, map[string]string{"error": fmt.Sprintf(
			"the secret is not one for events of project %q: use the global secret or that project's own (projects[].webhookSecretFile)", ev.ProjectName())})
		return
	}
	if s.accept != nil {
		if err := s.accept(); err != nil {
			log.Warn("Refused an event for now: Gerrit will deliver it again", "error", err)
			retryLater(w, err)
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
	defer cancel()
	res, err := s.h.Handle(ctx, ev)
	log = log.With("ms", time.Since(start).Milliseconds())
	if err != nil {
		log.Error("Could not act on an event: Gerrit will deliver it again", "error", err)
		retryLater(w, err)
		return
	}
	if res.Action == ActionIgnore {
		log.Debug("Ignored an event", "reason", res.Reason)
		writeAnswer(w, http.StatusOK, res)
		return
	}
	span.SetAttributes(attribute.String("conveyor.action", string(res.Action)), attribute.String("conveyor.workflow", res.WorkflowID))
	log.Info("Acted on an event", "action", res.Action, "workflow", res.WorkflowID, "duplicate", res.Duplicate)
	writeAnswer(w, http.StatusAccepted, res)
}

// retryLater answers 503 with err: the plugin delivers the event again.
func retryLater(w http.ResponseWriter, err error) {
	w.Header().Set("Retry-After", "1")
	writeAnswer(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
}

func writeAnswer(w http.ResponseWriter, code int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// statusWriter remembers the status code written (writeAnswer writes every
// answer's).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}
