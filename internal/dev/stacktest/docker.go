package stacktest

import (
	"os"
	"testing"

	"github.com/wikimedia/conveyor/internal/dev/devstack"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// dockerStack is the stack with its Docker engine and its Debian base image.
var dockerStack memo

// Docker brings the stack up with its Docker engine (devstack.WithDocker) and its
// Debian base image, which the images docker-compose.yml runs are built on, and
// returns the stack's configuration and the engine's DOCKER_HOST.
//
// CONVEYOR_DOCKER_HOST names an engine the stack does not run instead (one started
// by hand beside a stack that belongs to someone else): then only the Debian base
// image is asked of the stack.
func Docker(t testing.TB) (config.Config, string) {
	t.Helper()
	if host := os.Getenv("CONVEYOR_DOCKER_HOST"); host != "" {
		return Debian(t), host
	}
	cfg, err := dockerStack.get(func() (config.Config, error) { return up("debian", devstack.WithDocker) })
	if err != nil {
		t.Fatalf("the local stack with its Docker engine is required (`conveyor dev up --with docker --with debian`; "+
			"`make deps` installs Debian's docker.io and docker-compose): %v", err)
	}
	host, err := devstack.DockerHost(cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, host
}
