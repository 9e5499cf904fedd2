package devstack

import (
	"context"
	"errors"
	"fmt"
	"time"

	bkclient "github.com/moby/buildkit/client"
)

func (s *stack) buildkitSocket() string { return s.path("buildkit", "buildkitd.sock") }

// buildkitComponent is buildkitd with the OCI worker (Debian's runc, overlayfs),
// treating the local registry as plain HTTP.
func buildkitComponent() component {
	return component{
		name:    "buildkitd",
		tool:    "buildkit",
		process: true,
		address: func(s *stack) string { return "unix://" + s.buildkitSocket() },
		timeout: 60 * time.Second,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			if err := s.mkdirs("buildkit/root"); err != nil {
				return nil, err
			}
			conf := fmt.Sprintf(`# Written by conveyor dev up.
root = %q
[grpc]
  address = ["unix://%s"]
[worker.oci]
  enabled = true
  snapshotter = "overlayfs"
  binary = "/usr/sbin/runc"
  gc = true
  gckeepstorage = "10GB"
[worker.containerd]
  enabled = false
[registry.%q]
  http = true
  insecure = true
`, s.path("buildkit", "root"), s.buildkitSocket(), registryAddr)
			if err := writeFile(s.path("buildkit", "buildkitd.toml"), conf, 0o644); err != nil {
				return nil, err
			}
			return &process{Name: "buildkitd", Bin: s.tool("buildkit", "buildkitd"),
				Args: []string{"--config", s.path("buildkit", "buildkitd.toml")}}, nil
		},
		ready: func(ctx context.Context, s *stack) error {
			c, err := bkclient.New(ctx, "unix://"+s.buildkitSocket())
			if err != nil {
				return err
			}
			defer c.Close()
			ws, err := c.ListWorkers(ctx)
			if err != nil {
				return err
			}
			if len(ws) == 0 {
				return errors.New("buildkitd has no workers")
			}
			return nil
		},
	}
}
