package temporalclient

import (
	"github.com/urfave/cli/v2"

	"github.com/wikimedia/conveyor/internal/lib/config"
)

// Flag names shared by every command that talks to Temporal.
const (
	FlagAddress    = "address"
	FlagNamespace  = "namespace"
	FlagTLSCert    = "tls-cert"
	FlagTLSKey     = "tls-key"
	FlagTLSCA      = "tls-ca"
	FlagTLSServer  = "tls-server-name"
	FlagAPIKeyFile = "api-key-file"
	FlagPayloadKey = "payload-key-file"
)

// Flags returns the command-line flags that override the configuration's temporal
// section. Each also reads the environment variable config.Load honours, so the help
// shows it; the precedence is flag, then environment, then file, then default.
func Flags() []cli.Flag {
	const cat = "Temporal connection"
	return []cli.Flag{
		&cli.StringFlag{Name: FlagAddress, Category: cat, EnvVars: []string{"TEMPORAL_ADDRESS"},
			Usage: "Temporal frontend `HOST:PORT`", DefaultText: "temporal.address from --config, else 127.0.0.1:7233"},
		&cli.StringFlag{Name: FlagNamespace, Category: cat, EnvVars: []string{"TEMPORAL_NAMESPACE"},
			Usage: "Temporal `NAMESPACE`", DefaultText: "temporal.namespace from --config, else default"},
		&cli.StringFlag{Name: FlagTLSCert, Category: cat, EnvVars: []string{"TEMPORAL_TLS_CERT"},
			Usage: "PEM client certificate `FILE` for mutual TLS (needs --tls-key)"},
		&cli.StringFlag{Name: FlagTLSKey, Category: cat, EnvVars: []string{"TEMPORAL_TLS_KEY"},
			Usage: "PEM client key `FILE` for mutual TLS (needs --tls-cert)"},
		&cli.StringFlag{Name: FlagTLSCA, Category: cat, EnvVars: []string{"TEMPORAL_TLS_CA"},
			Usage: "PEM CA `FILE` to verify the server with; setting it turns TLS on"},
		&cli.StringFlag{Name: FlagTLSServer, Category: cat, EnvVars: []string{"TEMPORAL_TLS_SERVER_NAME"},
			Usage: "server `NAME` to expect in the server's certificate; setting it turns TLS on"},
		&cli.StringFlag{Name: FlagAPIKeyFile, Category: cat,
			Usage: "`FILE` holding a Temporal API key; turns TLS on", DefaultText: "temporal.apiKeyFile from --config"},
		&cli.StringFlag{Name: FlagPayloadKey, Category: cat, EnvVars: []string{"CONVEYOR_TEMPORAL_PAYLOAD_KEY_FILE"},
			Usage: "`FILE` of payload encryption keys (docs/security.md); the workers must have the same", DefaultText: "temporal.payloadKeyFile from --config"},
	}
}

// ApplyFlags copies the flags of Flags that are set in c (on the command line or
// through their environment variable) over t.
func ApplyFlags(c *cli.Context, t *config.Temporal) {
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{FlagAddress, &t.Address},
		{FlagNamespace, &t.Namespace},
		{FlagTLSCert, &t.TLSCert},
		{FlagTLSKey, &t.TLSKey},
		{FlagTLSCA, &t.TLSCA},
		{FlagTLSServer, &t.TLSServer},
		{FlagAPIKeyFile, &t.APIKeyFile},
		{FlagPayloadKey, &t.PayloadKeyFile},
	} {
		if c.IsSet(f.name) {
			if v := c.String(f.name); v != "" {
				*f.dst = v
			}
		}
	}
}
