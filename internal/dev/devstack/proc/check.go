package proc

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// TCPOpen checks that something listens on addr.
func TCPOpen(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// UnixOpen checks that something listens on a unix socket.
func UnixOpen(ctx context.Context, path string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return err
	}
	return c.Close()
}

// Indent puts prefix before every line of s (log tails in error messages).
func Indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

// WriteFile writes a file of the state directory, making its directory first.
func WriteFile(path string, data string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(data), mode)
}
