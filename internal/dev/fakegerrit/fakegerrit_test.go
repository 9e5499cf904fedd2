package fakegerrit

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestOnlyTestsImportTheFake keeps the fake out of the binaries: no package's
// non-test code may import it.
func TestOnlyTestsImportTheFake(t *testing.T) {
	const self = "github.com/wikimedia/conveyor/internal/dev/fakegerrit"
	out, err := exec.Command("go", "list", "-e", "-json=ImportPath,Imports", "github.com/wikimedia/conveyor/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		for _, i := range p.Imports {
			if i == self {
				t.Errorf("%s imports %s outside its tests", p.ImportPath, self)
			}
		}
	}
	if !strings.Contains(string(out), self) {
		t.Fatal("go list did not list the fake itself")
	}
}
