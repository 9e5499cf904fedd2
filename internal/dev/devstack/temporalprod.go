package devstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/internal/client/temporalsetup"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// The production Temporal (`conveyor dev up --temporal postgres`): Temporal's own
// server, its four services as four processes, on PostgreSQL 15 from Debian, with
// the Temporal UI server in front. Its ports differ from the dev server's, so both
// can run at once (the test suite runs a pipeline and a promotion on this one while
// the rest of it uses the dev server).
const (
	// TemporalProfileDev and TemporalProfilePostgres are the values of
	// Options.Temporal.
	TemporalProfileDev      = "dev"
	TemporalProfilePostgres = "postgres"

	// WithTemporalPostgres, in Options.With, starts the production Temporal beside
	// the dev server; it is also its directory under the state directory.
	WithTemporalPostgres = "temporal-postgres"
	prodGroup            = WithTemporalPostgres

	postgresAddr     = "127.0.0.1:5433"
	postgresUser     = "temporal"
	prodFrontendAddr = "127.0.0.1:7333"
	prodUIAddr       = "127.0.0.1:8333"
	// historyShards is fixed when the cluster is created (docs/production.md).
	historyShards = 16
)

// prodService is one of the Temporal server's services: its gRPC, membership and
// metrics ports.
type prodService struct {
	name                   string
	grpc, membership, http int
	metrics                int
}

// prodServices are started in this order: history and matching own the shards and
// task queues the frontend routes to; the worker service needs the frontend.
var prodServices = []prodService{
	{name: "history", grpc: 7334, membership: 6334, metrics: 9334},
	{name: "matching", grpc: 7335, membership: 6335, metrics: 9335},
	{name: "frontend", grpc: 7333, membership: 6333, http: 7343, metrics: 9333},
	{name: "worker", grpc: 7339, membership: 6339, metrics: 9339},
}

// ProdTemporal is how to reach the production Temporal of a stack started with
// Options.Temporal "postgres" or Options.With "temporal-postgres".
func ProdTemporal() config.Temporal {
	t := config.Defaults().Temporal
	t.Address = prodFrontendAddr
	t.UIURL = "http://" + prodUIAddr
	return t
}

// ProdPostgres is how to reach the production Temporal's PostgreSQL in stateDir.
func ProdPostgres(stateDir string) (temporalsetup.Postgres, error) {
	s, err := newStack(Options{StateDir: stateDir})
	if err != nil {
		return temporalsetup.Postgres{}, err
	}
	return s.postgres(), nil
}

func (s *stack) postgres() temporalsetup.Postgres {
	return temporalsetup.Postgres{Address: postgresAddr, User: postgresUser, Password: s.secret("postgres-password")}
}

// prodComponents are the production Temporal's components, in start order.
func prodComponents() []component {
	cs := []component{postgresComponent(), temporalSchemaComponent()}
	for _, svc := range prodServices {
		cs = append(cs, prodServiceComponent(svc))
	}
	return append(cs, temporalRegisterComponent(), temporalUIComponent())
}

// postgresBin finds Debian's PostgreSQL 15 programs.
func postgresBin(name string) (string, error) {
	p := filepath.Join("/usr/lib/postgresql/15/bin", name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("PostgreSQL 15 is not installed (%s): run `make deps`", p)
	}
	return p, nil
}

// postgresUserCred is the Debian package's postgres account: PostgreSQL refuses to
// run as root.
func postgresUserCred() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("no postgres user (%v): run `make deps`", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func postgresComponent() component {
	return component{
		name:     "postgresql",
		group:    prodGroup,
		optional: true,
		process:  true,
		address:  func(*stack) string { return postgresAddr },
		timeout:  60 * time.Second,
		// A fast shutdown: roll back open transactions and stop, rather than
		// wait for every client to disconnect.
		stopSignal: syscall.SIGINT,
		stopGrace:  30 * time.Second,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			cred, err := postgresUserCred()
			if err != nil {
				return nil, err
			}
			data := s.path(prodGroup, "postgresql")
			if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
				if err := s.initdb(ctx, data, cred); err != nil {
					return nil, err
				}
			}
			bin, err := postgresBin("postgres")
			if err != nil {
				return nil, err
			}
			return &process{Name: "postgresql", Bin: bin, User: cred, Args: []string{
				"-D", data, "-c", "listen_addresses=127.0.0.1", "-p", "5433",
				"-c", "unix_socket_directories=", "-c", "max_connections=300",
			}}, nil
		},
		ready: func(ctx context.Context, s *stack) error { return temporalsetup.Ping(ctx, s.postgres()) },
	}
}

