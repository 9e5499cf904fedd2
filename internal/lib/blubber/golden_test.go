package blubber

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The golden Dockerfiles under testdata/golden/<config>/<variant>.Dockerfile are
// what the configs under testdata/ render to. After an intended change to the
// rendering, regenerate them and review the diff:
//
//	go test ./internal/lib/blubber -run TestGolden -update
var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

func TestGolden(t *testing.T) {
	configs, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil || len(configs) == 0 {
		t.Fatalf("no configs under testdata (err %v)", err)
	}
	for _, f := range configs {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			c, err := ParseFile(f)
			if err != nil {
				t.Fatalf("lint: %v", err)
			}
			for _, v := range c.VariantNames() {
				got, err := c.Dockerfile(v)
				if err != nil {
					t.Fatalf("Dockerfile(%s): %v", v, err)
				}
				golden := filepath.Join("testdata", "golden", name, v+".Dockerfile")
				if *update {
					if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v; run `go test ./internal/lib/blubber -run TestGolden -update` to create it", err)
				}
				if got != string(want) {
					t.Errorf("Dockerfile(%s) differs from %s; if the change is intended, run `go test ./internal/lib/blubber -run TestGolden -update` and review the diff.\ngot:\n%s", v, golden, got)
				}
			}
		})
	}
}
