// Package temporalclient dials Temporal as conveyor's configuration says: address,
// namespace, mutual TLS, API key and payload encryption. Its errors say what to
// fix. It is the one place clients are made, for the workers and the CLI alike,
// so both encode payloads the same way.
package temporalclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/grpc/codes"

	"github.com/wikimedia/conveyor/internal/client/payloadcrypt"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// Option changes how Dial connects.
type Option func(*client.Options) error

// WithIdentity sets the identity the client (and its workers) report to Temporal.
// Default: the SDK's "pid@host@".
func WithIdentity(identity string) Option {
	return func(o *client.Options) error {
		if strings.TrimSpace(identity) == "" {
			return errors.New("temporalclient.WithIdentity: empty identity")
		}
		o.Identity = identity
		return nil
	}
}

// WithMetricsHandler makes the client (and its workers) record the SDK's metrics
// through h (telemetry.Metrics.Handler). Default: none.
func WithMetricsHandler(h client.MetricsHandler) Option {
	return func(o *client.Options) error {
		if h == nil {
			return errors.New("temporalclient.WithMetricsHandler: nil handler")
		}
		o.MetricsHandler = h
		return nil
	}
}

// WithInterceptors adds client interceptors (telemetry.Tracing's); the
// workers made from the client use those that are worker interceptors too.
func WithInterceptors(ics ...interceptor.ClientInterceptor) Option {
	return func(o *client.Options) error {
		o.Interceptors = append(o.Interceptors, ics...)
		return nil
	}
}

// Dial connects to the Temporal frontend described by cfg, logging through logger
// (slog.Default() if nil), and checks that the namespace exists. For a command
// that needs Temporal now; a service that must come up while Temporal is still
// down uses NewLazy and Wait.
func Dial(ctx context.Context, cfg config.Temporal, logger *slog.Logger, opts ...Option) (client.Client, error) {
	o, err := clientOptions(cfg, logger, opts)
	if err != nil {
		return nil, err
	}
	c, err := client.DialContext(ctx, o)
	if err != nil {
		return nil, unreachable(cfg, err)
	}
	if err := checkNamespace(ctx, c, cfg); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// clientOptions is Options with the logger (slog.Default() if nil) and opts.
func clientOptions(cfg config.Temporal, logger *slog.Logger, opts []Option) (client.Options, error) {
	if logger == nil {
		logger = slog.Default()
	}
	o, err := Options(cfg)
	if err != nil {
		return client.Options{}, err
	}
	o.Logger = tlog.NewStructuredLogger(logger)
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return client.Options{}, err
		}
	}
	return o, nil
}

// unreachableError is a failure to reach Temporal: an outage that waiting can
// end, unlike a wrong namespace or refused credentials.
type unreachableError struct {
	address string
	err     error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach Temporal at %s: is the stack up? run `make up`, or point temporal.address, TEMPORAL_ADDRESS or --address at a running server: %v", e.address, e.err)
}

func (e *unreachableError) Unwrap() error { return e.err }

func unreachable(cfg config.Temporal, err error) error {
	return &unreachableError{address: cfg.Address, err: err}
}

// refused is Temporal refusing the credentials: a configuration error.
func refused(cfg config.Temporal, err error) error {
	return fmt.Errorf("temporal at %s refused the credentials: check temporal.apiKeyFile and the TLS client certificate: %w", cfg.Address, err)
}

// checkNamespace turns the two mistakes a worker would otherwise only log about,
// a wrong namespace and refused credentials, into errors, and a Temporal that
// does not answer into an *unreachableError.
func checkNamespace(ctx context.Context, c client.Client, cfg config.Temporal) error {
	_, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: cfg.Namespace})
	var notFound *serviceerror.NamespaceNotFound
	switch code := serviceerror.ToStatus(err).Code(); {
	case err == nil:
		return nil
	case errors.As(err, &notFound):
		return fmt.Errorf("namespace %q does not exist on Temporal at %s: set temporal.namespace, TEMPORAL_NAMESPACE or --namespace to an existing one, or create it with `temporal operator namespace create --namespace %s`", cfg.Namespace, cfg.Address, cfg.Namespace)
	case code == codes.Unauthenticated:
		return refused(cfg, err)
	case code == codes.Unavailable || code == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded):
		return unreachable(cfg, err)
	}
	// Other failures (e.g. no permission to describe the namespace) do not stop the
	// client from working; the calls that matter will report them.
	return nil
}