// initdb creates the cluster's data directory, owned by the postgres account, with
// the temporal superuser and password authentication over TCP.
func (s *stack) initdb(ctx context.Context, data string, cred *syscall.Credential) error {
	bin, err := postgresBin("initdb")
	if err != nil {
		return err
	}
	parent := filepath.Dir(data)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	if err := os.RemoveAll(data); err != nil { // a half-made one from an interrupted run
		return err
	}
	if err := os.Mkdir(data, 0o700); err != nil {
		return err
	}
	if err := os.Chown(data, int(cred.Uid), int(cred.Gid)); err != nil {
		return err
	}
	pw := filepath.Join(parent, "initdb-password")
	if err := os.WriteFile(pw, []byte(s.postgres().Password+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(pw)
	if err := os.Chown(pw, int(cred.Uid), int(cred.Gid)); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, bin, "-D", data, "-U", postgresUser, "--pwfile", pw,
		"--auth-host", "scram-sha-256", "--auth-local", "reject", "-E", "UTF8", "--no-locale")
	cmd.Dir = parent
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb %s (the postgres account must be able to reach it: every directory above it needs o+x): %w\n%s", data, err, out)
	}
	return nil
}

// temporalSchemaComponent is the one-shot step that creates and upgrades
// Temporal's databases (temporalsetup.Schema; idempotent).
func temporalSchemaComponent() component {
	return component{
		name:     "temporal-schema",
		group:    prodGroup,
		optional: true,
		tool:     "temporal-server",
		address: func(*stack) string {
			return "schema " + temporalsetup.SchemaVersion + ", visibility " + temporalsetup.VisibilitySchemaVersion
		},
		timeout: time.Second,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			return nil, temporalsetup.Schema(ctx, temporalsetup.SchemaOptions{
				Postgres: s.postgres(),
				SQLTool:  s.tool("temporal-server", "temporal-sql-tool"),
				Progress: s.progress,
			})
		},
	}
}

// prodServiceComponent runs one service of the Temporal server.
func prodServiceComponent(svc prodService) component {
	name := "temporal-" + svc.name
	c := component{
		name:     name,
		group:    prodGroup,
		optional: true,
		process:  true,
		tool:     "temporal-server",
		address:  func(*stack) string { return fmt.Sprintf("127.0.0.1:%d", svc.grpc) },
		timeout:  90 * time.Second,
		// The history service hands its shards over on SIGTERM.
		stopGrace: 20 * time.Second,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			cfg, err := s.writeProdConfig(svc)
			if err != nil {
				return nil, err
			}
			return &process{Name: name, Bin: s.tool("temporal-server", "temporal-server"),
				Args: []string{"--config-file", cfg, "--allow-no-auth", "start", "--service", svc.name}}, nil
		},
		ready: func(ctx context.Context, s *stack) error { return tcpOpen(ctx, fmt.Sprintf("127.0.0.1:%d", svc.grpc)) },
	}
	if svc.name == "frontend" {
		c.address = func(*stack) string { return prodFrontendAddr }
		c.ready = func(ctx context.Context, s *stack) error { return frontendHealthy(ctx, prodFrontendAddr) }
	}
	return c
}

// temporalRegisterComponent is the one-shot step that creates conveyor's namespace
// and search attributes on the production Temporal (temporalsetup.Register).
func temporalRegisterComponent() component {
	return component{
		name:     "temporal-register",
		group:    prodGroup,
		optional: true,
		address:  func(*stack) string { return "namespace " + config.Defaults().Temporal.Namespace },
		timeout:  time.Second,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			cl, err := temporalsetup.Dial(rctx, client.Options{HostPort: prodFrontendAddr, Logger: quietLogger{}})
			if err != nil {
				return nil, err
			}
			defer cl.Close()
			return nil, temporalsetup.Register(rctx, cl, temporalsetup.RegisterOptions{
				Namespace: config.Defaults().Temporal.Namespace,
				Progress:  s.progress,
			})
		},
	}
}

