package pipelineconfig

import (
	"strings"
	"testing"

	"github.com/wikimedia/conveyor/activities/contract"
)

// padded is content followed by a YAML comment that makes it size bytes long: a
// valid file, too large only by its size.
func padded(content string, size int) string {
	return content + "#" + strings.Repeat("x", size-len(content)-2) + "\n"
}

func TestOversizedFilesAreRefusedUnread(t *testing.T) {
	for name, tc := range map[string]struct {
		files   map[string]string
		typ     string
		problem string
	}{
		"settings": {map[string]string{
			".pipeline/blubber.yaml": blubberTestAndProduction,
			ConfigFile:               padded("pipeline:\n  image: hello\n", 2<<20),
		}, contract.ErrInvalidConfig, ".pipeline/config.yaml: is 2.0 MiB (2097152 bytes), over the limit of 1.0 MiB (1048576 bytes) for the pipeline settings"},
		"blubber": {map[string]string{
			".pipeline/blubber.yaml": padded(blubberTestAndProduction, 1<<20+1),
		}, contract.ErrInvalidBlubber, ".pipeline/blubber.yaml: is 1.0 MiB (1048577 bytes), over the limit of 1.0 MiB (1048576 bytes) for a Blubber config"},
	} {
		_, err := ParseSettings(repoWith(t, tc.files), "hello")
		inv := invalid(t, err)
		if len(inv.Problems) != 1 || inv.Type() != tc.typ {
			t.Fatalf("%s: problems %v (type %s); want one, %s", name, inv.Problems, inv.Type(), tc.typ)
		}
		if msg := inv.Problems[0].String(); !strings.HasPrefix(msg, tc.problem) {
			t.Errorf("%s: problem %q; want it to start %q", name, msg, tc.problem)
		}
	}
}
