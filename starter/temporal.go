package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/urfave/cli/v2"
	tlog "go.temporal.io/sdk/log"

	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/internal/client/temporalsetup"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

func temporalCommand() *cli.Command {
	return &cli.Command{
		Name:  "temporal",
		Usage: "prepare a production Temporal server for conveyor",
		Description: "The one-shot steps that a production Temporal on PostgreSQL needs, in order:\n" +
			"`schema` before the server starts, `register` once its frontend answers. Both\n" +
			"are idempotent: run them on every deploy, before and after the server.\n\n" +
			"Example (what docker-compose.yml and `conveyor dev up --temporal postgres` do):\n\n" +
			"   conveyor temporal schema --postgres 127.0.0.1:5432 --postgres-user temporal \\\n" +
			"       --postgres-password-file /run/secrets/postgres-password\n" +
			"   conveyor temporal register --address 127.0.0.1:7233\n\n" +
			"`codec-server` lets the Web UI show the payloads that temporal.payloadKeyFile\n" +
			"encrypts.",
		Subcommands: []*cli.Command{temporalSchemaCommand(), temporalRegisterCommand(), temporalCodecServerCommand()},
	}
}

func temporalSchemaCommand() *cli.Command {
	return &cli.Command{
		Name:  "schema",
		Usage: "create Temporal's PostgreSQL databases if absent and upgrade their schema",
		Description: "Creates the databases that do not exist, sets up the schema's version tables\n" +
			"where there are none, and upgrades each database to the schema version the\n" +
			"pinned Temporal server release expects (" + temporalsetup.SchemaVersion + ", visibility " +
			temporalsetup.VisibilitySchemaVersion + ") with\n" +
			"Temporal's own temporal-sql-tool. A database already there is left alone; one\n" +
			"with a newer schema than this release knows is refused and nothing changes.\n\n" +
			"Example:\n\n   conveyor temporal schema --postgres db.example.org:5432 --postgres-user temporal \\\n" +
			"       --postgres-password-file /run/secrets/postgres-password",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "postgres", Required: true, EnvVars: []string{"CONVEYOR_POSTGRES"},
				Usage: "PostgreSQL `HOST:PORT`"},
			&cli.StringFlag{Name: "postgres-user", Value: "temporal", EnvVars: []string{"CONVEYOR_POSTGRES_USER"},
				Usage: "PostgreSQL `USER`, allowed to create databases"},
			&cli.StringFlag{Name: "postgres-password-file", EnvVars: []string{"CONVEYOR_POSTGRES_PASSWORD_FILE"},
				Usage: "`FILE` holding the user's password (none: trust authentication)"},
			&cli.StringFlag{Name: "database", Value: "temporal", Usage: "Temporal's main `DATABASE`"},
			&cli.StringFlag{Name: "visibility-database", Value: "temporal_visibility", Usage: "Temporal's visibility `DATABASE`"},
			&cli.StringFlag{Name: "sql-tool", Value: "temporal-sql-tool", EnvVars: []string{"CONVEYOR_TEMPORAL_SQL_TOOL"},
				Usage: "Temporal's schema tool, `PATH` or a name on PATH"},
			&cli.DurationFlag{Name: "wait", Value: time.Minute, Usage: "how long (`DURATION`) to wait for PostgreSQL to accept connections"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("unexpected arguments %q: schema takes only flags", c.Args().Slice())
			}
			pg := temporalsetup.Postgres{
				Address: c.String("postgres"), User: c.String("postgres-user"),
				Database: c.String("database"), VisibilityDatabase: c.String("visibility-database"),
			}
			if f := c.String("postgres-password-file"); f != "" {
				var err error
				if pg.Password, err = config.SecretFile("--postgres-password-file", f); err != nil {
					return err
				}
			}
			ctx, stop := signalContext(c)
			defer stop()
			return temporalsetup.Schema(ctx, temporalsetup.SchemaOptions{
				Postgres: pg, SQLTool: c.String("sql-tool"), Wait: c.Duration("wait"), Progress: c.App.ErrWriter,
			})
		},
	}
}

func temporalRegisterCommand() *cli.Command {
	return &cli.Command{
		Name:  "register",
		Usage: "create conveyor's namespace and search attributes if absent",
		Description: "Waits for the frontend, creates the configured namespace when it does not exist\n" +
			"and adds the search attributes conveyor's workflows set (ConveyorProject,\n" +
			"ConveyorChange, ...) that it lacks. An attribute registered with another type\n" +
			"is refused: Temporal cannot change a type, a person must decide.\n\n" +
			"Example:\n\n   conveyor temporal register --address temporal.example.org:7233 --namespace conveyor",
		Flags: append([]cli.Flag{
			&cli.DurationFlag{Name: "retention", Value: 30 * 24 * time.Hour,
				Usage: "how long (`DURATION`) a new namespace keeps closed workflows' histories"},
			&cli.DurationFlag{Name: "wait", Value: 2 * time.Minute, Usage: "how long (`DURATION`) to wait for the frontend"},
		}, temporalclient.Flags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("unexpected arguments %q: register takes only flags", c.Args().Slice())
			}
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			sctx, stop := signalContext(c)
			defer stop()
			ctx, cancel := context.WithTimeout(sctx, c.Duration("wait"))
			defer cancel()
			o, err := temporalclient.Options(cfg.Temporal)
			if err != nil {
				return err
			}
			o.Logger = tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelError})))
			cl, err := temporalsetup.Dial(ctx, o)
			if err != nil {
				return err
			}
			defer cl.Close()
			return temporalsetup.Register(ctx, cl, temporalsetup.RegisterOptions{
				Namespace: cfg.Temporal.Namespace, Retention: c.Duration("retention"), Progress: c.App.ErrWriter,
			})
		},
	}
}
