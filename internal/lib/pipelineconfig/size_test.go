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

func TestOversizedSettingsAreRefusedUnread(t *testing.T) {
	dir := repoWith(t, map[string]string{
		".pipeline/blubber.yaml": blubberTestAndProduction,
		ConfigFile:               padded("pipeline:\n  image: hello\n", 2<<20),
	})
	_, err := ParseSettings(dir, "hello")
	inv := invalid(t, err)
	if len(inv.Problems) != 1 || inv.Type() != contract.ErrInvalidConfig {
		t.Fatalf("problems %v (type %s); want one, InvalidPipelineConfig", inv.Problems, inv.Type())
	}
	msg := inv.Problems[0].String()
	want := ".pipeline/config.yaml: is 2.0 MiB (2097152 bytes), over the limit of 1.0 MiB (1048576 bytes) for the pipeline settings"
	if !strings.HasPrefix(msg, want) {
		t.Errorf("problem %q; want it to start %q", msg, want)
	}
}

func TestOversizedBlubberConfigIsRefusedUnread(t *testing.T) {
	dir := repoWith(t, map[string]string{
		".pipeline/blubber.yaml": padded(blubberTestAndProduction, 1<<20+1),
	})
	_, err := ParseSettings(dir, "hello")
	inv := invalid(t, err)
	if len(inv.Problems) != 1 || inv.Type() != contract.ErrInvalidBlubber {
		t.Fatalf("problems %v (type %s); want one, InvalidBlubberConfig", inv.Problems, inv.Type())
	}
	msg := inv.Problems[0].String()
	want := ".pipeline/blubber.yaml: is 1.0 MiB (1048577 bytes), over the limit of 1.0 MiB (1048576 bytes) for a Blubber config"
	if !strings.HasPrefix(msg, want) {
		t.Errorf("problem %q; want it to start %q", msg, want)
	}
}
