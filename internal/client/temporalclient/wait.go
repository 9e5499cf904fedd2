package temporalclient

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"google.golang.org/grpc/codes"

	"github.com/wikimedia/conveyor/internal/lib/config"
)

// How Wait spaces its attempts: the first retry after waitMinBackoff, doubling up
// to waitMaxBackoff, the SDK's own ceiling for reconnecting a lost connection.
// Each attempt gets waitAttemptTimeout.
const (
	waitMinBackoff     = 500 * time.Millisecond
	waitMaxBackoff     = 10 * time.Second
	waitAttemptTimeout = 5 * time.Second
)

// NewLazy returns a client for cfg that connects on its first call, for a service
// that must come up while Temporal may still be down (a worker or the receiver
// started before Temporal): only a configuration it cannot use, such as a TLS or
// API key file that cannot be read, is an error. Wait then waits for Temporal and
// checks the namespace. The client reconnects by itself after an outage.
func NewLazy(cfg config.Temporal, logger *slog.Logger, opts ...Option) (client.Client, error) {
	o, err := clientOptions(cfg, logger, opts)
	if err != nil {
		return nil, err
	}
	return client.NewLazyClient(o)
}

// Wait returns once Temporal at cfg.Address answers through c and cfg.Namespace
// exists on it. While Temporal is unreachable it tries again, 500ms after the
// first failure and doubling up to 10s, logging each failure to logger
// (slog.Default() if nil). It returns at once the mistakes that no wait can fix
// (a namespace that does not exist, refused credentials), and ctx's error when
// ctx ends first.
func Wait(ctx context.Context, c client.Client, cfg config.Temporal, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.Default()
	}
	start, backoff := time.Now(), waitMinBackoff
	for attempt := 1; ; attempt++ {
		err := reach(ctx, c, cfg)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var down *unreachableError
		if !errors.As(err, &down) {
			if err == nil && attempt > 1 {
				logger.Info("Temporal answers", "address", cfg.Address, "namespace", cfg.Namespace,
					"attempts", attempt, "waited", time.Since(start).Round(time.Millisecond).String())
			}
			return err
		}
		logger.Warn("Temporal is unreachable: trying again", "address", cfg.Address, "attempt", attempt,
			"retryIn", backoff.String(), "error", down.err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, waitMaxBackoff)
	}
}

// reach makes one attempt: Temporal's health check, then the namespace check.
func reach(ctx context.Context, c client.Client, cfg config.Temporal) error {
	ctx, cancel := context.WithTimeout(ctx, waitAttemptTimeout)
	defer cancel()
	if _, err := c.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		if serviceerror.ToStatus(err).Code() == codes.Unauthenticated {
			return refused(cfg, err)
		}
		return unreachable(cfg, err)
	}
	return checkNamespace(ctx, c, cfg)
}
