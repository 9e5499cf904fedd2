package e2e_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoHeavyDependencies keeps the package what its doc says: plain HTTP, usable
// without Kubernetes, Helm or Temporal.
func TestNoHeavyDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"k8s.io/", "helm.sh/", "go.temporal.io/", "github.com/moby/"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("internal/lib/e2e depends on %s", dep)
			}
		}
	}
}
