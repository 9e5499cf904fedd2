package payloadcrypt

import (
	"crypto/subtle"
	"net/http"
	"slices"
	"strings"

	"go.temporal.io/sdk/converter"
)

// MaxRequestBytes bounds a codec server request: a batch of payloads of
// Temporal's default 2 MiB blob limit each.
const MaxRequestBytes = 32 << 20

// ServerOption configures Handler.
type ServerOption func(*server)

type server struct {
	origins []string
	token   string
}

// WithAllowedOrigins lets browser pages from origins (scheme://host[:port], the
// Temporal Web UI's address) call the codec server: CORS. Default: none, for
// the temporal CLI's --codec-endpoint and other clients that are not browsers.
func WithAllowedOrigins(origins ...string) ServerOption {
	return func(s *server) {
		for _, o := range origins {
			if o = strings.TrimRight(strings.TrimSpace(o), "/"); o != "" {
				s.origins = append(s.origins, o)
			}
		}
	}
}

// WithAuthToken makes every /encode and /decode request carry the header
// `Authorization: Bearer TOKEN` (the temporal CLI's `--codec-auth "Bearer
// TOKEN"`); others get 401. Default: no check, for a server that only the
// operators' network reaches.
func WithAuthToken(token string) ServerOption {
	return func(s *server) { s.token = token }
}

// Handler serves Temporal's codec server protocol with c: POST /encode and
// POST /decode take and return {"payloads": [...]} (the SDK's
// converter.NewPayloadCodecHTTPHandler does the protocol), with CORS for the
// allowed origins and the optional token check.
func Handler(c *Codec, opts ...ServerOption) http.Handler {
	s := &server{}
	for _, o := range opts {
		o(s)
	}
	codec := converter.NewPayloadCodecHTTPHandler(c)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin != "" {
			if !slices.Contains(s.origins, origin) {
				http.Error(w, "origin "+origin+" is not allowed: add it to the codec server's --allow-origin", http.StatusForbidden)
				return
			}
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Content-Type, X-Namespace, Authorization")
			h.Add("Vary", "Origin")
		}
		// A browser's preflight carries no credentials.
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if s.token != "" {
			got := r.Header.Get("Authorization")
			if subtle.ConstantTimeCompare([]byte(got), []byte("Bearer "+s.token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="conveyor codec server"`)
				http.Error(w, "missing or wrong Authorization: Bearer token", http.StatusUnauthorized)
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
		codec.ServeHTTP(w, r)
	})
}
