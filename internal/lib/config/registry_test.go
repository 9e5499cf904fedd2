package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRegistryPasswordFile(t *testing.T) {
	for _, v := range []string{"CONVEYOR_REGISTRY_PASSWORD", "CONVEYOR_REGISTRY_PASSWORD_FILE"} {
		t.Setenv(v, "")
	}
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("push-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(body string) string {
		p := filepath.Join(dir, "conveyor.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	c, err := Load(write("registry:\n  address: r.example.org\n  username: ci\n  passwordFile: "+pw+"\n"), true)
	if err != nil || c.Registry.Password != "push-secret" {
		t.Fatalf("password %q, %v; want the file's first line", c.Registry.Password, err)
	}
	c, err = Load(write("registry:\n  password: inline\n  passwordFile: "+pw+"\n"), true)
	if err != nil || c.Registry.Password != "inline" {
		t.Errorf("password %q, %v; want the inline password to win", c.Registry.Password, err)
	}
	for name, body := range map[string]string{
		"missing": "registry:\n  passwordFile: " + filepath.Join(dir, "nope") + "\n",
		"empty":   "registry:\n  passwordFile: /dev/null\n",
	} {
		_, err := Load(write(body), true)
		if err == nil || !strings.Contains(err.Error(), "registry.passwordFile") {
			t.Errorf("%s file: %v, want an error naming registry.passwordFile", name, err)
		}
	}
}
