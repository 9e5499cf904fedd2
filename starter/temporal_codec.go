package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/wikimedia/conveyor/internal/client/health"
	"github.com/wikimedia/conveyor/internal/client/payloadcrypt"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

func temporalCodecServerCommand() *cli.Command {
	return &cli.Command{
		Name:  "codec-server",
		Usage: "decrypt payloads for the Temporal Web UI and CLI (Temporal's codec server protocol)",
		Description: "Serves POST /encode and POST /decode ({\"payloads\": [...]}) with the payload keys,\n" +
			"so that the Temporal Web UI (its codec.endpoint) and the temporal CLI\n" +
			"(--codec-endpoint) show the payloads conveyor encrypts (docs/security.md).\n" +
			"Whoever reaches it can read every payload: listen where only operators can,\n" +
			"allow the UI's origin only, and set --auth-token-file for scripts and the CLI.\n\n" +
			"Example:\n\n" +
			"   conveyor temporal codec-server --listen 127.0.0.1:8234 \\\n" +
			"       --key-file /etc/conveyor/payload-keys --allow-origin https://temporal.example.org\n" +
			"   temporal workflow show --workflow-id ID --codec-endpoint http://127.0.0.1:8234",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8234", Usage: "`ADDR`ess to listen on, host:port"},
			&cli.StringFlag{Name: "key-file", EnvVars: []string{"CONVEYOR_TEMPORAL_PAYLOAD_KEY_FILE"},
				Usage: "payload key `FILE`", DefaultText: "temporal.payloadKeyFile from --config"},
			&cli.StringSliceFlag{Name: "allow-origin", Usage: "`ORIGIN` (scheme://host:port) of a Web UI allowed to call it; repeat for more",
				DefaultText: "the origin of temporal.uiURL from --config"},
			&cli.StringFlag{Name: "auth-token-file", Usage: "`FILE` holding a token that every request must send as `Authorization: Bearer TOKEN`"},
			&cli.DurationFlag{Name: "shutdown-timeout", Value: 10 * time.Second,
				Usage: "on SIGINT/SIGTERM, how long (`DURATION`) the requests in flight get to finish"},
		},
		Action: serveCodec,
	}
}

// serveCodec is `conveyor temporal codec-server`: the keys, the options, then
// requests until a signal.
func serveCodec(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: codec-server takes only flags", c.Args().Slice())
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	setting, keyFile := "--key-file", c.String("key-file")
	if keyFile == "" {
		setting, keyFile = "temporal.payloadKeyFile", cfg.Temporal.PayloadKeyFile
	}
	if keyFile == "" {
		return errors.New("no payload keys: set --key-file, CONVEYOR_TEMPORAL_PAYLOAD_KEY_FILE or temporal.payloadKeyFile to the file the workers use")
	}
	codec, err := payloadcrypt.Load(setting, keyFile)
	if err != nil {
		return err
	}
	origins := c.StringSlice("allow-origin")
	if len(origins) == 0 {
		if o := origin(cfg.Temporal); o != "" {
			origins = []string{o}
		}
	}
	opts := []payloadcrypt.ServerOption{payloadcrypt.WithAllowedOrigins(origins...)}
	if f := c.String("auth-token-file"); f != "" {
		token, err := config.SecretFile("--auth-token-file", f)
		if err != nil {
			return err
		}
		opts = append(opts, payloadcrypt.WithAuthToken(token))
	}
	logger := slog.New(slog.NewTextHandler(c.App.ErrWriter, nil))
	ctx, stop := signalContext(c)
	defer stop()
	hs, err := health.Listen(c.String("listen"), payloadcrypt.Handler(codec, opts...), logger)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	fmt.Fprintf(c.App.ErrWriter, "codec server on http://%s (/encode, /decode), key %s of %s, allowed origins %v\n",
		hs.Addr(), codec.KeyID(), keyFile, origins)
	select {
	case err := <-hs.Done():
		return err
	case <-ctx.Done():
	}
	return hs.Shutdown(c.Duration("shutdown-timeout"))
}

// origin is the scheme://host[:port] of the Web UI's address, "" when unset.
func origin(t config.Temporal) string {
	u, err := url.Parse(t.UIURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
