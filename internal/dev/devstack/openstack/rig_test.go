package openstack

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestOpenStackConfigFiles renders the rig's configuration into a scratch state
// directory: every template executes, each region's files name that region's ports,
// databases and vhost, and the RabbitMQ user's hash matches its password.
func TestOpenStackConfigFiles(t *testing.T) {
	for _, f := range []string{"nova/api-paste.ini", "glance/glance-api-paste.ini", "neutron/api-paste.ini"} {
		if _, err := os.Stat(filepath.Join(pasteDir, f)); err != nil {
			t.Fatalf("%v: the OpenStack packages' paste files are missing; `make deps` (tools/deps.sh) installs them", err)
		}
	}
	rig := New(Stack{Dir: t.TempDir(), Secret: func(name string) string { return "secret-of-" + name }, Say: t.Logf})
	if err := rig.writeConfig(); err != nil {
		t.Fatal(err)
	}
	read := func(elem ...string) string {
		t.Helper()
		b, err := os.ReadFile(rig.path(elem...))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("<no value>")) {
			t.Errorf("%s has an unfilled template value", filepath.Join(elem...))
		}
		return string(b)
	}
	sec := rig.credentials()
	keystone := read("etc", "keystone", "keystone.conf")
	if !strings.Contains(keystone, "/keystone?") || !strings.Contains(keystone, sec.db) {
		t.Errorf("keystone.conf does not point at the keystone database with the database password:\n%s", keystone)
	}
	for _, r := range regions {
		nova := read("etc", "nova-"+r.Name, "nova.conf")
		for _, want := range []string{
			"host = compute-" + r.Name,
			"/nova_api_" + r.Name + "?", "/nova_" + r.Name + "?",
			":5682/nova_" + r.Name + "\n",
			"region_name = " + r.Name,
			"osapi_compute_listen_port = " + strconv.Itoa(r.Nova),
			"compute_driver = conveyor_fake.SnapshotFakeDriver",
			"password = " + sec.service,
		} {
			if !strings.Contains(nova, want) {
				t.Errorf("nova.conf of %s lacks %q", r.Name, want)
			}
		}
		glance := read("etc", "glance-"+r.Name, "glance-api.conf")
		if !strings.Contains(glance, "bind_port = "+strconv.Itoa(r.GlancePt)) || !strings.Contains(glance, "/glance_"+r.Name+"?") {
			t.Errorf("glance-api.conf of %s has the wrong port or database:\n%s", r.Name, glance)
		}
		placement := read("etc", "placement-"+r.Name, "placement.conf")
		if !strings.Contains(placement, "/placement_"+r.Name+"?") {
			t.Errorf("placement.conf of %s has the wrong database:\n%s", r.Name, placement)
		}
		read("etc", "nova-"+r.Name, "api-paste.ini")
		read("etc", "glance-"+r.Name, "glance-api-paste.ini")
	}
	read("etc", "neutron", "neutron.conf")
	read("etc", "launch.py")

	var defs struct {
		Users []struct {
			Name         string `json:"name"`
			PasswordHash string `json:"password_hash"`
		} `json:"users"`
		Vhosts []struct{ Name string } `json:"vhosts"`
	}
	if err := json.Unmarshal([]byte(read("rabbitmq", "definitions.json")), &defs); err != nil {
		t.Fatal(err)
	}
	if len(defs.Users) != 1 {
		t.Fatalf("definitions have %d users, want 1", len(defs.Users))
	}
	raw, err := base64.StdEncoding.DecodeString(defs.Users[0].PasswordHash)
	if err != nil || len(raw) != 4+sha256.Size {
		t.Fatalf("password_hash %q is not base64(salt(4) ++ sha256): %v", defs.Users[0].PasswordHash, err)
	}
	if sum := sha256.Sum256(append(raw[:4:4], sec.rabbit...)); !bytes.Equal(sum[:], raw[4:]) {
		t.Errorf("password_hash does not hash the RabbitMQ password")
	}
	var vhosts []string
	for _, v := range defs.Vhosts {
		vhosts = append(vhosts, v.Name)
	}
	if got, want := strings.Join(vhosts, ","), "neutron,nova_eqiad1,nova_eqiad2"; got != want {
		t.Errorf("vhosts = %s, want %s", got, want)
	}
}