// Options returns the SDK client options for cfg, reading the TLS, API key and
// payload key files it names. The logger and identity are left unset.
func Options(cfg config.Temporal) (client.Options, error) {
	if cfg.Address == "" {
		return client.Options{}, errors.New("no Temporal address: set temporal.address in the configuration file, TEMPORAL_ADDRESS or --address (the local stack's is 127.0.0.1:7233)")
	}
	o := client.Options{HostPort: cfg.Address, Namespace: cfg.Namespace}
	tlsCfg, err := tlsConfig(cfg)
	if err != nil {
		return client.Options{}, err
	}
	o.ConnectionOptions.TLS = tlsCfg
	if cfg.APIKeyFile != "" {
		b, err := os.ReadFile(cfg.APIKeyFile)
		if err != nil {
			return client.Options{}, fmt.Errorf("reading the API key (temporal.apiKeyFile): %w", err)
		}
		key := strings.TrimSpace(string(b))
		if key == "" {
			return client.Options{}, fmt.Errorf("temporal.apiKeyFile %s is empty: it should hold the API key on one line", cfg.APIKeyFile)
		}
		// An API key turns TLS on by itself (with the system's roots) unless tlsConfig
		// already configured it.
		o.Credentials = client.NewAPIKeyStaticCredentials(key)
	}
	if o.DataConverter, o.FailureConverter, err = ConvertersFor(cfg); err != nil {
		return client.Options{}, err
	}
	return o, nil
}

// DataConverter returns the data converter a client made from cfg uses, for
// code that decodes payloads it reads itself (memos in a list of workflows);
// nil, the SDK's default, when cfg encrypts nothing.
func DataConverter(cfg config.Temporal) (converter.DataConverter, error) {
	dc, _, err := ConvertersFor(cfg)
	return dc, err
}

// ConvertersFor returns the data and failure converters a client and worker made
// from cfg use: Converters with temporal.payloadKeyFile's codec, or nils (the
// SDK's defaults) when it is not set. Code that reads payloads without a client
// (a history replayed from a file) uses them too.
func ConvertersFor(cfg config.Temporal) (converter.DataConverter, converter.FailureConverter, error) {
	if cfg.PayloadKeyFile == "" {
		return nil, nil, nil
	}
	codec, err := payloadcrypt.Load("temporal.payloadKeyFile", cfg.PayloadKeyFile)
	if err != nil {
		return nil, nil, err
	}
	dc, fc := Converters(codec)
	return dc, fc, nil
}

// Converters returns the data converter that encrypts payloads with codec, and
// a failure converter that moves failures' messages and stack traces into their
// encoded (so encrypted) attributes, where an error quoting a secret would
// otherwise keep it in the clear.
func Converters(codec converter.PayloadCodec) (converter.DataConverter, converter.FailureConverter) {
	dc := converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), codec)
	return dc, temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{DataConverter: dc, EncodeCommonAttributes: true})
}

// tlsConfig returns the TLS configuration cfg asks for, or nil for plain gRPC.
func tlsConfig(cfg config.Temporal) (*tls.Config, error) {
	if cfg.TLSCert == "" && cfg.TLSKey == "" && cfg.TLSCA == "" && cfg.TLSServer == "" {
		return nil, nil
	}
	t := &tls.Config{ServerName: cfg.TLSServer, MinVersion: tls.VersionTLS12}
	switch {
	case cfg.TLSCert != "" && cfg.TLSKey == "":
		return nil, fmt.Errorf("temporal.tlsCert is set (%s) but temporal.tlsKey is not: mutual TLS needs both (TEMPORAL_TLS_KEY, --tls-key)", cfg.TLSCert)
	case cfg.TLSKey != "" && cfg.TLSCert == "":
		return nil, fmt.Errorf("temporal.tlsKey is set (%s) but temporal.tlsCert is not: mutual TLS needs both (TEMPORAL_TLS_CERT, --tls-cert)", cfg.TLSKey)
	case cfg.TLSCert != "":
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("loading the TLS client certificate (temporal.tlsCert %s, temporal.tlsKey %s): %w", cfg.TLSCert, cfg.TLSKey, err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	if cfg.TLSCA != "" {
		pem, err := os.ReadFile(cfg.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("reading the TLS CA (temporal.tlsCA): %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("temporal.tlsCA %s holds no PEM certificate", cfg.TLSCA)
		}
		t.RootCAs = pool
	}
	return t, nil
}
