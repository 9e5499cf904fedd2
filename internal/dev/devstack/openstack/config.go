package openstack

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/wikimedia/conveyor/internal/dev/devstack/proc"
)

//go:embed *.tmpl launch.py
var assets embed.FS

// templateData is what the configuration templates see.
type templateData struct {
	Dir     string
	Region  string
	secrets credentials
	region  region
}

// DB is the SQLAlchemy URL of a database.
func (d templateData) DB(name string) string {
	return fmt.Sprintf("mysql+pymysql://%s:%s@127.0.0.1:%d/%s?charset=utf8", dbUser, d.secrets.db, mariaDBPort, name)
}

// Rabbit is the oslo.messaging transport URL of a vhost.
func (d templateData) Rabbit(vhost string) string {
	return fmt.Sprintf("rabbit://%s:%s@127.0.0.1:%d/%s", rabbitUser, d.secrets.rabbit, rabbitPort, vhost)
}

// Port is a service's port in the template's region.
func (d templateData) Port(service string) int {
	switch service {
	case "nova":
		return d.region.Nova
	case "placement":
		return d.region.Placement
	case "glance":
		return d.region.GlancePt
	case "neutron":
		return 9696
	}
	panic("no port for " + service)
}

// ServiceAuth is the keystoneauth password plugin of a service user.
func (d templateData) ServiceAuth(user string) string {
	return strings.Join([]string{
		"auth_type = password",
		"auth_url = http://" + keystoneAddr + "/v3",
		"project_domain_name = " + domain,
		"user_domain_name = " + domain,
		"project_name = service",
		"username = " + user,
		"password = " + d.secrets.service,
	}, "\n")
}

// Authtoken is the keystonemiddleware section of a service.
func (d templateData) Authtoken(user string) string {
	return "www_authenticate_uri = http://" + keystoneAddr + "/v3\n" + d.ServiceAuth(user)
}

// writeConfig writes every service's configuration (each up, so a change in the
// templates takes effect on the next restart), the paste files and the launcher.
func (rig *Rig) writeConfig() error {
	sec := rig.credentials()
	for _, d := range []string{"done", "keystone/fernet-keys", "keystone/credential-keys", "neutron/locks", "rabbitmq/mnesia", "rabbitmq/log"} {
		if err := os.MkdirAll(rig.path(d), 0o700); err != nil {
			return err
		}
	}
	render := func(tmpl, dest string, d templateData) error {
		b, err := assets.ReadFile(tmpl)
		if err != nil {
			return err
		}
		t, err := template.New(tmpl).Option("missingkey=error").Parse(string(b))
		if err != nil {
			return err
		}
		var out bytes.Buffer
		if err := t.Execute(&out, d); err != nil {
			return err
		}
		return proc.WriteFile(dest, out.String(), 0o600)
	}
	copyPaste := func(src, dest string) error {
		b, err := os.ReadFile(filepath.Join(pasteDir, src))
		if err != nil {
			return fmt.Errorf("%w (run `make deps`)", err)
		}
		return proc.WriteFile(dest, string(b), 0o644)
	}
	etc := func(elem ...string) string { return rig.path(append([]string{"etc"}, elem...)...) }
	base := templateData{Dir: rig.path(), secrets: sec}
	if err := render("keystone.conf.tmpl", etc("keystone", "keystone.conf"), base); err != nil {
		return err
	}
	if err := render("neutron.conf.tmpl", etc("neutron", "neutron.conf"), base); err != nil {
		return err
	}
	if err := copyPaste("neutron/api-paste.ini", etc("neutron", "api-paste.ini")); err != nil {
		return err
	}
	launcher, err := assets.ReadFile("launch.py")
	if err != nil {
		return err
	}
	if err := proc.WriteFile(etc("launch.py"), string(launcher), 0o644); err != nil {
		return err
	}
	for _, r := range regions {
		d := base
		d.Region, d.region = r.Name, r
		for _, sub := range []string{"glance-" + r.Name + "/images", "glance-" + r.Name + "/staging",
			"glance-" + r.Name + "/tasks", "glance-" + r.Name + "/locks", "nova-" + r.Name + "/instances", "nova-" + r.Name + "/locks"} {
			if err := os.MkdirAll(rig.path(sub), 0o700); err != nil {
				return err
			}
		}
		if err := render("placement.conf.tmpl", etc("placement-"+r.Name, "placement.conf"), d); err != nil {
			return err
		}
		if err := render("glance-api.conf.tmpl", etc("glance-"+r.Name, "glance-api.conf"), d); err != nil {
			return err
		}
		if err := copyPaste("glance/glance-api-paste.ini", etc("glance-"+r.Name, "glance-api-paste.ini")); err != nil {
			return err
		}
		if err := render("nova.conf.tmpl", etc("nova-"+r.Name, "nova.conf"), d); err != nil {
			return err
		}
		if err := copyPaste("nova/api-paste.ini", etc("nova-"+r.Name, "api-paste.ini")); err != nil {
			return err
		}
	}
	return rig.writeRabbitConfig(sec)
}

// writeRabbitConfig writes RabbitMQ's configuration and the definitions it loads at
// boot: the user, one vhost per region's nova and one for neutron.
func (rig *Rig) writeRabbitConfig(sec credentials) error {
	dir := rig.path("rabbitmq")
	conf := strings.Join([]string{
		fmt.Sprintf("listeners.tcp.default = 127.0.0.1:%d", rabbitPort),
		"loopback_users = none",
		"load_definitions = " + filepath.Join(dir, "definitions.json"),
		"log.console = true",
		"log.console.level = warning",
		"log.file = false",
		"disk_free_limit.absolute = 50MB",
		"",
	}, "\n")
	// rabbit_password_hashing_sha256: base64(salt ++ sha256(salt ++ password)); the
	// salt derives from the password so that the file is stable across ups.
	salt := sha256.Sum256([]byte("conveyor-rabbitmq-salt" + sec.rabbit))
	h := sha256.Sum256(append(append([]byte{}, salt[:4]...), sec.rabbit...))
	hash := base64.StdEncoding.EncodeToString(append(append([]byte{}, salt[:4]...), h[:]...))
	type perm struct {
		User      string `json:"user"`
		Vhost     string `json:"vhost"`
		Configure string `json:"configure"`
		Write     string `json:"write"`
		Read      string `json:"read"`
	}
	defs := map[string]any{
		"users": []map[string]any{{"name": rabbitUser, "password_hash": hash,
			"hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []string{"administrator"}}},
	}
	vhosts := []map[string]string{}
	perms := []perm{}
	names := []string{"neutron"}
	for _, r := range regions {
		names = append(names, "nova_"+r.Name)
	}
	for _, v := range names {
		vhosts = append(vhosts, map[string]string{"name": v})
		perms = append(perms, perm{User: rabbitUser, Vhost: v, Configure: ".*", Write: ".*", Read: ".*"})
	}
	defs["vhosts"] = vhosts
	defs["permissions"] = perms
	b, err := json.MarshalIndent(defs, "", "  ")
	if err != nil {
		return err
	}
	for name, data := range map[string]string{
		"rabbitmq.conf":     conf,
		"definitions.json":  string(b) + "\n",
		"enabled_plugins":   "[].\n",
		"rabbitmq-env.conf": "# conveyor: the environment comes from dev up\n",
		"advanced.config":   "[].\n",
	} {
		if err := proc.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}
