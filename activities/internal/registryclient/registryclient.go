// Package registryclient is the go-containerregistry setup that the activities
// reading and writing images share (activities/registry, activities/baseimages):
// the configured registry, its credentials, and the transport the requests go
// through, built once in the worker.
package registryclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/internal/lib/tracing"
)

// Client holds the configured registry's name and credentials and the transport.
type Client struct {
	registry  name.Registry
	auth      authn.Authenticator
	transport http.RoundTripper
}

// Option configures a Client.
type Option func(*Client) error

// WithTransport sends the registry requests through t. Default:
// remote.DefaultTransport, each request a span (internal/lib/tracing).
func WithTransport(t http.RoundTripper) Option {
	return func(c *Client) error {
		if t == nil {
			return errors.New("WithTransport: the transport is nil")
		}
		c.transport = t
		return nil
	}
}

// New returns the client of reg: its address, and its credentials (anonymous
// when the username is empty). An empty address configures no registry: every
// registry is then read anonymously. Callers that need one check Configured.
func New(reg config.Registry, opts ...Option) (*Client, error) {
	c := &Client{auth: authn.Anonymous, transport: tracing.Transport("registry", remote.DefaultTransport)}
	if reg.Address != "" {
		r, err := name.NewRegistry(reg.Address, name.StrictValidation)
		if err != nil {
			return nil, fmt.Errorf("parsing the registry address %q: %w", reg.Address, err)
		}
		c.registry = r
		if reg.Username != "" {
			c.auth = authn.FromConfig(authn.AuthConfig{Username: reg.Username, Password: reg.Password})
		}
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Configured says whether the configuration names a registry.
func (c *Client) Configured() bool { return c.registry.RegistryStr() != "" }

// Registry is the configured registry; its zero value when none is configured.
func (c *Client) Registry() name.Registry { return c.registry }

// AuthFor is the configured credentials for the configured registry, anonymous
// for any other.
func (c *Client) AuthFor(reg name.Registry) authn.Authenticator {
	if c.Configured() && reg.RegistryStr() == c.registry.RegistryStr() {
		return c.auth
	}
	return authn.Anonymous
}

// Options are the remote options of a request to reg under ctx: the transport
// and reg's credentials.
func (c *Client) Options(ctx context.Context, reg name.Registry) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithTransport(c.transport), remote.WithAuth(c.AuthFor(reg))}
}

// IsNotFound says err is the registry's 404: no such manifest, tag or blob.
func IsNotFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}
