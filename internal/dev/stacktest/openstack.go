package stacktest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/internal/dev/devstack"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

var (
	osOnce sync.Once
	osCfg  config.Config
	osErr  error
)

// OpenStack brings the stack up with its optional two-region OpenStack (the same code
// as `conveyor dev up --with openstack`; seconds when it is up, about 4 minutes from
// an empty state) and returns the configuration, whose OpenStack section names
// Keystone, the admin credentials and the deployments eqiad1 and eqiad2. It fails the
// test, never skips, when the rig cannot come up.
func OpenStack(t testing.TB) config.Config {
	t.Helper()
	osOnce.Do(func() { osCfg, osErr = upOpenStack() })
	if osErr != nil {
		t.Fatalf("the local stack's OpenStack is required (`conveyor dev up --with openstack` or `make up-openstack` "+
			"starts it; `make deps` installs its Debian packages): %v", osErr)
	}
	return osCfg
}

func upOpenStack() (config.Config, error) {
	repo, err := RepoDir()
	if err != nil {
		return config.Config{}, err
	}
	stateDir := os.Getenv("CONVEYOR_STATE_DIR")
	if stateDir == "" {
		stateDir = filepath.Join(repo, config.DefaultStateDir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	path, err := devstack.Up(ctx, devstack.Options{StateDir: stateDir, RepoDir: repo, Progress: &progress, With: []string{"openstack"}})
	if err != nil {
		return config.Config{}, fmt.Errorf("%v\n%s", err, progress.String())
	}
	c, err := config.Load(path, true)
	if err != nil {
		return config.Config{}, err
	}
	if c.OpenStack.AuthURL == "" || len(c.OpenStack.Deployments) == 0 {
		return config.Config{}, fmt.Errorf("%s has no openstack section after dev up --with openstack", path)
	}
	return c, nil
}
