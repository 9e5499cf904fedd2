package main

import (
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// loadConfig reads the configuration as the global flags say: --config, else
// conveyor.yaml in --state-dir, else config.Path's defaults; then applies the
// Temporal flags that c's command defines. Precedence: flag, environment, file,
// default.
func loadConfig(c *cli.Context) (config.Config, error) {
	path, explicit := c.String("config"), c.String("config") != ""
	stateDir := c.String("state-dir")
	if !explicit && stateDir != "" {
		path = filepath.Join(stateDir, config.FileName)
	}
	cfg, err := config.Load(config.Path(path), explicit)
	if err != nil && explicit {
		return config.Config{}, fmt.Errorf("--config: %w", err)
	}
	if err != nil {
		return config.Config{}, err
	}
	if stateDir != "" {
		cfg.StateDir = stateDir
	}
	temporalclient.ApplyFlags(c, &cfg.Temporal)
	return cfg, nil
}
