package helm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wikimedia/conveyor/activities/contract"
)

// A repository's chart is bounded before Helm reads it; no cluster is needed to
// refuse it.
func TestLoadChartRefusesAnOversizedChart(t *testing.T) {
	src := gitRepo(t, func(dir string) {
		chart := filepath.Join(dir, "deploy", "chart")
		if err := os.MkdirAll(filepath.Join(chart, "templates"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(chart, "Chart.yaml"), "apiVersion: v2\nname: big\nversion: 0.1.0\n")
		writeFile(t, filepath.Join(chart, "templates", "big.yaml"), "# "+strings.Repeat("x", 2<<20)+"\n")
	})
	a := &Activities{stateDir: t.TempDir()}
	_, _, err := a.loadChart(context.Background(), "deploy/chart", src)
	wantAppError(t, err, contract.ErrChart, `chart.path "deploy/chart"`, "deploy/chart/templates/big.yaml is 2.0 MiB",
		"over the limit of 1.0 MiB (1048576 bytes) for a file of a chart")
}
