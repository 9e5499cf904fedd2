package health

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// TLSFiles are a PEM certificate (its chain after it) and key a server presents.
// Both or neither: an empty pair serves plain HTTP.
type TLSFiles struct{ Cert, Key string }

// Enabled says whether both files are given.
func (f TLSFiles) Enabled() bool { return f.Cert != "" && f.Key != "" }

// certReloader loads the pair at start and again at the first handshake after
// either file changed, so a renewed certificate (cert-manager writing a
// mounted Secret) is served without a restart. A pair that fails to load keeps
// the previous one and logs nothing here: Listen has checked it once.
type certReloader struct {
	files TLSFiles

	mu      sync.Mutex
	cert    *tls.Certificate
	modTime time.Time
}

func newCertReloader(f TLSFiles) (*certReloader, error) {
	if (f.Cert == "") != (f.Key == "") {
		return nil, errors.New("give both a certificate and a key file, or neither")
	}
	r := &certReloader{files: f}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

// newest is the later modification time of the two files.
func (r *certReloader) newest() (time.Time, error) {
	var t time.Time
	for _, p := range []string{r.files.Cert, r.files.Key} {
		st, err := os.Stat(p)
		if err != nil {
			return time.Time{}, err
		}
		if st.ModTime().After(t) {
			t = st.ModTime()
		}
	}
	return t, nil
}

func (r *certReloader) load() error {
	mod, err := r.newest()
	if err != nil {
		return fmt.Errorf("reading the TLS certificate: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(r.files.Cert, r.files.Key)
	if err != nil {
		return fmt.Errorf("loading the TLS certificate %s and key %s: %w", r.files.Cert, r.files.Key, err)
	}
	r.mu.Lock()
	r.cert, r.modTime = &cert, mod
	r.mu.Unlock()
	return nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if mod, err := r.newest(); err == nil {
		r.mu.Lock()
		changed := mod.After(r.modTime)
		r.mu.Unlock()
		if changed {
			_ = r.load()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cert, nil
}
