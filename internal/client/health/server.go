package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server is an HTTP server listening in the background: a process's health
// endpoints, or the webhook receiver with its health endpoints on the same mux.
type Server struct {
	hs   *http.Server
	ln   net.Listener
	done chan error
}

// Listen listens on addr (host:port; port 0 picks a free one) and serves h in the
// background, logging the server's own errors to logger (slog.Default() if nil).
func Listen(addr string, h http.Handler, logger *slog.Logger) (*Server, error) {
	return ListenTLS(addr, h, logger, TLSFiles{})
}

// ListenTLS is Listen serving HTTPS with the certificate and key of files (TLS
// 1.2 or later), reloaded when either file changes; with no files it is Listen.
func ListenTLS(addr string, h http.Handler, logger *slog.Logger, files TLSFiles) (*Server, error) {
	if logger == nil {
		logger = slog.Default()
	}
	var tlsConfig *tls.Config
	if files != (TLSFiles{}) {
		r, err := newCertReloader(files)
		if err != nil {
			return nil, err
		}
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.get}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	s := &Server{
		hs: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)},
		ln:   ln,
		done: make(chan error, 1),
	}
	go func() {
		err := s.hs.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Done delivers the error the server stopped with on its own (nil after Shutdown).
func (s *Server) Done() <-chan error { return s.done }

// Shutdown stops accepting connections and waits, up to timeout, for the requests
// in flight to finish.
func (s *Server) Shutdown(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.hs.Shutdown(ctx); err != nil {
		return fmt.Errorf("shutting down the HTTP server on %s: %w", s.Addr(), err)
	}
	return nil
}
