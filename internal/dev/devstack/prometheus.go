package devstack

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

const prometheusAddr = "127.0.0.1:9390"

// PrometheusURL is the stack's Prometheus: its HTTP API and UI.
const PrometheusURL = "http://" + prometheusAddr

// PrometheusTargetsDir is where, under the state directory, the stack's Prometheus
// finds what to scrape: one JSON file of targets each (Prometheus' file_sd
// format), written by whoever starts a worker or a receiver on the stack
// (stacktest.Scrape in the tests), read again within a second of a change.
const PrometheusTargetsDir = "prometheus/targets"

// prometheusComponent is Debian's Prometheus, scraping every 2 s what the targets
// directory lists and evaluating conveyor's alert rules (deploy/prometheus).
func prometheusComponent() component {
	return component{
		name:    "prometheus",
		process: true,
		address: func(*stack) string { return PrometheusURL },
		timeout: 60 * time.Second,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			bin, err := exec.LookPath("prometheus")
			if err != nil {
				return nil, fmt.Errorf("Debian's prometheus is not installed: run `make deps` (tools/deps.sh)")
			}
			if err := s.mkdirs("prometheus/data", PrometheusTargetsDir); err != nil {
				return nil, err
			}
			rules := filepath.Join(s.repoDir(), "deploy", "prometheus", "conveyor-rules.yml")
			if _, err := os.Stat(rules); err != nil {
				return nil, fmt.Errorf("conveyor's alert rules: %w", err)
			}
			conf := fmt.Sprintf(`# Written by conveyor dev up: the local stack's Prometheus.
global:
  scrape_interval: 2s
  evaluation_interval: 2s
rule_files:
  - %s
scrape_configs:
  - job_name: conveyor
    file_sd_configs:
      - files: ['%s/*.json']
        refresh_interval: 1s
`, rules, s.path(PrometheusTargetsDir))
			if err := writeFile(s.path("prometheus", "prometheus.yml"), conf, 0o644); err != nil {
				return nil, err
			}
			return &process{Name: "prometheus", Bin: bin, Args: []string{
				"--config.file=" + s.path("prometheus", "prometheus.yml"),
				"--storage.tsdb.path=" + s.path("prometheus", "data"),
				"--storage.tsdb.retention.time=2d",
				"--web.listen-address=" + prometheusAddr,
				"--log.level=warn",
			}}, nil
		},
		ready: func(ctx context.Context, s *stack) error { return httpOK(ctx, nil, PrometheusURL+"/-/ready") },
	}
}
