package temporalsetup

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestVersionLess(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"1.9", "1.19", true},
		{"1.19", "1.9", false},
		{"1.19", "1.19", false},
		{"0.0", "1.0", true},
		{"1.2", "1.2.1", true},
		{"v1.3", "1.2", false},
		{"2.0", "10.0", true},
	} {
		got, err := versionLess(tc.a, tc.b)
		if err != nil || got != tc.want {
			t.Errorf("versionLess(%q, %q) = %v, %v; want %v", tc.a, tc.b, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "1.x", "1..2", "-1.0"} {
		if _, err := versionLess(bad, "1.0"); err == nil {
			t.Errorf("versionLess(%q, 1.0): no error", bad)
		}
	}
}

// TestSchemaVersionsMatchThePin keeps SchemaVersion and VisibilitySchemaVersion,
// tools/versions.env and the pinned server module's own schema versions in step: a
// new server pin that expects a newer schema fails here, not in production.
func TestSchemaVersionsMatchThePin(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	env := readEnv(t, filepath.Join(root, "tools", "versions.env"))
	if env["TEMPORAL_SCHEMA_VERSION"] != SchemaVersion || env["TEMPORAL_VISIBILITY_SCHEMA_VERSION"] != VisibilitySchemaVersion {
		t.Errorf("tools/versions.env says schema %q, visibility %q; the code says %s, %s",
			env["TEMPORAL_SCHEMA_VERSION"], env["TEMPORAL_VISIBILITY_SCHEMA_VERSION"], SchemaVersion, VisibilitySchemaVersion)
	}
	// The wrapper module that builds the server pins the same release.
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}} {{.Dir}}", "go.temporal.io/server")
	cmd.Dir = filepath.Join(root, "tools", "temporal-server")
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list in tools/temporal-server: %v", err)
	}
	version, dir, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if version != env["TEMPORAL_SERVER_VERSION"] {
		t.Errorf("tools/temporal-server/go.mod pins go.temporal.io/server %s, tools/versions.env says %s", version, env["TEMPORAL_SERVER_VERSION"])
	}
	if dir == "" {
		cmd := exec.Command("go", "mod", "download", "-json", "go.temporal.io/server@"+version)
		cmd.Dir = filepath.Join(root, "tools", "temporal-server")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("downloading go.temporal.io/server@%s: %v\n%s", version, err, out)
		}
		if out, err = exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "go.temporal.io/server@"+version).Output(); err != nil {
			t.Fatal(err)
		}
		dir = strings.TrimSpace(string(out))
	}
	src, err := os.ReadFile(filepath.Join(dir, "schema", "postgresql", "v12", "version.go"))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"Version": SchemaVersion, "VisibilityVersion": VisibilitySchemaVersion} {
		m := regexp.MustCompile(`(?m)^const ` + name + ` = "([0-9.]+)"`).FindSubmatch(src)
		if m == nil {
			t.Fatalf("no const %s in the server's schema/postgresql/v12/version.go", name)
		}
		if string(m[1]) != want {
			t.Errorf("go.temporal.io/server %s expects %s %s; conveyor says %s", version, name, m[1], want)
		}
	}
}

func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	return env
}