// temporalUIComponent is the Temporal UI server, pointed at the production frontend.
func temporalUIComponent() component {
	return component{
		name:     "temporal-ui",
		group:    prodGroup,
		optional: true,
		process:  true,
		tool:     "temporal-server",
		address:  func(*stack) string { return "http://" + prodUIAddr },
		timeout:  60 * time.Second,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			dir := s.path(prodGroup, "ui")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, err
			}
			host, port, _ := strings.Cut(prodUIAddr, ":")
			cfg := fmt.Sprintf(`# Written by conveyor dev up: the Temporal UI server of the production Temporal.
temporalGrpcAddress: %s
host: %s
port: %s
enableUi: true
defaultNamespace: %s
disableNewsFetch: true
notifyOnNewVersion: false
cors:
  cookieInsecure: true
  allowOrigins:
    - http://%s
codec:
  endpoint: %s
`, prodFrontendAddr, host, port, config.Defaults().Temporal.Namespace, prodUIAddr, CodecEndpoint)
			if err := writeFile(filepath.Join(dir, "conveyor.yaml"), cfg, 0o644); err != nil {
				return nil, err
			}
			return &process{Name: "temporal-ui", Bin: s.tool("temporal-server", "temporal-ui-server"),
				Args: []string{"--root", dir, "--config", ".", "--env", "conveyor", "start"}}, nil
		},
		ready: func(ctx context.Context, s *stack) error { return httpOK(ctx, nil, "http://"+prodUIAddr+"/") },
	}
}

// writeProdConfig writes the server's configuration for one service (each process
// has its own metrics port) and the dynamic configuration they share.
func (s *stack) writeProdConfig(svc prodService) (string, error) {
	dir := s.path(prodGroup, "config")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	dyn := filepath.Join(dir, "dynamicconfig.yaml")
	b, err := prodDynamicConfig()
	if err != nil {
		return "", err
	}
	if err := writeFile(dyn, string(b), 0o644); err != nil {
		return "", err
	}
	pg := s.postgres()
	host, port, _ := strings.Cut(pg.Address, ":")
	var services strings.Builder
	for _, o := range prodServices {
		fmt.Fprintf(&services, "  %s:\n    rpc:\n      grpcPort: %d\n      membershipPort: %d\n      bindOnIP: 127.0.0.1\n", o.name, o.grpc, o.membership)
		if o.http != 0 {
			fmt.Fprintf(&services, "      httpPort: %d\n", o.http)
		}
	}
	store := func(name, db string, conns int) string {
		return fmt.Sprintf(`    %s:
      sql:
        pluginName: postgres12
        databaseName: %s
        connectAddr: "%s:%s"
        connectProtocol: tcp
        user: %s
        password: "%s"
        maxConns: %d
        maxIdleConns: %d
        maxConnLifetime: 1h
`, name, db, host, port, pg.User, pg.Password, conns, conns)
	}
	cfg := `# Written by conveyor dev up: the production Temporal's ` + svc.name + ` service.
log:
  stdout: true
  level: warn
  format: json
persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: ` + strconv.Itoa(historyShards) + `
  datastores:
` + store("postgres-default", "temporal", 20) + store("postgres-visibility", "temporal_visibility", 10) + `global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: 127.0.0.1
  metrics:
    prometheus:
      framework: tally
      timerType: histogram
      listenAddress: "127.0.0.1:` + strconv.Itoa(svc.metrics) + `"
services:
` + services.String() + `clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: "` + prodFrontendAddr + `"
dcRedirectionPolicy:
  policy: noop
dynamicConfigClient:
  filepath: "` + dyn + `"
  pollInterval: 10s
`
	path := filepath.Join(dir, svc.name+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil { // it holds the database password
		return "", err
	}
	return path, nil
}

// prodDynamicConfig is TemporalDynamicConfig in the server's file format: each key a
// list of constrained values, here one unconstrained value.
func prodDynamicConfig() ([]byte, error) {
	var b strings.Builder
	b.WriteString("# Written by conveyor dev up from devstack.TemporalDynamicConfig.\n")
	for _, kv := range TemporalDynamicConfig {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !json.Valid([]byte(v)) {
			return nil, errors.New("devstack.TemporalDynamicConfig: " + kv + " is not KEY=JSON")
		}
		fmt.Fprintf(&b, "%s:\n  - value: %s\n", k, v) // JSON is YAML
	}
	return []byte(b.String()), nil
}
