package devstack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/wikimedia/conveyor/internal/lib/config"
)

// The optional OpenStack test rig (`conveyor dev up --with openstack`): a real
// two-region cloud from Debian's packages (OpenStack Zed) sharing one Keystone, for the
// cloud migration's integration tests. Per region: nova (api, conductor, scheduler,
// compute with a fake virt driver), placement and glance; one neutron-server without
// agents, MariaDB and RabbitMQ. Every service is a plain background process of the
// stack, named openstack-*, with its log in logs/ and its pid in run/.
//
// Ports (loopback only): Keystone 5050 (5000 is the registry's), MariaDB 3316,
// RabbitMQ 5682 (epmd 4379, distribution 25682), neutron 9696, and per region
// nova-api, placement and glance (osRegions).
const (
	osKeystoneAddr = "127.0.0.1:5050"
	osMariaDBPort  = 3316
	osRabbitPort   = 5682
	osEPMDPort     = 4379
	osNeutronAddr  = "127.0.0.1:9696"
	osAdminUser    = "admin"
	osAdminProject = "admin"
	osDomain       = "Default"
	osDBUser       = "conveyor"
	osRabbitUser   = "conveyor"
	// OpenStackFlavor and OpenStackImage exist in every region of the rig: a small
	// flavor, and a public raw image of a few bytes that servers can boot from
	// (the fake driver boots anything).
	OpenStackFlavor = "conveyor.small"
	OpenStackImage  = "conveyor-fake"
)

// osPasteDir is where tools/deps.sh puts the paste ini files of Debian's nova-common,
// glance-common and neutron-common packages (etc/<service>/...), which the rig takes
// without installing those packages.
const osPasteDir = "/usr/local/share/conveyor/openstack"

// osRegion is one deployment of the pair.
type osRegion struct {
	Name                      string
	Nova, Placement, GlancePt int
}

var osRegions = []osRegion{
	{Name: "eqiad1", Nova: 8774, Placement: 8778, GlancePt: 9292},
	{Name: "eqiad2", Nova: 8784, Placement: 8788, GlancePt: 9392},
}

//go:embed openstack
var openstackAssets embed.FS

// osBinaries are the programs the rig runs; missing ones mean the packages are not
// installed.
var osBinaries = []string{
	"/usr/sbin/mariadbd", "/usr/bin/mariadb-install-db", "/usr/bin/mariadb",
	"/usr/lib/rabbitmq/bin/rabbitmq-server", "/usr/bin/epmd", "/usr/bin/uwsgi-core",
	"/usr/lib/uwsgi/plugins/python3_plugin.so", "/usr/bin/keystone-wsgi-public", "/usr/bin/placement-api",
	osPython, "/usr/lib/python3/dist-packages/keystone", "/usr/lib/python3/dist-packages/placement",
	"/usr/lib/python3/dist-packages/glance", "/usr/lib/python3/dist-packages/nova",
	"/usr/lib/python3/dist-packages/neutron", "/usr/lib/python3/dist-packages/pymysql",
}

// osPython is Debian's Python, which has the OpenStack packages (not whatever
// python3 comes first on the PATH).
const osPython = "/usr/bin/python3"

// osScript is a console script of the OpenStack packages run by the rig's launcher
// (openstack/launch.py): Debian ships the entry points in the python3-* packages but
// the scripts in the service packages, which the rig does not install.
func (s *stack) osScript(name string, args ...string) (string, []string) {
	return osPython, append([]string{s.osDir("etc", "launch.py"), name}, args...)
}

func openstackComponent() component {
	return component{
		name:     "openstack",
		optional: true,
		address: func(*stack) string {
			return "Keystone http://" + osKeystoneAddr + "/v3, regions eqiad1 eqiad2"
		},
		timeout: 2 * time.Minute,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			return nil, s.openstackUp(ctx)
		},
		ready: func(ctx context.Context, s *stack) error { return s.openstackReady(ctx) },
		beforeStop: func(ctx context.Context, s *stack) error {
			return s.openstackDown()
		},
	}
}

// osProc is one process of the rig.
type osProc struct {
	process
	// ready says the process answers; nil means being alive is enough.
	ready func(context.Context) error
	// grace is how long Down waits after SIGTERM.
	grace time.Duration
}

