package openstack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/wikimedia/conveyor/internal/dev/devstack/proc"
)

// script is a console script of the OpenStack packages run by the rig's launcher
// (openstack/launch.py): Debian ships the entry points in the python3-* packages but
// the scripts in the service packages, which the rig does not install.
func (rig *Rig) script(name string, args ...string) (string, []string) {
	return python, append([]string{rig.path("etc", "launch.py"), name}, args...)
}

// service is one process of the rig.
type service struct {
	proc.Process
	// ready says the process answers; nil means being alive is enough.
	ready func(context.Context) error
	// grace is how long Down waits after SIGTERM.
	grace time.Duration
}

// services lists the rig's processes in start order.
func (rig *Rig) services() []service {
	dir := rig.path()
	uwsgi := func(addr, wsgiFile string) []string {
		return []string{"--plugin", "python3", "--http-socket", addr, "--wsgi-file", wsgiFile,
			"--master", "--processes", "1", "--threads", "4", "--die-on-term", "--need-app",
			// Without it, clients that reuse connections get resets.
			"--add-header", "Connection: close"}
	}
	script := func(svc, name string, args ...string) proc.Process {
		bin, a := rig.script(name, args...)
		return proc.Process{Name: "openstack-" + svc, Bin: bin, Args: a}
	}
	rabbitEnv := []string{
		"HOME=" + rig.path("rabbitmq"), // the Erlang cookie
		"RABBITMQ_NODENAME=conveyor@localhost",
		"RABBITMQ_CONFIG_FILE=" + rig.path("rabbitmq", "rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE=" + rig.path("rabbitmq", "advanced.config"),
		"RABBITMQ_CONF_ENV_FILE=" + rig.path("rabbitmq", "rabbitmq-env.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + rig.path("rabbitmq", "enabled_plugins"),
		"RABBITMQ_MNESIA_BASE=" + rig.path("rabbitmq", "mnesia"),
		"RABBITMQ_LOG_BASE=" + rig.path("rabbitmq", "log"),
		"RABBITMQ_PID_FILE=" + rig.path("rabbitmq", "rabbitmq.pid"),
		"RABBITMQ_LOGS=-",
		fmt.Sprintf("RABBITMQ_DIST_PORT=%d", rabbitPort+20000),
		fmt.Sprintf("ERL_EPMD_PORT=%d", epmdPort),
		"ERL_EPMD_ADDRESS=127.0.0.1",
	}
	ps := []service{
		{Process: proc.Process{Name: "openstack-mariadb", Bin: "/usr/sbin/mariadbd", Args: []string{
			"--no-defaults", "--user=root", "--datadir=" + rig.path("mysql"), "--socket=" + rig.socket(),
			fmt.Sprintf("--port=%d", mariaDBPort), "--bind-address=127.0.0.1",
			"--pid-file=" + rig.path("mysql.pid"), "--skip-name-resolve", "--max-connections=1000",
			"--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
			"--innodb-buffer-pool-size=128M", "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
		}}, ready: func(ctx context.Context) error { return proc.UnixOpen(ctx, rig.socket()) }, grace: 60 * time.Second},
		// RabbitMQ's Erlang would start epmd as a daemon outside the stack's process
		// groups; running it here keeps `dev down` complete.
		{Process: proc.Process{Name: "openstack-epmd", Bin: "/usr/bin/epmd", Args: []string{
			"-port", fmt.Sprint(epmdPort), "-address", "127.0.0.1"}},
			ready: func(ctx context.Context) error { return proc.TCPOpen(ctx, fmt.Sprintf("127.0.0.1:%d", epmdPort)) }},
		{Process: proc.Process{Name: "openstack-rabbitmq", Bin: "/usr/lib/rabbitmq/bin/rabbitmq-server", Env: rabbitEnv},
			ready: func(ctx context.Context) error { return proc.TCPOpen(ctx, fmt.Sprintf("127.0.0.1:%d", rabbitPort)) },
			grace: 30 * time.Second},
		{Process: proc.Process{Name: "openstack-keystone", Bin: "/usr/bin/uwsgi-core",
			Args: uwsgi(keystoneAddr, "/usr/bin/keystone-wsgi-public"),
			Env:  []string{"OS_KEYSTONE_CONFIG_DIR=" + filepath.Join(dir, "etc", "keystone")}},
			ready: func(ctx context.Context) error { return httpAnswers(ctx, "http://"+keystoneAddr+"/v3") }},
		{Process: script("neutron", "neutron-server", "--config-file", filepath.Join(dir, "etc", "neutron", "neutron.conf")),
			ready: func(ctx context.Context) error { return httpAnswers(ctx, "http://"+neutronAddr+"/") }},
	}
	for _, r := range regions {
		etc := func(svc, file string) string { return filepath.Join(dir, "etc", svc+"-"+r.Name, file) }
		regional := func(p proc.Process) proc.Process { p.Name += "-" + r.Name; return p }
		nova := etc("nova", "nova.conf")
		placementURL := fmt.Sprintf("http://127.0.0.1:%d/", r.Placement)
		glanceURL := fmt.Sprintf("http://127.0.0.1:%d/versions", r.GlancePt)
		novaURL := fmt.Sprintf("http://127.0.0.1:%d/", r.Nova)
		ps = append(ps,
			service{Process: proc.Process{Name: "openstack-placement-" + r.Name, Bin: "/usr/bin/uwsgi-core",
				Args: uwsgi(fmt.Sprintf("127.0.0.1:%d", r.Placement), "/usr/bin/placement-api"),
				Env:  []string{"OS_PLACEMENT_CONFIG_DIR=" + filepath.Join(dir, "etc", "placement-"+r.Name)}},
				ready: func(ctx context.Context) error { return httpAnswers(ctx, placementURL) }},
			service{Process: regional(script("glance", "glance-api", "--config-file", etc("glance", "glance-api.conf"))),
				ready: func(ctx context.Context) error { return httpAnswers(ctx, glanceURL) }},
			service{Process: regional(script("nova-api", "nova-api", "--config-file", nova)),
				ready: func(ctx context.Context) error { return httpAnswers(ctx, novaURL) }},
			service{Process: regional(script("nova-conductor", "nova-conductor", "--config-file", nova))},
			service{Process: regional(script("nova-scheduler", "nova-scheduler", "--config-file", nova))},
			service{Process: regional(script("nova-compute", "nova-compute", "--config-file", nova))},
		)
	}
	return ps
}

// start starts p unless it runs.
func (rig *Rig) start(p service) error {
	if _, ok := rig.procs.Running(p.Name); ok {
		return nil
	}
	rig.say("openstack: starting %s", p.Name)
	if _, err := rig.procs.Start(p.Process); err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	return nil
}

// wait polls p's readiness until it answers, dies or the timeout passes; the error
// names the log and shows its last lines.
func (rig *Rig) wait(ctx context.Context, p service, timeout time.Duration) error {
	check := p.ready
	if check == nil {
		check = func(context.Context) error { return nil }
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		_, alive := rig.procs.Running(p.Name)
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
			msg := fmt.Sprintf("%s is not ready (%v)\n  log: %s", p.Name, err, rig.procs.LogFile(p.Name))
			if tail := rig.procs.LogTail(p.Name, 15); tail != "" {
				msg += "\n  last lines:\n" + proc.Indent(tail, "    ")
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
