package openstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wikimedia/conveyor/internal/dev/devstack/proc"
)

// initMariaDB creates MariaDB's system tables once.
func (rig *Rig) initMariaDB(ctx context.Context) error {
	marker := rig.path("done", "mariadb-install-db")
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	rig.say("openstack: creating MariaDB's data directory")
	if err := os.RemoveAll(rig.path("mysql")); err != nil {
		return err
	}
	if err := os.MkdirAll(rig.path("mysql"), 0o700); err != nil {
		return err
	}
	if err := rig.run(ctx, "mariadb-install-db", nil, "/usr/bin/mariadb-install-db", "--no-defaults",
		"--datadir="+rig.path("mysql"), "--user=root", "--auth-root-authentication-method=socket",
		"--skip-test-db"); err != nil {
		return err
	}
	return proc.WriteFile(marker, "", 0o644)
}

// run runs a bootstrap command, its output appended to logs/openstack-bootstrap.log;
// the error shows the output's end.
func (rig *Rig) run(ctx context.Context, what string, env []string, bin string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = rig.path()
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if lf, lerr := os.OpenFile(rig.procs.LogFile("openstack-bootstrap"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); lerr == nil {
		fmt.Fprintf(lf, "==== %s %s: %s %s\n%s", time.Now().UTC().Format(time.RFC3339), what, bin, strings.Join(args, " "), out)
		lf.Close()
	}
	if err != nil {
		tail := strings.TrimSpace(string(out))
		if lines := strings.Split(tail, "\n"); len(lines) > 15 {
			tail = strings.Join(lines[len(lines)-15:], "\n")
		}
		return fmt.Errorf("%s (%s %s): %w\n%s", what, bin, strings.Join(args, " "), err, proc.Indent(tail, "    "))
	}
	return nil
}

// query runs statements as MariaDB's root over the socket and returns the output.
func (rig *Rig) query(ctx context.Context, sql string) (string, error) {
	cmd := exec.CommandContext(ctx, "/usr/bin/mariadb", "--no-defaults", "--socket="+rig.socket(), "-uroot", "-N", "-B", "-e", sql)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mariadb: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// databaseNames are the rig's databases: one per service and region.
func databaseNames() []string {
	names := []string{"keystone", "neutron"}
	for _, r := range regions {
		names = append(names, "placement_"+r.Name, "glance_"+r.Name, "nova_api_"+r.Name, "nova_"+r.Name, "nova_"+r.Name+"_cell0")
	}
	return names
}

// createDatabases creates the databases and the services' account (idempotent).
func (rig *Rig) createDatabases(ctx context.Context) error {
	var sql strings.Builder
	for _, n := range databaseNames() {
		fmt.Fprintf(&sql, "CREATE DATABASE IF NOT EXISTS `%s`;\n", n)
	}
	pw := rig.credentials().db
	fmt.Fprintf(&sql, "CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s';\n", dbUser, pw)
	fmt.Fprintf(&sql, "ALTER USER '%s'@'%%' IDENTIFIED BY '%s';\n", dbUser, pw)
	fmt.Fprintf(&sql, "GRANT ALL PRIVILEGES ON *.* TO '%s'@'%%';\n", dbUser)
	if _, err := rig.query(ctx, sql.String()); err != nil {
		return fmt.Errorf("creating the OpenStack databases: %w", err)
	}
	return nil
}

// syncStep is one bootstrap command sequence, done once (a marker in done/).
type syncStep struct {
	name string
	cmds [][]string
	env  []string
	// okCodes are exit codes besides 0 that mean done (nova-manage cell_v2
	// create_cell says 2 when the cell exists).
	okCodes []int
}

// syncDatabases creates every service's schema and Keystone's keys and admin,
// each step once, a few at a time.
func (rig *Rig) syncDatabases(ctx context.Context) error {
	etc := func(elem ...string) string { return rig.path(append([]string{"etc"}, elem...)...) }
	kc := etc("keystone", "keystone.conf")
	steps := []syncStep{
		{name: "keystone", cmds: [][]string{
			{"keystone-manage", "--config-file", kc, "db_sync"},
			{"keystone-manage", "--config-file", kc, "fernet_setup", "--keystone-user", "root", "--keystone-group", "root"},
			{"keystone-manage", "--config-file", kc, "credential_setup", "--keystone-user", "root", "--keystone-group", "root"},
			{"keystone-manage", "--config-file", kc, "bootstrap",
				"--bootstrap-password", rig.credentials().admin, "--bootstrap-username", adminUser,
				"--bootstrap-project-name", adminProject, "--bootstrap-role-name", "admin",
				"--bootstrap-service-name", "keystone", "--bootstrap-region-id", regions[0].Name,
				"--bootstrap-public-url", "http://" + keystoneAddr + "/v3",
				"--bootstrap-internal-url", "http://" + keystoneAddr + "/v3"},
		}},
		{name: "neutron", cmds: [][]string{
			{"neutron-db-manage", "--config-file", etc("neutron", "neutron.conf"), "upgrade", "heads"},
		}},
	}
	for _, r := range regions {
		nc := etc("nova-"+r.Name, "nova.conf")
		cell0 := templateData{secrets: rig.credentials()}.DB("nova_" + r.Name + "_cell0")
		steps = append(steps,
			syncStep{name: "placement-" + r.Name, cmds: [][]string{
				// placement-manage ignores OS_PLACEMENT_CONFIG_DIR.
				{"placement-manage", "--config-file", etc("placement-"+r.Name, "placement.conf"), "db", "sync"},
			}},
			syncStep{name: "glance-" + r.Name, cmds: [][]string{
				{"glance-manage", "--config-file", etc("glance-"+r.Name, "glance-api.conf"), "db_sync"},
			}},
			syncStep{name: "nova-" + r.Name, okCodes: []int{2}, cmds: [][]string{
				{"nova-manage", "--config-file", nc, "api_db", "sync"},
				{"nova-manage", "--config-file", nc, "cell_v2", "map_cell0", "--database_connection", cell0},
				{"nova-manage", "--config-file", nc, "cell_v2", "create_cell", "--name", "cell1"},
				{"nova-manage", "--config-file", nc, "db", "sync"},
			}},
		)
	}
	var todo []syncStep
	for _, st := range steps {
		if _, err := os.Stat(rig.path("done", "sync-"+st.name)); err != nil {
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
	rig.say("openstack: creating the databases' schemas: %s (2-3 minutes on 2 cores)", strings.Join(names, ", "))
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
				bin, args := rig.script(c[0], c[1:]...)
				err := rig.run(ctx, "sync "+st.name, st.env, bin, args...)
				var ee *exec.ExitError
				if errors.As(err, &ee) && slices.Contains(st.okCodes, ee.ExitCode()) {
					err = nil
				}
				if err != nil {
					errs[i] = err
					return
				}
			}
			errs[i] = proc.WriteFile(rig.path("done", "sync-"+st.name), "", 0o644)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w\n  full output: %s", err, rig.procs.LogFile("openstack-bootstrap"))
	}
	return nil
}
