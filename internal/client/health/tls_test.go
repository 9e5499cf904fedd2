package health

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/internal/dev/tlstest"
)

// writeCert is tlstest.WriteSelfSigned as TLSFiles.
func writeCert(t *testing.T, dir, cn string, mod time.Time) (TLSFiles, *x509.CertPool) {
	t.Helper()
	cert, key, pool := tlstest.WriteSelfSigned(t, dir, cn, mod)
	return TLSFiles{Cert: cert, Key: key}, pool
}

// TestListenTLSServesAndReloads: the server presents the files' certificate,
// refuses plain HTTP, and presents a renewed certificate without a restart.
func TestListenTLSServesAndReloads(t *testing.T) {
	dir := t.TempDir()
	files, first := writeCert(t, dir, "first", time.Now().Add(-time.Minute))
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	s, err := ListenTLS("127.0.0.1:0", h, nil, files)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(time.Second) })
	get := func(pool *x509.CertPool) (string, error) {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		resp, err := c.Get("https://" + s.Addr().String() + "/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if len(resp.TLS.PeerCertificates) == 0 {
			return "", nil
		}
		return resp.TLS.PeerCertificates[0].Subject.CommonName, nil
	}
	if cn, err := get(first); err != nil || cn != "first" {
		t.Fatalf("HTTPS: %q, %v; want the first certificate", cn, err)
	}
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + s.Addr().String() + "/"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || string(b) == "ok" {
			t.Errorf("plain HTTP was answered %s %q; want TLS's 400 (the handler never runs)", resp.Status, b)
		}
	}
	_, second := writeCert(t, dir, "second", time.Now())
	if cn, err := get(second); err != nil || cn != "second" {
		t.Errorf("after renewing the files: %q, %v; want the second certificate, without a restart", cn, err)
	}
}

func TestListenTLSRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	h := http.NotFoundHandler()
	for name, f := range map[string]TLSFiles{
		"cert without key": {Cert: filepath.Join(dir, "tls.crt")},
		"missing files":    {Cert: filepath.Join(dir, "nope.crt"), Key: filepath.Join(dir, "nope.key")},
	} {
		if _, err := ListenTLS("127.0.0.1:0", h, nil, f); err == nil {
			t.Errorf("%s: listened; want an error", name)
		} else if name == "missing files" && !strings.Contains(err.Error(), "nope.crt") {
			t.Errorf("%s: %v, want it to name the file", name, err)
		}
	}
}
