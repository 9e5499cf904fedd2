package registryclient

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wikimedia/conveyor/internal/lib/config"
)

func mustRegistry(t *testing.T, s string) name.Registry {
	t.Helper()
	r, err := name.NewRegistry(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestAuthForGivesTheCredentialsOnlyToTheConfiguredRegistry(t *testing.T) {
	c, err := New(config.Registry{Address: "registry.example:5000", Username: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Configured() || c.Registry().RegistryStr() != "registry.example:5000" {
		t.Fatalf("registry %q, configured %v", c.Registry().RegistryStr(), c.Configured())
	}
	got, err := c.AuthFor(mustRegistry(t, "registry.example:5000")).Authorization()
	if err != nil || got.Username != "u" || got.Password != "p" {
		t.Errorf("credentials for the configured registry: %+v, %v", got, err)
	}
	if a := c.AuthFor(mustRegistry(t, "docker.io")); a != authn.Anonymous {
		t.Errorf("credentials for another registry: %v, want anonymous", a)
	}
}

func TestWithoutAnAddressEveryRegistryIsAnonymous(t *testing.T) {
	c, err := New(config.Registry{Username: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Configured() {
		t.Error("Configured without an address")
	}
	if a := c.AuthFor(c.Registry()); a != authn.Anonymous {
		t.Errorf("credentials without a configured registry: %v, want anonymous", a)
	}
}

func TestNewRefusesBadInput(t *testing.T) {
	if _, err := New(config.Registry{Address: "not a registry"}); err == nil || !strings.Contains(err.Error(), "parsing the registry address") {
		t.Errorf("New with a bad address: %v", err)
	}
	if _, err := New(config.Registry{}, WithTransport(nil)); err == nil {
		t.Error("WithTransport(nil) accepted")
	}
}

// TestOptionsReachTheRegistryThroughTheTransport asks an in-memory registry for
// a tag that does not exist: the request goes through the given transport, and
// the answer is a 404 that IsNotFound recognises.
func TestOptionsReachTheRegistryThroughTheTransport(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	c, err := New(config.Registry{Address: host}, WithTransport(srv.Client().Transport))
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(host + "/absent:latest")
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Head(tag, c.Options(context.Background(), tag.Context().Registry)...)
	if !IsNotFound(err) {
		t.Errorf("HEAD of an absent tag: %v, want a 404", err)
	}
	if IsNotFound(nil) {
		t.Error("IsNotFound(nil)")
	}
}
