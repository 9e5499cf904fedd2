package temporalclient_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/internal/client/payloadcrypt"
	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/internal/dev/tlstest"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// writeCert writes a self-signed certificate and its key as PEM files in dir.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile, _ = tlstest.WriteSelfSigned(t, dir, "conveyor-test", time.Now())
	return certFile, keyFile
}

func TestOptionsPlain(t *testing.T) {
	o, err := temporalclient.Options(config.Defaults().Temporal)
	if err != nil {
		t.Fatal(err)
	}
	if o.HostPort != "127.0.0.1:7233" || o.Namespace != "default" || o.ConnectionOptions.TLS != nil || o.Credentials != nil {
		t.Errorf("Options(defaults) = %+v, want plain gRPC to 127.0.0.1:7233/default", o)
	}
}

func TestOptionsMutualTLS(t *testing.T) {
	cert, key := writeCert(t, t.TempDir())
	o, err := temporalclient.Options(config.Temporal{Address: "t:7233", TLSCert: cert, TLSKey: key, TLSCA: cert, TLSServer: "temporal.example"})
	if err != nil {
		t.Fatal(err)
	}
	tc := o.ConnectionOptions.TLS
	if tc == nil || len(tc.Certificates) != 1 || tc.RootCAs == nil || tc.ServerName != "temporal.example" {
		t.Errorf("TLS config = %+v, want a client certificate, the CA and the server name", tc)
	}
}

func TestOptionsAPIKey(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	os.WriteFile(keyFile, []byte("  secret\n"), 0o600)
	o, err := temporalclient.Options(config.Temporal{Address: "t:7233", APIKeyFile: keyFile})
	if err != nil || o.Credentials == nil {
		t.Fatalf("Options = %+v, %v; want API key credentials", o, err)
	}
}

func TestOptionsErrorsSayWhatToFix(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	for _, tc := range []struct {
		cfg  config.Temporal
		want string
	}{
		{config.Temporal{}, "no Temporal address: set temporal.address in the configuration file, TEMPORAL_ADDRESS or --address"},
		{config.Temporal{Address: "a", TLSCert: cert}, "temporal.tlsCert is set (" + cert + ") but temporal.tlsKey is not"},
		{config.Temporal{Address: "a", TLSKey: key}, "temporal.tlsKey is set (" + key + ") but temporal.tlsCert is not"},
		{config.Temporal{Address: "a", TLSCert: key, TLSKey: key}, "loading the TLS client certificate (temporal.tlsCert"},
		{config.Temporal{Address: "a", TLSCA: key}, "temporal.tlsCA " + key + " holds no PEM certificate"},
		{config.Temporal{Address: "a", TLSCA: filepath.Join(dir, "missing")}, "reading the TLS CA (temporal.tlsCA)"},
		{config.Temporal{Address: "a", APIKeyFile: empty}, "temporal.apiKeyFile " + empty + " is empty"},
		{config.Temporal{Address: "a", APIKeyFile: filepath.Join(dir, "missing")}, "reading the API key (temporal.apiKeyFile)"},
		{config.Temporal{Address: "a", PayloadKeyFile: filepath.Join(dir, "missing")}, "temporal.payloadKeyFile: open " + filepath.Join(dir, "missing")},
		{config.Temporal{Address: "a", PayloadKeyFile: empty}, "temporal.payloadKeyFile " + empty + ": lists no key"},
	} {
		_, err := temporalclient.Options(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Options(%+v) error = %v, want one containing %q", tc.cfg, err, tc.want)
		}
	}
}

func TestOptionsPayloadKeyFileEncrypts(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "payload-keys")
	if err := payloadcrypt.EnsureKeyFile(keys, "k1"); err != nil {
		t.Fatal(err)
	}
	o, err := temporalclient.Options(config.Temporal{Address: "t:7233", PayloadKeyFile: keys})
	if err != nil || o.DataConverter == nil || o.FailureConverter == nil {
		t.Fatalf("Options = %+v, %v; want a data and a failure converter", o, err)
	}
	p, err := o.DataConverter.ToPayload("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if !payloadcrypt.Encrypted(p) || strings.Contains(string(p.GetData()), "s3cret") {
		t.Errorf("payload %v, want it encrypted", p)
	}
	f := o.FailureConverter.ErrorToFailure(errors.New("push failed: password s3cret refused"))
	if strings.Contains(f.GetMessage(), "s3cret") || !payloadcrypt.Encrypted(f.GetEncodedAttributes()) {
		t.Errorf("failure %v, want its message in encrypted attributes", f)
	}
	if err := o.FailureConverter.FailureToError(f); !strings.Contains(err.Error(), "password s3cret refused") {
		t.Errorf("the failure decodes to %v, want the original message", err)
	}
	if o, _ := temporalclient.Options(config.Temporal{Address: "t:7233"}); o.DataConverter != nil {
		t.Error("no payload key file, yet a data converter is set")
	}
}
