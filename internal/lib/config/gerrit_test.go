package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGerritSectionFileAndEnvironment(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "conveyor.yaml")
	if err := os.WriteFile(path, []byte("gerrit:\n  url: https://gerrit.example.org/r\n  username: bot\n  passwordFile: "+pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"CONVEYOR_GERRIT_URL", "CONVEYOR_GERRIT_USERNAME", "CONVEYOR_GERRIT_PASSWORD", "CONVEYOR_GERRIT_PASSWORD_FILE"} {
		t.Setenv(v, "")
	}
	c, err := Load(path, true)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Gerrit.HTTPPassword()
	if err != nil || got != "s3cret" || c.Gerrit.URL != "https://gerrit.example.org/r" || c.Gerrit.Username != "bot" {
		t.Errorf("gerrit %+v, password %q, %v", c.Gerrit, got, err)
	}

	t.Setenv("CONVEYOR_GERRIT_URL", "http://127.0.0.1:9")
	t.Setenv("CONVEYOR_GERRIT_PASSWORD", "from-env")
	c, err = Load(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Gerrit.HTTPPassword(); got != "from-env" || c.Gerrit.URL != "http://127.0.0.1:9" {
		t.Errorf("environment did not override: %+v", c.Gerrit)
	}

	empty := filepath.Join(dir, "empty")
	_ = os.WriteFile(empty, []byte("\n"), 0o600)
	if _, err := (Gerrit{PasswordFile: empty}).HTTPPassword(); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty password file: %v", err)
	}
}

func TestWriteOmitsAnEmptyGerritSection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "conveyor.yaml")
	if err := Write(path, Defaults()); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "gerrit") {
		t.Errorf("the local stack's configuration gained a gerrit section:\n%s", b)
	}
}
