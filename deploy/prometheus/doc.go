// Package prometheus holds conveyor's Prometheus alert rules (conveyor-rules.yml)
// and their tests (conveyor-rules_test.yml), which promtool checks and runs in the
// test suite; docs/operating.md, "Metrics and alerts", describes them.
package prometheus
