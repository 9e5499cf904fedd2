package stacktest

import (
	"testing"

	"github.com/wikimedia/conveyor/internal/dev/devstack"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// dockerStack is the stack with its Docker engine.
var dockerStack memo

// Docker brings the stack up with its Docker engine (devstack.WithDocker) and
// returns the stack's configuration and the engine's DOCKER_HOST.
func Docker(t testing.TB) (config.Config, string) {
	t.Helper()
	cfg, err := dockerStack.get(func() (config.Config, error) { return up(devstack.WithDocker) })
	if err != nil {
		t.Fatalf("the local stack with its Docker engine is required (`conveyor dev up --with docker`; `make deps` installs Debian's docker.io and docker-compose): %v", err)
	}
	host, err := devstack.DockerHost(cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, host
}
