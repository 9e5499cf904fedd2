package prometheus

import (
	"os/exec"
	"strings"
	"testing"
)

// promtool is Debian's, from the prometheus package (tools/deps.sh, `make deps`).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not on the PATH: `make deps` (tools/deps.sh) installs Debian's prometheus package, which has it")
	}
	return p
}

// TestAlertRulesAreValid: promtool accepts the rules file.
func TestAlertRulesAreValid(t *testing.T) {
	out, err := exec.Command(promtool(t), "check", "rules", "conveyor-rules.yml").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS: 4 rules found") {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// TestAlertRulesFireWhenTheyShould runs the rules' unit tests: each alert fires on
// the series that should raise it, with its labels and annotations, and not on
// the others.
func TestAlertRulesFireWhenTheyShould(t *testing.T) {
	out, err := exec.Command(promtool(t), "test", "rules", "conveyor-rules_test.yml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}
