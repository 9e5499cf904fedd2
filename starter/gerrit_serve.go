package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/internal/client/health"
	"github.com/wikimedia/conveyor/internal/client/telemetry"
	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/internal/client/triggers"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

func gerritServeCommand() *cli.Command {
	return &cli.Command{
		Name:      "serve",
		Usage:     "serve the endpoint of Gerrit's webhooks plugin",
		UsageText: "conveyor gerrit serve --triggers FILE [--listen ADDR] [--listen-tls-cert FILE --listen-tls-key FILE] [--no-sync] [--shutdown-timeout DURATION]",
		Description: "Listens for the webhooks plugin's POSTs on /gerrit/events/<secret> (or, with\n" +
			"webhook.auth: basic, /gerrit/events with basic auth), the secret coming from\n" +
			"webhook.secretFile or CONVEYOR_WEBHOOK_SECRET. At start it syncs the nightly\n" +
			"schedules and the base image check with the triggers file (like `conveyor\n" +
			"trigger sync`) once Temporal answers.\n\n" +
			"The same address serves GET /healthz (200 while the process runs and is not\n" +
			"shutting down) and GET /readyz (200 while Temporal answers, re-checked every 3s;\n" +
			"503 with the reason otherwise). Started before Temporal, it listens at once,\n" +
			"answers /readyz and every event 503 (the plugin retries) and tries to reach\n" +
			"Temporal again with a backoff up to 10s; a namespace that does not exist stops\n" +
			"it. On SIGINT or SIGTERM /readyz answers 503, the listener closes and the\n" +
			"requests in flight get --shutdown-timeout to finish.\n\n" +
			"With --listen-tls-cert and --listen-tls-key it serves HTTPS itself (TLS 1.2 or later), and reads\n" +
			"the files again when they change (a renewed certificate needs no restart); without\n" +
			"them it serves plain HTTP, for a TLS-terminating proxy in front (docs/triggers.md).\n\n" +
			"Example:\n\n" +
			"   CONVEYOR_WEBHOOK_SECRET=$(cat /etc/conveyor/webhook-secret) \\\n" +
			"     conveyor gerrit serve --triggers /etc/conveyor/triggers.yaml --listen :8080\n" +
			"   curl -i http://127.0.0.1:8080/readyz\n\n" +
			"and in the project's webhooks.config on refs/meta/config:\n\n" +
			"   [remote \"conveyor\"]\n" +
			"     url = https://conveyor.example.org/gerrit/events/<secret>\n" +
			"     event = patchset-created\n     event = change-merged\n     event = comment-added\n     event = ref-updated",
		Flags: append([]cli.Flag{
			triggersFlag(),
			&cli.StringFlag{Name: "listen", Value: ":8080", Usage: "`ADDR`ess to listen on, host:port"},
			&cli.StringFlag{Name: "listen-tls-cert", Usage: "serve HTTPS with this PEM certificate `FILE` (its chain after it); needs --listen-tls-key"},
			&cli.StringFlag{Name: "listen-tls-key", Usage: "the PEM private key `FILE` of --listen-tls-cert"},
			&cli.BoolFlag{Name: "no-sync", Usage: "do not sync the schedules and the base image check at start"},
			&cli.DurationFlag{Name: "shutdown-timeout", Value: 10 * time.Second,
				Usage: "on SIGINT/SIGTERM, how long (`DURATION`) the requests in flight get to finish"},
		}, temporalclient.Flags()...),
		Action: serveGerrit,
	}
}

