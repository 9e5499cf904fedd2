// Package openstack is the optional OpenStack test rig of the local stack
// (`conveyor dev up --with openstack`): a real two-region cloud from Debian's
// packages (OpenStack Zed) sharing one Keystone, for the cloud migration's
// integration tests. Per region: nova (api, conductor, scheduler,
// compute with a fake virt driver), placement and glance; one neutron-server without
// agents, MariaDB and RabbitMQ. Every service is a plain background process of the
// stack, named openstack-*, with its log in logs/ and its pid in run/.
//
// Ports (loopback only): Keystone 5050 (5000 is the registry's), MariaDB 3316,
// RabbitMQ 5682 (epmd 4379, distribution 25682), neutron 9696, and per region
// nova-api, placement and glance (regions).
package openstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/wikimedia/conveyor/internal/dev/devstack/proc"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// The rig's ports and accounts.
const (
	keystoneAddr = "127.0.0.1:5050"
	mariaDBPort  = 3316
	rabbitPort   = 5682
	epmdPort     = 4379
	neutronAddr  = "127.0.0.1:9696"
	adminUser    = "admin"
	adminProject = "admin"
	domain       = "Default"
	dbUser       = "conveyor"
	rabbitUser   = "conveyor"
	// Flavor and Image exist in every region of the rig: a small flavor, and a
	// public raw image of a few bytes that servers can boot from (the fake driver
	// boots anything).
	Flavor = "conveyor.small"
	Image  = "conveyor-fake"
)

// pasteDir is where tools/deps.sh puts the paste ini files of Debian's nova-common,
// glance-common and neutron-common packages (etc/<service>/...), which the rig takes
// without installing those packages.
const pasteDir = "/usr/local/share/conveyor/openstack"

// region is one deployment of the pair.
type region struct {
	Name                      string
	Nova, Placement, GlancePt int
}

var regions = []region{
	{Name: "eqiad1", Nova: 8774, Placement: 8778, GlancePt: 9292},
	{Name: "eqiad2", Nova: 8784, Placement: 8788, GlancePt: 9392},
}

// Stack is what the rig needs of the stack that runs it.
type Stack struct {
	// Dir is the stack's state directory: the rig keeps its state in Dir/openstack
	// and its processes' pids and logs with the stack's, in Dir/run and Dir/logs.
	Dir string
	// Secret returns a credential kept in the state directory, made on first use.
	Secret func(name string) string
	// Say reports progress to the person running `conveyor dev up`.
	Say func(format string, args ...any)
}

// Rig is the OpenStack of one stack's state directory.
type Rig struct {
	dir   string   // Stack.Dir/openstack
	procs proc.Dir // the stack's state directory
	st    Stack
}

// New returns the rig of st; it starts nothing.
func New(st Stack) *Rig {
	return &Rig{dir: filepath.Join(st.Dir, "openstack"), procs: proc.Dir(st.Dir), st: st}
}

// path joins elements under the rig's state directory.
func (rig *Rig) path(elem ...string) string {
	return filepath.Join(append([]string{rig.dir}, elem...)...)
}

func (rig *Rig) socket() string { return rig.path("mysql.sock") }

func (rig *Rig) secret(name string) string { return rig.st.Secret(name) }

func (rig *Rig) say(format string, args ...any) { rig.st.Say(format, args...) }

// Address is what `conveyor dev status` shows for the rig.
func Address() string { return "Keystone http://" + keystoneAddr + "/v3, regions eqiad1 eqiad2" }

// Started says whether the rig was brought up before (and not brought down since).
func (rig *Rig) Started() bool {
	_, err := os.Stat(rig.path("done", "ready"))
	return err == nil
}

// credentials are the rig's credentials, kept in the state directory's secrets/.
type credentials struct{ admin, service, db, rabbit string }

func (rig *Rig) credentials() credentials {
	return credentials{
		admin:   rig.secret("openstack-admin-password"),
		service: rig.secret("openstack-service-password"),
		db:      rig.secret("openstack-db-password"),
		rabbit:  rig.secret("openstack-rabbitmq-password"),
	}
}

// Config is what the configuration file says about the rig.
func (rig *Rig) Config() config.OpenStack {
	c := config.OpenStack{
		AuthURL:     "http://" + keystoneAddr + "/v3",
		Username:    adminUser,
		Password:    rig.credentials().admin,
		ProjectName: adminProject,
		Domain:      domain,
		Deployments: map[string]config.OpenStackDeployment{},
	}
	for _, r := range regions {
		c.Deployments[r.Name] = config.OpenStackDeployment{Region: r.Name}
	}
	return c
}