// osDir is the rig's state directory.
func (s *stack) osDir(elem ...string) string {
	return s.path(append([]string{"openstack"}, elem...)...)
}

func (s *stack) osSocket() string { return s.osDir("mysql.sock") }

// osProcs lists the rig's processes in start order.
func (s *stack) osProcs() []osProc {
	dir := s.osDir()
	uwsgi := func(addr, wsgiFile string) []string {
		return []string{"--plugin", "python3", "--http-socket", addr, "--wsgi-file", wsgiFile,
			"--master", "--processes", "1", "--threads", "4", "--die-on-term", "--need-app",
			// Without it, clients that reuse connections get resets.
			"--add-header", "Connection: close"}
	}
	script := func(proc, name string, args ...string) process {
		bin, a := s.osScript(name, args...)
		return process{Name: "openstack-" + proc, Bin: bin, Args: a}
	}
	rabbitEnv := []string{
		"HOME=" + s.osDir("rabbitmq"), // the Erlang cookie
		"RABBITMQ_NODENAME=conveyor@localhost",
		"RABBITMQ_CONFIG_FILE=" + s.osDir("rabbitmq", "rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE=" + s.osDir("rabbitmq", "advanced.config"),
		"RABBITMQ_CONF_ENV_FILE=" + s.osDir("rabbitmq", "rabbitmq-env.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + s.osDir("rabbitmq", "enabled_plugins"),
		"RABBITMQ_MNESIA_BASE=" + s.osDir("rabbitmq", "mnesia"),
		"RABBITMQ_LOG_BASE=" + s.osDir("rabbitmq", "log"),
		"RABBITMQ_PID_FILE=" + s.osDir("rabbitmq", "rabbitmq.pid"),
		"RABBITMQ_LOGS=-",
		fmt.Sprintf("RABBITMQ_DIST_PORT=%d", osRabbitPort+20000),
		fmt.Sprintf("ERL_EPMD_PORT=%d", osEPMDPort),
		"ERL_EPMD_ADDRESS=127.0.0.1",
	}
	ps := []osProc{
		{process: process{Name: "openstack-mariadb", Bin: "/usr/sbin/mariadbd", Args: []string{
			"--no-defaults", "--user=root", "--datadir=" + s.osDir("mysql"), "--socket=" + s.osSocket(),
			fmt.Sprintf("--port=%d", osMariaDBPort), "--bind-address=127.0.0.1",
			"--pid-file=" + s.osDir("mysql.pid"), "--skip-name-resolve", "--max-connections=1000",
			"--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
			"--innodb-buffer-pool-size=128M", "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
		}}, ready: func(ctx context.Context) error { return unixOpen(ctx, s.osSocket()) }, grace: 60 * time.Second},
		// RabbitMQ's Erlang would start epmd as a daemon outside the stack's process
		// groups; running it here keeps `dev down` complete.
		{process: process{Name: "openstack-epmd", Bin: "/usr/bin/epmd", Args: []string{
			"-port", fmt.Sprint(osEPMDPort), "-address", "127.0.0.1"}},
			ready: func(ctx context.Context) error { return tcpOpen(ctx, fmt.Sprintf("127.0.0.1:%d", osEPMDPort)) }},
		{process: process{Name: "openstack-rabbitmq", Bin: "/usr/lib/rabbitmq/bin/rabbitmq-server", Env: rabbitEnv},
			ready: func(ctx context.Context) error { return tcpOpen(ctx, fmt.Sprintf("127.0.0.1:%d", osRabbitPort)) },
			grace: 30 * time.Second},
		{process: process{Name: "openstack-keystone", Bin: "/usr/bin/uwsgi-core",
			Args: uwsgi(osKeystoneAddr, "/usr/bin/keystone-wsgi-public"),
			Env:  []string{"OS_KEYSTONE_CONFIG_DIR=" + filepath.Join(dir, "etc", "keystone")}},
			ready: func(ctx context.Context) error { return httpAnswers(ctx, "http://"+osKeystoneAddr+"/v3") }},
		{process: script("neutron", "neutron-server", "--config-file", filepath.Join(dir, "etc", "neutron", "neutron.conf")),
			ready: func(ctx context.Context) error { return httpAnswers(ctx, "http://"+osNeutronAddr+"/") }},
	}
	for _, r := range osRegions {
		etc := func(svc, file string) string { return filepath.Join(dir, "etc", svc+"-"+r.Name, file) }
		regional := func(p process) process { p.Name += "-" + r.Name; return p }
		nova := etc("nova", "nova.conf")
		placementURL := fmt.Sprintf("http://127.0.0.1:%d/", r.Placement)
		glanceURL := fmt.Sprintf("http://127.0.0.1:%d/versions", r.GlancePt)
		novaURL := fmt.Sprintf("http://127.0.0.1:%d/", r.Nova)
		ps = append(ps,
			osProc{process: process{Name: "openstack-placement-" + r.Name, Bin: "/usr/bin/uwsgi-core",
				Args: uwsgi(fmt.Sprintf("127.0.0.1:%d", r.Placement), "/usr/bin/placement-api"),
				Env:  []string{"OS_PLACEMENT_CONFIG_DIR=" + filepath.Join(dir, "etc", "placement-"+r.Name)}},
				ready: func(ctx context.Context) error { return httpAnswers(ctx, placementURL) }},
			osProc{process: regional(script("glance", "glance-api", "--config-file", etc("glance", "glance-api.conf"))),
				ready: func(ctx context.Context) error { return httpAnswers(ctx, glanceURL) }},
			osProc{process: regional(script("nova-api", "nova-api", "--config-file", nova)),
				ready: func(ctx context.Context) error { return httpAnswers(ctx, novaURL) }},
			osProc{process: regional(script("nova-conductor", "nova-conductor", "--config-file", nova))},
			osProc{process: regional(script("nova-scheduler", "nova-scheduler", "--config-file", nova))},
			osProc{process: regional(script("nova-compute", "nova-compute", "--config-file", nova))},
		)
	}
	return ps
}

// osSecrets are the rig's credentials, kept in the state directory's secrets/.
type osSecrets struct{ admin, service, db, rabbit string }

func (s *stack) osSecrets() osSecrets {
	return osSecrets{
		admin:   s.secret("openstack-admin-password"),
		service: s.secret("openstack-service-password"),
		db:      s.secret("openstack-db-password"),
		rabbit:  s.secret("openstack-rabbitmq-password"),
	}
}

// openstackConfig is what the configuration file says about the rig.
func (s *stack) openstackConfig() config.OpenStack {
	c := config.OpenStack{
		AuthURL:     "http://" + osKeystoneAddr + "/v3",
		Username:    osAdminUser,
		Password:    s.osSecrets().admin,
		ProjectName: osAdminProject,
		Domain:      osDomain,
		Deployments: map[string]config.OpenStackDeployment{},
	}
	for _, r := range osRegions {
		c.Deployments[r.Name] = config.OpenStackDeployment{Region: r.Name}
	}
	return c
}

// openstackWanted says whether the rig is part of this stack: asked for now, or
// brought up before (its state directory exists).
func (s *stack) openstackWanted() bool {
	for _, c := range s.components() {
		if c.name == "openstack" && s.wanted(c) {
			return true
		}
	}
	_, err := os.Stat(s.osDir("done", "ready"))
	return err == nil
}

// openstackUp starts what is not running and bootstraps what is not bootstrapped
// yet; on a rig that is up it only checks.
func (s *stack) openstackUp(ctx context.Context) error {
	start := time.Now()
	if err := osCheckInstalled(); err != nil {
		return err
	}
	if err := s.osWriteConfig(); err != nil {
		return fmt.Errorf("writing the OpenStack configuration: %w", err)
	}
	procs := s.osProcs()
	byName := map[string]osProc{}
	for _, p := range procs {
		byName[p.Name] = p
	}
	// MariaDB and RabbitMQ first: RabbitMQ's start is the slowest part, so it
	// boots while the databases are synced.
	if err := s.osInitMariaDB(ctx); err != nil {
		return err
	}
	for _, n := range []string{"openstack-mariadb", "openstack-epmd", "openstack-rabbitmq"} {
		if err := s.osStart(byName[n]); err != nil {
			return err
		}
	}
	if err := s.osWait(ctx, byName["openstack-mariadb"], time.Minute); err != nil {
		return err
	}
	if err := s.osDatabases(ctx); err != nil {
		return err
	}
	if err := s.osSyncDatabases(ctx); err != nil {
		return err
	}
	if err := s.osStart(byName["openstack-keystone"]); err != nil {
		return err
	}
	if err := s.osWait(ctx, byName["openstack-keystone"], time.Minute); err != nil {
		return err
	}
	if err := s.osCatalog(ctx); err != nil {
		return fmt.Errorf("registering services and endpoints in Keystone: %w", err)
	}
	if err := s.osWait(ctx, byName["openstack-rabbitmq"], 3*time.Minute); err != nil {
		return err
	}
	started := false
	for _, p := range procs {
		if _, ok := s.running(p.Name); !ok {
			started = true
		}
		if err := s.osStart(p); err != nil {
			return err
		}
	}
	if started {
		s.say("openstack: waiting for the APIs to answer")
	}
	for _, p := range procs {
		if err := s.osWait(ctx, p, 3*time.Minute); err != nil {
			return err
		}
	}
	if err := s.osRegionsReady(ctx); err != nil {
		return err
	}
	if err := writeFile(s.osDir("done", "ready"), time.Now().UTC().Format(time.RFC3339)+"\n", 0o644); err != nil {
		return err
	}
	if started {
		s.say("openstack: ready in %.0fs (logs: %s)", time.Since(start).Seconds(), s.logFile("openstack-*"))
	}
	return nil
}

// openstackReady checks every process is alive and every API answers.
func (s *stack) openstackReady(ctx context.Context) error {
	var down []string
	procs := s.osProcs()
	for _, p := range procs {
		if _, ok := s.running(p.Name); !ok {
			down = append(down, p.Name)
			continue
		}
		if p.ready != nil {
			if err := p.ready(ctx); err != nil {
				down = append(down, fmt.Sprintf("%s (%v)", p.Name, err))
			}
		}
	}
	if len(down) == len(procs) {
		return errors.New("stopped; `conveyor dev up --with openstack` starts it")
	}
	if len(down) > 0 {
		return fmt.Errorf("not running or not answering: %s; logs in %s (`conveyor dev up --with openstack` restarts what is down)",
			strings.Join(down, ", "), s.path("logs"))
	}
	return nil
}

// openstackDown stops the rig's processes: the services at once (nova's wait out
// their graceful shutdown, seconds each), then Keystone, RabbitMQ and MariaDB.
func (s *stack) openstackDown() error {
	procs := s.osProcs()
	errs := []error{}
	if err := os.Remove(s.osDir("done", "ready")); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	base := map[string]bool{"openstack-mariadb": true, "openstack-epmd": true, "openstack-rabbitmq": true, "openstack-keystone": true}
	type result struct {
		stopped bool
		err     error
	}
	results := make([]result, len(procs))
	stop := func(i int) {
		g := procs[i].grace
		if g == 0 {
			g = 15 * time.Second
		}
		results[i].stopped, results[i].err = s.stop(procs[i].Name, g)
	}
	var wg sync.WaitGroup
	for i, p := range procs {
		if !base[p.Name] {
			wg.Add(1)
			go func() { defer wg.Done(); stop(i) }()
		}
	}
	wg.Wait()
	for i := len(procs) - 1; i >= 0; i-- {
		if base[procs[i].Name] {
			stop(i)
		}
	}
	for i := len(procs) - 1; i >= 0; i-- {
		if results[i].err != nil {
			errs = append(errs, results[i].err)
		} else if results[i].stopped {
			s.say("%-24s stopped", procs[i].Name)
		}
	}
	return errors.Join(errs...)
}

func osCheckInstalled() error {
	var missing []string
	for _, b := range osBinaries {
		if _, err := os.Stat(b); err != nil {
			missing = append(missing, b)
		}
	}
	for _, f := range []string{"nova/api-paste.ini", "glance/glance-api-paste.ini", "neutron/api-paste.ini"} {
		if _, err := os.Stat(filepath.Join(osPasteDir, f)); err != nil {
			missing = append(missing, filepath.Join(osPasteDir, f))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the OpenStack packages are not installed (missing %s): run `make deps` (tools/deps.sh) as root",
			strings.Join(missing, ", "))
	}
	return nil
}

// osStart starts p unless it runs.
func (s *stack) osStart(p osProc) error {
	if _, ok := s.running(p.Name); ok {
		return nil
	}
	s.say("openstack: starting %s", p.Name)
	if _, err := s.start(p.process); err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	return nil
}

// osWait polls p's readiness until it answers, dies or the timeout passes; the error
// names the log and shows its last lines.
func (s *stack) osWait(ctx context.Context, p osProc, timeout time.Duration) error {
	check := p.ready
	if check == nil {
		check = func(context.Context) error { return nil }
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		_, alive := s.running(p.Name)
		var err error
		if !alive {
			err = errors.New("exited")
		} else {
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			err = check(cctx)
			ccancel()
			if err == nil {
				return nil
			}
		}
		if !alive || ctx.Err() != nil {
			msg := fmt.Sprintf("%s is not ready (%v)\n  log: %s", p.Name, err, s.logFile(p.Name))
			if tail := s.logTail(p.Name, 15); tail != "" {
				msg += "\n  last lines:\n" + indent(tail, "    ")
			}
			return errors.New(msg)
		}
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// httpAnswers checks that url answers HTTP with anything but a server error (version
// documents answer 300 on some services).
func httpAnswers(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// osTemplateData is what the configuration templates see.
type osTemplateData struct {
	Dir     string
	Region  string
	secrets osSecrets
	region  osRegion
}

// DB is the SQLAlchemy URL of a database.
func (d osTemplateData) DB(name string) string {
	return fmt.Sprintf("mysql+pymysql://%s:%s@127.0.0.1:%d/%s?charset=utf8", osDBUser, d.secrets.db, osMariaDBPort, name)
}

// Rabbit is the oslo.messaging transport URL of a vhost.
func (d osTemplateData) Rabbit(vhost string) string {
	return fmt.Sprintf("rabbit://%s:%s@127.0.0.1:%d/%s", osRabbitUser, d.secrets.rabbit, osRabbitPort, vhost)
}

// Port is a service's port in the template's region.
func (d osTemplateData) Port(service string) int {
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
func (d osTemplateData) ServiceAuth(user string) string {
	return strings.Join([]string{
		"auth_type = password",
		"auth_url = http://" + osKeystoneAddr + "/v3",
		"project_domain_name = " + osDomain,
		"user_domain_name = " + osDomain,
		"project_name = service",
		"username = " + user,
		"password = " + d.secrets.service,
	}, "\n")
}

// Authtoken is the keystonemiddleware section of a service.
func (d osTemplateData) Authtoken(user string) string {
	return "www_authenticate_uri = http://" + osKeystoneAddr + "/v3\n" + d.ServiceAuth(user)
}

// osWriteConfig writes every service's configuration (each up, so a change in the
// templates takes effect on the next restart), the paste files and the launcher.
func (s *stack) osWriteConfig() error {
	sec := s.osSecrets()
	for _, d := range []string{"done", "keystone/fernet-keys", "keystone/credential-keys", "neutron/locks", "rabbitmq/mnesia", "rabbitmq/log"} {
		if err := os.MkdirAll(s.osDir(d), 0o700); err != nil {
			return err
		}
	}
	render := func(tmpl, dest string, d osTemplateData) error {
		b, err := openstackAssets.ReadFile("openstack/" + tmpl)
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
		return writeFile(dest, out.String(), 0o600)
	}
	copyPaste := func(src, dest string) error {
		b, err := os.ReadFile(filepath.Join(osPasteDir, src))
		if err != nil {
			return fmt.Errorf("%w (run `make deps`)", err)
		}
		return writeFile(dest, string(b), 0o644)
	}
	etc := func(elem ...string) string { return s.osDir(append([]string{"etc"}, elem...)...) }
	base := osTemplateData{Dir: s.osDir(), secrets: sec}
	if err := render("keystone.conf.tmpl", etc("keystone", "keystone.conf"), base); err != nil {
		return err
	}
	if err := render("neutron.conf.tmpl", etc("neutron", "neutron.conf"), base); err != nil {
		return err
	}
	if err := copyPaste("neutron/api-paste.ini", etc("neutron", "api-paste.ini")); err != nil {
		return err
	}
	launcher, err := openstackAssets.ReadFile("openstack/launch.py")
	if err != nil {
		return err
	}
	if err := writeFile(etc("launch.py"), string(launcher), 0o644); err != nil {
		return err
	}
	for _, r := range osRegions {
		d := base
		d.Region, d.region = r.Name, r
		for _, sub := range []string{"glance-" + r.Name + "/images", "glance-" + r.Name + "/staging",
			"glance-" + r.Name + "/tasks", "glance-" + r.Name + "/locks", "nova-" + r.Name + "/instances", "nova-" + r.Name + "/locks"} {
			if err := os.MkdirAll(s.osDir(sub), 0o700); err != nil {
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
	return s.osRabbitConfig(sec)
}

// osRabbitConfig writes RabbitMQ's configuration and the definitions it loads at
// boot: the user, one vhost per region's nova and one for neutron.
func (s *stack) osRabbitConfig(sec osSecrets) error {
	dir := s.osDir("rabbitmq")
	conf := strings.Join([]string{
		fmt.Sprintf("listeners.tcp.default = 127.0.0.1:%d", osRabbitPort),
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
		"users": []map[string]any{{"name": osRabbitUser, "password_hash": hash,
			"hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []string{"administrator"}}},
	}
	vhosts := []map[string]string{}
	perms := []perm{}
	names := []string{"neutron"}
	for _, r := range osRegions {
		names = append(names, "nova_"+r.Name)
	}
	for _, v := range names {
		vhosts = append(vhosts, map[string]string{"name": v})
		perms = append(perms, perm{User: osRabbitUser, Vhost: v, Configure: ".*", Write: ".*", Read: ".*"})
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
		if err := writeFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// osInitMariaDB creates MariaDB's system tables once.
func (s *stack) osInitMariaDB(ctx context.Context) error {
	marker := s.osDir("done", "mariadb-install-db")
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	s.say("openstack: creating MariaDB's data directory")
	if err := os.RemoveAll(s.osDir("mysql")); err != nil {
		return err
	}
	if err := os.MkdirAll(s.osDir("mysql"), 0o700); err != nil {
		return err
	}
	if err := s.osRun(ctx, "mariadb-install-db", nil, "/usr/bin/mariadb-install-db", "--no-defaults",
		"--datadir="+s.osDir("mysql"), "--user=root", "--auth-root-authentication-method=socket",
		"--skip-test-db"); err != nil {
		return err
	}
	return writeFile(marker, "", 0o644)
}

// osRun runs a bootstrap command, its output appended to logs/openstack-bootstrap.log;
// the error shows the output's end.
func (s *stack) osRun(ctx context.Context, what string, env []string, bin string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = s.osDir()
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if lf, lerr := os.OpenFile(s.logFile("openstack-bootstrap"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); lerr == nil {
		fmt.Fprintf(lf, "==== %s %s: %s %s\n%s", time.Now().UTC().Format(time.RFC3339), what, bin, strings.Join(args, " "), out)
		lf.Close()
	}
	if err != nil {
		tail := strings.TrimSpace(string(out))
		if lines := strings.Split(tail, "\n"); len(lines) > 15 {
			tail = strings.Join(lines[len(lines)-15:], "\n")
		}
		return fmt.Errorf("%s (%s %s): %w\n%s", what, bin, strings.Join(args, " "), err, indent(tail, "    "))
	}
	return nil
}

// osSQL runs statements as MariaDB's root over the socket and returns the output.
func (s *stack) osSQL(ctx context.Context, sql string) (string, error) {
	cmd := exec.CommandContext(ctx, "/usr/bin/mariadb", "--no-defaults", "--socket="+s.osSocket(), "-uroot", "-N", "-B", "-e", sql)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mariadb: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// osDatabaseNames are the rig's databases: one per service and region.
func osDatabaseNames() []string {
	names := []string{"keystone", "neutron"}
	for _, r := range osRegions {
		names = append(names, "placement_"+r.Name, "glance_"+r.Name, "nova_api_"+r.Name, "nova_"+r.Name, "nova_"+r.Name+"_cell0")
	}
	return names
}

// osDatabases creates the databases and the services' account (idempotent).
func (s *stack) osDatabases(ctx context.Context) error {
	var sql strings.Builder
	for _, n := range osDatabaseNames() {
		fmt.Fprintf(&sql, "CREATE DATABASE IF NOT EXISTS `%s`;\n", n)
	}
	pw := s.osSecrets().db
	fmt.Fprintf(&sql, "CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s';\n", osDBUser, pw)
	fmt.Fprintf(&sql, "ALTER USER '%s'@'%%' IDENTIFIED BY '%s';\n", osDBUser, pw)
	fmt.Fprintf(&sql, "GRANT ALL PRIVILEGES ON *.* TO '%s'@'%%';\n", osDBUser)
	if _, err := s.osSQL(ctx, sql.String()); err != nil {
		return fmt.Errorf("creating the OpenStack databases: %w", err)
	}
	return nil
}

// osStep is one bootstrap command sequence, done once (a marker in done/).
type osStep struct {
	name string
	cmds [][]string
	env  []string
	// okCodes are exit codes besides 0 that mean done (nova-manage cell_v2
	// create_cell says 2 when the cell exists).
	okCodes []int
}

// osSyncDatabases creates every service's schema and Keystone's keys and admin,
// each step once, a few at a time.
func (s *stack) osSyncDatabases(ctx context.Context) error {
	etc := func(elem ...string) string { return s.osDir(append([]string{"etc"}, elem...)...) }
	kc := etc("keystone", "keystone.conf")
	steps := []osStep{
		{name: "keystone", cmds: [][]string{
			{"keystone-manage", "--config-file", kc, "db_sync"},
			{"keystone-manage", "--config-file", kc, "fernet_setup", "--keystone-user", "root", "--keystone-group", "root"},
			{"keystone-manage", "--config-file", kc, "credential_setup", "--keystone-user", "root", "--keystone-group", "root"},
			{"keystone-manage", "--config-file", kc, "bootstrap",
				"--bootstrap-password", s.osSecrets().admin, "--bootstrap-username", osAdminUser,
				"--bootstrap-project-name", osAdminProject, "--bootstrap-role-name", "admin",
				"--bootstrap-service-name", "keystone", "--bootstrap-region-id", osRegions[0].Name,
				"--bootstrap-public-url", "http://" + osKeystoneAddr + "/v3",
				"--bootstrap-internal-url", "http://" + osKeystoneAddr + "/v3"},
		}},
		{name: "neutron", cmds: [][]string{
			{"neutron-db-manage", "--config-file", etc("neutron", "neutron.conf"), "upgrade", "heads"},
		}},
	}
	for _, r := range osRegions {
		nc := etc("nova-"+r.Name, "nova.conf")
		cell0 := osTemplateData{secrets: s.osSecrets()}.DB("nova_" + r.Name + "_cell0")
		steps = append(steps,
			osStep{name: "placement-" + r.Name, cmds: [][]string{
				// placement-manage ignores OS_PLACEMENT_CONFIG_DIR.
				{"placement-manage", "--config-file", etc("placement-"+r.Name, "placement.conf"), "db", "sync"},
			}},
			osStep{name: "glance-" + r.Name, cmds: [][]string{
				{"glance-manage", "--config-file", etc("glance-"+r.Name, "glance-api.conf"), "db_sync"},
			}},
			osStep{name: "nova-" + r.Name, okCodes: []int{2}, cmds: [][]string{
				{"nova-manage", "--config-file", nc, "api_db", "sync"},
				{"nova-manage", "--config-file", nc, "cell_v2", "map_cell0", "--database_connection", cell0},
				{"nova-manage", "--config-file", nc, "cell_v2", "create_cell", "--name", "cell1"},
				{"nova-manage", "--config-file", nc, "db", "sync"},
			}},
		)
	}
	var todo []osStep
	for _, st := range steps {
		if _, err := os.Stat(s.osDir("done", "sync-"+st.name)); err != nil {
			todo = append(todo, st)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	var names []string
	for _, st := range todo {
		names = append(names, st.name)
	}
	s.say("openstack: creating the databases' schemas: %s (2-3 minutes on 2 cores)", strings.Join(names, ", "))
	sem := make(chan struct{}, 3)
	var wg sync.WaitGroup
	errs := make([]error, len(todo))
	for i, st := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			for _, c := range st.cmds {
				bin, args := s.osScript(c[0], c[1:]...)
				err := s.osRun(ctx, "sync "+st.name, st.env, bin, args...)
				var ee *exec.ExitError
				if errors.As(err, &ee) && containsInt(st.okCodes, ee.ExitCode()) {
					err = nil
				}
				if err != nil {
					errs[i] = err
					return
				}
			}
			errs[i] = writeFile(s.osDir("done", "sync-"+st.name), "", 0o644)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w\n  full output: %s", err, s.logFile("openstack-bootstrap"))
	}
	return nil
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