// serveGerrit is `conveyor gerrit serve`: configuration and a lazy client, the
// listener, then the wait for Temporal, the sync, and events until a signal.
func serveGerrit(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: serve takes only flags", c.Args().Slice())
	}
	logger := slog.New(slog.NewTextHandler(c.App.ErrWriter, nil))
	metrics, err := telemetry.NewMetrics(logger)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	var tracing *telemetry.Tracing
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tracing.Shutdown(sctx); err != nil {
			logger.Warn("Sending the last spans", "error", err)
		}
	}()
	cfg, tc, cl, h, err := triggersHandler(c, logger, func(ctx context.Context, cfg config.Config, logger *slog.Logger) (client.Client, error) {
		var err error
		if tracing, err = telemetry.NewTracing(ctx, cfg.Tracing, "conveyor-gerrit", version); err != nil {
			return nil, err
		}
		return temporalclient.NewLazy(cfg.Temporal, logger, temporalclient.WithMetricsHandler(metrics.Handler()),
			temporalclient.WithInterceptors(tracing.ClientInterceptors()...))
	})
	if err != nil {
		return err
	}
	defer cl.Close()
	// Events are refused with 503 until Temporal has answered, the namespace
	// exists and the sync is done; /readyz says the same.
	var connected atomic.Bool
	probe, err := health.New(cl, health.WithTemporalAddress(cfg.Temporal.Address),
		health.WithCheck("start", func(context.Context) error {
			if !connected.Load() {
				return errors.New("checking the namespace and syncing the schedules")
			}
			return nil
		}))
	if err != nil {
		return err
	}
	accept := func() error {
		if connected.Load() {
			return nil
		}
		why := "not checked yet"
		if err := probe.Ready(); err != nil {
			why = strings.ReplaceAll(err.Error(), "\n", "; ")
		}
		return fmt.Errorf("not connected to Temporal at %s yet (%s): deliver the event again later", cfg.Temporal.Address, why)
	}
	opts := []triggers.ServerOption{triggers.WithMaxBodyBytes(tc.Webhook.MaxBodyBytes), triggers.WithServerLogger(logger),
		triggers.WithProbe(probe), triggers.WithAcceptWhen(accept), triggers.WithProjectSecrets(tc.ProjectSecrets()),
		triggers.WithMetrics(metrics)}
	if tc.Webhook.Auth == triggers.AuthBasic {
		opts = append(opts, triggers.WithBasicAuth(tc.Webhook.Username))
	}
	srv, err := triggers.NewServer(h, tc.Webhook.Secret, opts...)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	pctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go probe.Run(pctx)
	files := health.TLSFiles{Cert: c.String("listen-tls-cert"), Key: c.String("listen-tls-key")}
	if (files.Cert == "") != (files.Key == "") {
		return errors.New("--listen-tls-cert and --listen-tls-key go together: give both files to serve HTTPS, or neither for plain HTTP behind a TLS proxy")
	}
	hs, err := health.ListenTLS(c.String("listen"), srv.Handler(), logger, files)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", c.String("listen"), err)
	}
	// Whatever ends the process, readiness goes false first; then the listener
	// closes and the requests in flight get --shutdown-timeout to finish.
	drain := func() error {
		probe.Drain()
		fmt.Fprintf(c.App.ErrWriter, "draining: /readyz answers 503, finishing the requests in flight (up to %s)\n", c.Duration("shutdown-timeout"))
		return hs.Shutdown(c.Duration("shutdown-timeout"))
	}
	path := triggers.EventsPath + "/<secret>"
	if tc.Webhook.Auth == triggers.AuthBasic {
		path = triggers.EventsPath + " (basic auth, user " + tc.Webhook.Username + ")"
	}
	scheme := "http"
	if files.Enabled() {
		scheme = "https"
	}
	fmt.Fprintf(c.App.ErrWriter, "listening on %s://%s%s, health on %s and %s\n", scheme, hs.Addr(), path, health.LivePath, health.ReadyPath)

	// A signal during the wait or the sync drains as later; a namespace that does
	// not exist, or a failed sync, stops the process.
	err = temporalclient.Wait(ctx, cl, cfg.Temporal, logger)
	if err == nil && !c.Bool("no-sync") {
		err = printSync(ctx, c, cl, tc)
	}
	switch {
	case ctx.Err() != nil:
		return drain()
	case err != nil:
		_ = hs.Shutdown(time.Second)
		return err
	}
	connected.Store(true)
	fmt.Fprintf(c.App.ErrWriter, "connected to Temporal at %s, namespace %s: acting on events\n", cfg.Temporal.Address, cfg.Temporal.Namespace)
	select {
	case err := <-hs.Done():
		return err
	case <-ctx.Done():
	}
	return drain()
}