// Up starts what is not running and bootstraps what is not bootstrapped
// yet; on a rig that is up it only checks.
func (rig *Rig) Up(ctx context.Context) error {
	start := time.Now()
	if err := checkInstalled(); err != nil {
		return err
	}
	if err := rig.writeConfig(); err != nil {
		return fmt.Errorf("writing the OpenStack configuration: %w", err)
	}
	procs := rig.services()
	byName := map[string]service{}
	for _, p := range procs {
		byName[p.Name] = p
	}
	// MariaDB and RabbitMQ first: RabbitMQ's start is the slowest part, so it
	// boots while the databases are synced.
	if err := rig.initMariaDB(ctx); err != nil {
		return err
	}
	for _, n := range []string{"openstack-mariadb", "openstack-epmd", "openstack-rabbitmq"} {
		if err := rig.start(byName[n]); err != nil {
			return err
		}
	}
	if err := rig.wait(ctx, byName["openstack-mariadb"], time.Minute); err != nil {
		return err
	}
	if err := rig.createDatabases(ctx); err != nil {
		return err
	}
	if err := rig.syncDatabases(ctx); err != nil {
		return err
	}
	if err := rig.start(byName["openstack-keystone"]); err != nil {
		return err
	}
	if err := rig.wait(ctx, byName["openstack-keystone"], time.Minute); err != nil {
		return err
	}
	if err := rig.registerCatalog(ctx); err != nil {
		return fmt.Errorf("registering services and endpoints in Keystone: %w", err)
	}
	if err := rig.wait(ctx, byName["openstack-rabbitmq"], 3*time.Minute); err != nil {
		return err
	}
	started := false
	for _, p := range procs {
		if _, ok := rig.procs.Running(p.Name); !ok {
			started = true
		}
		if err := rig.start(p); err != nil {
			return err
		}
	}
	if started {
		rig.say("openstack: waiting for the APIs to answer")
	}
	for _, p := range procs {
		if err := rig.wait(ctx, p, 3*time.Minute); err != nil {
			return err
		}
	}
	if err := rig.regionsReady(ctx); err != nil {
		return err
	}
	if err := proc.WriteFile(rig.path("done", "ready"), time.Now().UTC().Format(time.RFC3339)+"\n", 0o644); err != nil {
		return err
	}
	if started {
		rig.say("openstack: ready in %.0fs (logs: %s)", time.Since(start).Seconds(), rig.procs.LogFile("openstack-*"))
	}
	return nil
}

// Ready checks every process is alive and every API answers.
func (rig *Rig) Ready(ctx context.Context) error {
	var down []string
	procs := rig.services()
	for _, p := range procs {
		if _, ok := rig.procs.Running(p.Name); !ok {
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
			strings.Join(down, ", "), filepath.Join(string(rig.procs), "logs"))
	}
	return nil
}

// Down stops the rig's processes: the services at once (nova's wait out
// their graceful shutdown, seconds each), then Keystone, RabbitMQ and MariaDB.
func (rig *Rig) Down() error {
	procs := rig.services()
	errs := []error{}
	if err := os.Remove(rig.path("done", "ready")); err != nil && !errors.Is(err, os.ErrNotExist) {
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
		results[i].stopped, results[i].err = rig.procs.Stop(procs[i].Name, g)
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
			rig.say("%-24s stopped", procs[i].Name)
		}
	}
	return errors.Join(errs...)
}

func checkInstalled() error {
	var missing []string
	for _, b := range binaries {
		if _, err := os.Stat(b); err != nil {
			missing = append(missing, b)
		}
	}
	for _, f := range []string{"nova/api-paste.ini", "glance/glance-api-paste.ini", "neutron/api-paste.ini"} {
		if _, err := os.Stat(filepath.Join(pasteDir, f)); err != nil {
			missing = append(missing, filepath.Join(pasteDir, f))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the OpenStack packages are not installed (missing %s): run `make deps` (tools/deps.sh) as root",
			strings.Join(missing, ", "))
	}
	return nil
}

// binaries are the programs the rig runs; missing ones mean the packages are not
// installed.
var binaries = []string{
	"/usr/sbin/mariadbd", "/usr/bin/mariadb-install-db", "/usr/bin/mariadb",
	"/usr/lib/rabbitmq/bin/rabbitmq-server", "/usr/bin/epmd", "/usr/bin/uwsgi-core",
	"/usr/lib/uwsgi/plugins/python3_plugin.so", "/usr/bin/keystone-wsgi-public", "/usr/bin/placement-api",
	python, "/usr/lib/python3/dist-packages/keystone", "/usr/lib/python3/dist-packages/placement",
	"/usr/lib/python3/dist-packages/glance", "/usr/lib/python3/dist-packages/nova",
	"/usr/lib/python3/dist-packages/neutron", "/usr/lib/python3/dist-packages/pymysql",
}

// python is Debian's Python, which has the OpenStack packages (not whatever
// python3 comes first on the PATH).
const python = "/usr/bin/python3"
