package stacktest

import (
	"fmt"
	"testing"

	"github.com/wikimedia/conveyor/internal/dev/devstack"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// openStack is the stack with its OpenStack, brought up once per test binary.
var openStack memo

// OpenStack brings the stack up with its optional two-region OpenStack (the same code
// as `conveyor dev up --with openstack`; seconds when it is up, about 4 minutes from
// an empty state) and returns the configuration, whose OpenStack section names
// Keystone, the admin credentials and the deployments eqiad1 and eqiad2. It fails the
// test, never skips, when the rig cannot come up.
func OpenStack(t testing.TB) config.Config {
	t.Helper()
	cfg, err := openStack.get(upOpenStack)
	if err != nil {
		t.Fatalf("the local stack's OpenStack is required (`conveyor dev up --with openstack` or `make up-openstack` "+
			"starts it; `make deps` installs its Debian packages): %v", err)
	}
	return cfg
}

func upOpenStack() (config.Config, error) {
	c, err := up("openstack")
	if err != nil {
		return config.Config{}, err
	}
	if c.OpenStack.AuthURL == "" || len(c.OpenStack.Deployments) == 0 {
		return config.Config{}, fmt.Errorf("%s has no openstack section after dev up --with openstack", devstack.ConfigFile(c.StateDir))
	}
	return c, nil
}
