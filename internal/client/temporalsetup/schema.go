// Package temporalsetup prepares a production Temporal server for conveyor, in two
// idempotent one-shot steps: Schema creates and upgrades the server's PostgreSQL
// databases before the server starts, and Register creates conveyor's namespace and
// search attributes once the frontend answers. Running either twice is harmless.
//
// The schema itself is Temporal's: Schema decides what is missing and runs
// Temporal's own schema tool (temporal-sql-tool) for it.
package temporalsetup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The schema versions the pinned Temporal server release expects (tools/versions.env;
// TestSchemaVersionsMatchThePin checks them against the server's module).
const (
	SchemaVersion           = "1.19"
	VisibilitySchemaVersion = "1.14"
)

// Postgres says how to reach the PostgreSQL server Temporal keeps its data in.
type Postgres struct {
	// Address is host:port, e.g. 127.0.0.1:5433.
	Address string
	User    string
	// Password is the user's password; empty for trust authentication.
	Password string
	// Database and VisibilityDatabase are Temporal's two databases. Defaults
	// "temporal" and "temporal_visibility".
	Database           string
	VisibilityDatabase string
}

func (p Postgres) withDefaults() Postgres {
	if p.Database == "" {
		p.Database = "temporal"
	}
	if p.VisibilityDatabase == "" {
		p.VisibilityDatabase = "temporal_visibility"
	}
	return p
}

// SchemaOptions configures Schema.
type SchemaOptions struct {
	Postgres Postgres
	// SQLTool is Temporal's schema tool. Default "temporal-sql-tool" on PATH.
	SQLTool string
	// Version and VisibilityVersion are the schema versions to upgrade to.
	// Defaults SchemaVersion and VisibilitySchemaVersion.
	Version           string
	VisibilityVersion string
	// Wait is how long to wait for PostgreSQL to accept connections. Default 1m.
	Wait time.Duration
	// Progress receives one line per decision. Default io.Discard.
	Progress io.Writer
}

// ErrSchemaNewer says a database holds a newer schema than the server release
// conveyor runs knows: the server must be upgraded, the schema never downgraded.
var ErrSchemaNewer = errors.New("schema newer than this Temporal server release knows")

// store is one of Temporal's databases and the embedded schema that builds it.
type store struct {
	db, schemaName, want string
}

// Schema creates Temporal's databases if they are absent, sets up the schema's
// version tables where there are none, and upgrades each database to its target
// version. A database already at its target is left alone; one beyond it is refused
// with ErrSchemaNewer and nothing is changed.
func Schema(ctx context.Context, o SchemaOptions) error {
	pg := o.Postgres.withDefaults()
	if o.SQLTool == "" {
		o.SQLTool = "temporal-sql-tool"
	}
	if o.Version == "" {
		o.Version = SchemaVersion
	}
	if o.VisibilityVersion == "" {
		o.VisibilityVersion = VisibilitySchemaVersion
	}
	if o.Wait == 0 {
		o.Wait = time.Minute
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	stores := []store{
		{pg.Database, "postgresql/v12/temporal", o.Version},
		{pg.VisibilityDatabase, "postgresql/v12/visibility", o.VisibilityVersion},
	}
	// Check every database before changing any: a newer schema anywhere means this
	// release must not touch the cluster at all.
	current := make([]string, len(stores))
	exists := make([]bool, len(stores))
	for i, st := range stores {
		v, ok, err := schemaVersion(ctx, pg, st.db, o.Wait)
		if err != nil {
			return err
		}
		if v != "" {
			newer, err := versionLess(st.want, v)
			if err != nil {
				return fmt.Errorf("database %s: %w", st.db, err)
			}
			if newer {
				return fmt.Errorf("database %s is at schema version %s, but this Temporal server release knows only up to %s: %w; upgrade the server (tools/versions.env), never downgrade a schema",
					st.db, v, st.want, ErrSchemaNewer)
			}
		}
		current[i], exists[i] = v, ok
	}
	for i, st := range stores {
		if err := upgrade(ctx, o, pg, st, current[i], exists[i]); err != nil {
			return err
		}
	}
	return nil
}

// upgrade brings one database from version cur ("" = no schema yet) to st.want;
// exists says whether the database is there at all.
func upgrade(ctx context.Context, o SchemaOptions, pg Postgres, st store, cur string, exists bool) error {
	say := func(format string, args ...any) { fmt.Fprintf(o.Progress, "temporal schema: "+format+"\n", args...) }
	if cur == st.want {
		say("%s is at version %s: nothing to do", st.db, cur)
		return nil
	}
	if !exists {
		if err := createDatabase(ctx, pg, st.db); err != nil {
			return err
		}
		say("%s created", st.db)
	}
	if cur == "" {
		if err := sqlTool(ctx, o, pg, st.db, "setup-schema", "-v", "0.0"); err != nil {
			return err
		}
		cur = "0.0"
	}
	if err := sqlTool(ctx, o, pg, st.db, "update-schema", "--schema-name", st.schemaName, "--version", st.want); err != nil {
		return err
	}
	got, _, err := schemaVersion(ctx, pg, st.db, o.Wait)
	if err != nil {
		return err
	}
	if got != st.want {
		return fmt.Errorf("database %s: temporal-sql-tool update-schema left version %q, want %s", st.db, got, st.want)
	}
	say("%s upgraded from %s to %s", st.db, cur, st.want)
	return nil
}

// sqlTool runs Temporal's schema tool on db; the password goes in its environment,
// not on its command line.
func sqlTool(ctx context.Context, o SchemaOptions, pg Postgres, db string, args ...string) error {
	host, port, err := net.SplitHostPort(pg.Address)
	if err != nil {
		return fmt.Errorf("postgres address %q: %w", pg.Address, err)
	}
	cmd := exec.CommandContext(ctx, o.SQLTool, append([]string{"--plugin", "postgres12",
		"--endpoint", host, "--port", port, "--user", pg.User, "--database", db, "--quiet"}, args...)...)
	cmd.Env = append(os.Environ(), "SQL_PASSWORD="+pg.Password)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s on database %s: %w\n%s", o.SQLTool, args[0], db, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// connect opens a connection to db, retrying until PostgreSQL accepts or wait passes.
func connect(ctx context.Context, pg Postgres, db string, wait time.Duration) (*pgx.Conn, error) {
	host, port, err := net.SplitHostPort(pg.Address)
	if err != nil {
		return nil, fmt.Errorf("postgres address %q: %w", pg.Address, err)
	}
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cfg.Host = host
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("postgres address %q: bad port", pg.Address)
	}
	cfg.Port = uint16(p)
	cfg.User, cfg.Password, cfg.Database = pg.User, pg.Password, db
	cfg.ConnectTimeout = 5 * time.Second
	deadline := time.Now().Add(wait)
	for {
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			return c, nil
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) || time.Now().After(deadline) || ctx.Err() != nil {
			// A server that answers with an error (bad password, no such
			// database) will not change its mind.
			return nil, fmt.Errorf("connecting to PostgreSQL at %s as %s, database %s: %w", pg.Address, pg.User, db, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// maintenanceDB is the database every PostgreSQL cluster has, for CREATE DATABASE.
const maintenanceDB = "postgres"

func databaseExists(ctx context.Context, pg Postgres, db string, wait time.Duration) (bool, error) {
	c, err := connect(ctx, pg, maintenanceDB, wait)
	if err != nil {
		return false, err
	}
	defer c.Close(ctx)
	var n int
	err = c.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", db).Scan(&n)
	return n > 0, err
}

func createDatabase(ctx context.Context, pg Postgres, db string) error {
	c, err := connect(ctx, pg, maintenanceDB, time.Minute)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database: another step won the race
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating database %s: %w", db, err)
	}
	return nil
}

// schemaVersion reads db's schema version ("" when its version table does not
// exist yet) and whether the database exists.
func schemaVersion(ctx context.Context, pg Postgres, db string, wait time.Duration) (string, bool, error) {
	exists, err := databaseExists(ctx, pg, db, wait)
	if err != nil || !exists {
		return "", false, err
	}
	v, err := tableVersion(ctx, pg, db, wait)
	return v, true, err
}

// tableVersion reads the version in db's schema_version table, "" when there is none.
func tableVersion(ctx context.Context, pg Postgres, db string, wait time.Duration) (string, error) {
	c, err := connect(ctx, pg, db, wait)
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	var table *string
	if err := c.QueryRow(ctx, "SELECT to_regclass('schema_version')::text").Scan(&table); err != nil {
		return "", fmt.Errorf("database %s: %w", db, err)
	}
	if table == nil {
		return "", nil
	}
	var v string
	err = c.QueryRow(ctx, "SELECT curr_version FROM schema_version WHERE version_partition = 0 AND db_name = $1", db).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("database %s: reading its schema version: %w", db, err)
	}
	return v, nil
}

// versionLess reports whether dotted version a is lower than b ("1.9" < "1.19").
func versionLess(a, b string) (bool, error) {
	pa, err := parseVersion(a)
	if err != nil {
		return false, err
	}
	pb, err := parseVersion(b)
	if err != nil {
		return false, err
	}
	for i := 0; i < max(len(pa), len(pb)); i++ {
		var x, y int
		if i < len(pa) {
			x = pa[i]
		}
		if i < len(pb) {
			y = pb[i]
		}
		if x != y {
			return x < y, nil
		}
	}
	return false, nil
}

func parseVersion(v string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(strings.TrimPrefix(v, "v"), ".") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("schema version %q is not a dotted number", v)
		}
		out = append(out, n)
	}
	return out, nil
}

// Ping checks that PostgreSQL accepts pg's credentials.
func Ping(ctx context.Context, pg Postgres) error {
	c, err := connect(ctx, pg.withDefaults(), maintenanceDB, 0)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	return c.Ping(ctx)
}
