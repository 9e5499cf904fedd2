package temporalsetup_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/internal/client/temporalsetup"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/workflows"
)

func suffix(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// pgConn opens a connection to db on the stack's PostgreSQL.
func pgConn(t *testing.T, pg temporalsetup.Postgres, db string) *pgx.Conn {
	t.Helper()
	host, port, _ := strings.Cut(pg.Address, ":")
	c, err := pgx.Connect(context.Background(), fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s", host, port, pg.User, pg.Password, db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func count(t *testing.T, c *pgx.Conn, query string, args ...any) int {
	t.Helper()
	var n int
	if err := c.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSchemaTwiceThenNewer runs the schema step on fresh databases of the stack's
// PostgreSQL: the first run creates and upgrades them, the second changes nothing,
// and after the main database is moved to a newer version than the server knows,
// a third refuses without touching either database.
func TestSchemaTwiceThenNewer(t *testing.T) {
	pg, tool := stacktest.ProdPostgres(t)
	s := suffix(t)
	pg.Database, pg.VisibilityDatabase = "temporal_it_"+s, "temporal_vis_it_"+s
	admin := pgConn(t, pg, "postgres")
	t.Cleanup(func() {
		for _, db := range []string{pg.Database, pg.VisibilityDatabase} {
			if _, err := admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)"); err != nil {
				t.Logf("dropping %s: %v", db, err)
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run := func() (string, error) {
		var out bytes.Buffer
		err := temporalsetup.Schema(ctx, temporalsetup.SchemaOptions{Postgres: pg, SQLTool: tool, Progress: &out})
		return out.String(), err
	}

	out, err := run()
	if err != nil {
		t.Fatalf("first run: %v\n%s", err, out)
	}
	for _, want := range []string{
		pg.Database + " created", pg.Database + " upgraded from 0.0 to " + temporalsetup.SchemaVersion,
		pg.VisibilityDatabase + " created", pg.VisibilityDatabase + " upgraded from 0.0 to " + temporalsetup.VisibilitySchemaVersion,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("first run says\n%s\nwant a line %q", out, want)
		}
	}
	main, vis := pgConn(t, pg, pg.Database), pgConn(t, pg, pg.VisibilityDatabase)
	history := func(c *pgx.Conn) int { return count(t, c, "SELECT count(*) FROM schema_update_history") }
	mainUpdates, visUpdates := history(main), history(vis)
	if mainUpdates == 0 || visUpdates == 0 {
		t.Fatalf("schema_update_history has %d and %d rows after the first run", mainUpdates, visUpdates)
	}
	if n := count(t, main, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'executions'"); n != 1 {
		t.Fatalf("no executions table after the first run")
	}

	out, err = run()
	if err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	if strings.Contains(out, "created") || strings.Contains(out, "upgraded") || strings.Count(out, "nothing to do") != 2 {
		t.Errorf("second run says\n%s\nwant nothing to do for both databases", out)
	}
	if history(main) != mainUpdates || history(vis) != visUpdates {
		t.Errorf("the second run changed the update history: %d→%d, %d→%d", mainUpdates, history(main), visUpdates, history(vis))
	}

	if _, err := main.Exec(ctx, "UPDATE schema_version SET curr_version = '1.99' WHERE db_name = $1", pg.Database); err != nil {
		t.Fatal(err)
	}
	out, err = run()
	if !errors.Is(err, temporalsetup.ErrSchemaNewer) {
		t.Fatalf("run on a newer schema: %v, want ErrSchemaNewer\n%s", err, out)
	}
	for _, want := range []string{pg.Database, "1.99", temporalsetup.SchemaVersion, "upgrade the server"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal %q does not name %q", err, want)
		}
	}
	if history(main) != mainUpdates || history(vis) != visUpdates {
		t.Errorf("the refused run changed the update history")
	}
}

// TestRegisterTwiceAndRefusesAnotherType registers a fresh namespace on the
// production Temporal twice, then one whose attribute has another type.
func TestRegisterTwiceAndRefusesAnotherType(t *testing.T) {
	cfg := stacktest.ProdTemporal(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := temporalsetup.Dial(ctx, client.Options{HostPort: cfg.Temporal.Address})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ns := "conveyor-register-it-" + suffix(t)
	var out bytes.Buffer
	if err := temporalsetup.Register(ctx, c, temporalsetup.RegisterOptions{Namespace: ns, Retention: 24 * time.Hour, Progress: &out}); err != nil {
		t.Fatalf("first register: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "namespace "+ns+" created") || !strings.Contains(out.String(), "search attributes added") {
		t.Errorf("first register says\n%s", out.String())
	}
	// Usable at once: a start carrying conveyor's attributes is accepted as soon
	// as Register returns (the server applies new attributes to starts only after
	// its namespace cache refreshes; Register waits for that).
	nc, err := client.NewClientFromExisting(c, client.Options{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	run, err := nc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "usable-" + ns, TaskQueue: "nobody",
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.ProjectKey.ValueSet("p"), workflows.ChangeKey.ValueSet(1))}, "Nothing")
	if err != nil {
		t.Fatalf("a start with conveyor's search attributes right after Register: %v", err)
	}
	if err := nc.TerminateWorkflow(ctx, run.GetID(), run.GetRunID(), "test"); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := temporalsetup.Register(ctx, c, temporalsetup.RegisterOptions{Namespace: ns, Progress: &out}); err != nil {
		t.Fatalf("second register: %v", err)
	}
	if !strings.Contains(out.String(), "namespace "+ns+" exists") || strings.Contains(out.String(), "added") {
		t.Errorf("second register says\n%s\nwant the namespace found and nothing added", out.String())
	}

	other := "conveyor-register-type-it-" + suffix(t)
	wrong := []workflows.SearchAttribute{{Name: workflows.SearchAttributeStep, Type: "Int"}}
	if err := temporalsetup.Register(ctx, c, temporalsetup.RegisterOptions{Namespace: other, Retention: 24 * time.Hour, SearchAttributes: wrong}); err != nil {
		t.Fatal(err)
	}
	err = temporalsetup.Register(ctx, c, temporalsetup.RegisterOptions{Namespace: other})
	if !errors.Is(err, temporalsetup.ErrSearchAttributeType) || !strings.Contains(err.Error(), workflows.SearchAttributeStep) {
		t.Fatalf("register over an Int %s: %v, want ErrSearchAttributeType naming it", workflows.SearchAttributeStep, err)
	}
}
