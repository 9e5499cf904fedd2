package devstack

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/wikimedia/conveyor/internal/client/payloadcrypt"
)

// The stack's configuration turns payload encryption on, with a key made once
// in the state directory and kept across `dev up`s.
func TestStackConfigEncryptsPayloads(t *testing.T) {
	s := &stack{dir: t.TempDir()}
	c := s.config()
	if want := filepath.Join(s.dir, "secrets", "payload-keys"); c.Temporal.PayloadKeyFile != want {
		t.Fatalf("temporal.payloadKeyFile = %q, want %s", c.Temporal.PayloadKeyFile, want)
	}
	first, err := os.ReadFile(c.Temporal.PayloadKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := payloadcrypt.Load("temporal.payloadKeyFile", c.Temporal.PayloadKeyFile); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(s.config().Temporal.PayloadKeyFile)
	if string(again) != string(first) {
		t.Error("a second config() replaced the stack's payload key")
	}
}
