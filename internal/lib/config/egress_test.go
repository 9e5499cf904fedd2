package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestEgressAllowList(t *testing.T) {
	dir := t.TempDir()
	load := func(body string) (Config, error) {
		p := filepath.Join(dir, "conveyor.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return Load(p, true)
	}

	c, err := load("buildkit:\n  address: unix:///run/b.sock\n")
	if err != nil || !slices.Equal(c.Buildkit.Egress.Allow, DefaultEgress) {
		t.Fatalf("no egress key: allow %v, %v; want the package registries %v", c.Buildkit.Egress.Allow, err, DefaultEgress)
	}
	c, err = load("buildkit:\n  egress:\n    allow: [mirror.example.org, \"*.debian.org\"]\n")
	if err != nil || !slices.Equal(c.Buildkit.Egress.Allow, []string{"mirror.example.org", "*.debian.org"}) {
		t.Errorf("explicit list: %v, %v; want it instead of the defaults", c.Buildkit.Egress.Allow, err)
	}
	c, err = load("buildkit:\n  egress:\n    allow: []\n")
	if err != nil || len(c.Buildkit.Egress.Allow) != 0 {
		t.Errorf("empty list: %v, %v; want nothing allowed", c.Buildkit.Egress.Allow, err)
	}
	for _, bad := range []string{"https://registry.npmjs.org", "registry.npmjs.org:443", "deb.debian.org/debian", "*", "a..b"} {
		_, err := load("buildkit:\n  egress:\n    allow: [\"" + bad + "\"]\n")
		if err == nil || !strings.Contains(err.Error(), "buildkit.egress.allow[0]") {
			t.Errorf("allow %q: %v, want an error naming buildkit.egress.allow[0]", bad, err)
		}
	}
}
