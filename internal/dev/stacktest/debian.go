package stacktest

import (
	"testing"

	"github.com/wikimedia/conveyor/internal/lib/config"
)

// debianStack is the stack with its Debian base image, brought up once per test binary.
var debianStack memo

// Debian brings the stack up with its optional Debian base image
// (devstack.DebianImage, the same code as `conveyor dev up --with debian`: seconds when
// the registry has it, about a minute of debootstrap otherwise) and returns the
// configuration. It fails the test, never skips, when the image cannot be made.
func Debian(t testing.TB) config.Config {
	t.Helper()
	cfg, err := debianStack.get(func() (config.Config, error) { return up("debian") })
	if err != nil {
		t.Fatalf("the local stack's Debian base image is required (`conveyor dev up --with debian` or `make images` "+
			"makes it; `make deps` installs debootstrap): %v", err)
	}
	return cfg
}
