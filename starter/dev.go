package main

import (
	"context"
	"fmt"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/wikimedia/conveyor/internal/dev/devstack"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

func devCommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "run the local stack: Temporal, BuildKit, a registry and Kubernetes",
		Description: "Manages the local stack, a set of background processes whose state, logs and\n" +
			"pid files live in the state directory (--state-dir, default .local).\n\n" +
			"Example:\n\n   conveyor dev up && conveyor dev status",
		Subcommands: []*cli.Command{devUpCommand(), devDownCommand(), devStatusCommand(), devLogsCommand()},
	}
}

// devOptions returns the devstack options the global flags and configuration ask for.
func devOptions(c *cli.Context) (devstack.Options, error) {
	cfg, err := loadConfig(c)
	if err != nil {
		return devstack.Options{}, err
	}
	return devstack.Options{StateDir: cfg.StateDir, Progress: c.App.ErrWriter}, nil
}

// signalContext is c's context, cancelled on SIGINT or SIGTERM.
func signalContext(c *cli.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
}

func devUpCommand() *cli.Command {
	return &cli.Command{
		Name:  "up",
		Usage: "start every component that is not running and wait until it is ready",
		Description: "Builds the pinned tools on first use (minutes, once), starts each component,\n" +
			"waits for it, and writes the stack's configuration file, which `conveyor` and\n" +
			"`conveyor-worker` then read by default. Running it again is harmless.\n" +
			"Progress goes to stderr; the addresses to use go to stdout.\n\n" +
			"Optional components start only with --with: `debian` builds the Debian base\n" +
			"image localhost:5000/conveyor/debian:bookworm with debootstrap (minutes, once);\n" +
			"`openstack` runs a two-region OpenStack (regions eqiad1 and eqiad2, Keystone on\n" +
			"127.0.0.1:5050) from Debian's packages for the cloud migration (about 4 minutes\n" +
			"the first time, ~2.4 GiB; `make deps` installs the packages);\n" +
			"`temporal-postgres` runs the production Temporal beside the dev server;\n" +
			"`docker` runs a Docker engine (Debian's dockerd, its socket\n" +
			"STATE/docker/docker.sock) for docker-compose.yml.\n\n" +
			"--temporal postgres runs Temporal as production does instead of the CLI's dev\n" +
			"server: Temporal's own server (frontend, history, matching and worker as four\n" +
			"processes) on PostgreSQL 15, its schema created and upgraded by a one-shot step,\n" +
			"conveyor's namespace and search attributes registered, and the Temporal UI server\n" +
			"(frontend 127.0.0.1:7333, UI http://127.0.0.1:8333). The state directory\n" +
			"remembers the choice; --temporal dev goes back to the dev server.\n\n" +
			"Example:\n\n   conveyor dev up\n   conveyor dev up --temporal postgres\n   conveyor dev up --with debian\n   conveyor dev up --with openstack\n   conveyor --state-dir /tmp/stack dev up",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "with", Usage: "also start the optional component `NAME` (debian, openstack, temporal-postgres, docker); repeatable"},
			&cli.StringFlag{Name: "temporal", Usage: "the Temporal to run and point the configuration at: `KIND` dev or postgres (default: what the state directory last ran, else dev)"},
			&cli.BoolFlag{Name: "rebuild", Usage: "build the optional components of --with again even when their image exists"},
		},
		Action: func(c *cli.Context) error {
			o, err := devOptions(c)
			if err != nil {
				return err
			}
			o.With, o.Rebuild, o.Temporal = c.StringSlice("with"), c.Bool("rebuild"), c.String("temporal")
			if o.Rebuild && len(o.With) == 0 {
				return cli.Exit("--rebuild needs --with NAME: it rebuilds optional components only", 2)
			}
			ctx, stop := signalContext(c)
			defer stop()
			path, err := devstack.Up(ctx, o)
			if err != nil {
				return fmt.Errorf("starting the local stack: %w", err)
			}
			cfg, err := config.Load(path, true)
			if err != nil {
				return err
			}
			printAddresses(c, cfg, path)
			return nil
		},
	}
}

// printAddresses tells the user where each component of the stack is.
func printAddresses(c *cli.Context, cfg config.Config, path string) {
	w := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "The local stack is up.\n")
	for _, l := range [][2]string{
		{"Temporal UI", cfg.Temporal.UIURL},
		{"Temporal", cfg.Temporal.Address + " (namespace " + cfg.Temporal.Namespace + ")"},
		{"BuildKit", cfg.Buildkit.Address},
		{"Registry", cfg.Registry.Address},
		{"Kubeconfig", cfg.Kubernetes.Kubeconfig},
		{"Configuration", path},
	} {
		if l[1] != "" {
			fmt.Fprintf(w, "  %s\t%s\n", l[0], l[1])
		}
	}
	w.Flush()
	fmt.Fprintf(c.App.Writer, "Next: conveyor-worker --config %s & conveyor ping\n", path)
}

func devDownCommand() *cli.Command {
	return &cli.Command{
		Name:  "down",
		Usage: "stop the components `conveyor dev up` started, in reverse order",
		Description: "Stops only what Up started, keeping the state directory, so the next `up`\n" +
			"finds its data again. Remove the state directory to start afresh.\n\n" +
			"Example:\n\n   conveyor dev down",
		Action: func(c *cli.Context) error {
			o, err := devOptions(c)
			if err != nil {
				return err
			}
			ctx, stop := signalContext(c)
			defer stop()
			if err := devstack.Down(ctx, o); err != nil {
				return fmt.Errorf("stopping the local stack: %w", err)
			}
			fmt.Fprintln(c.App.ErrWriter, "The local stack is down.")
			return nil
		},
	}
}

func devStatusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show each component's address, pid, health and log; exit 1 if any is unhealthy",
		Description: "Prints a table NAME ADDRESS PID STATE LOG, then why each unhealthy component\n" +
			"is so. Exits non-zero when anything is unhealthy, for scripts.\n\n" +
			"Example:\n\n   conveyor dev status || conveyor dev logs temporal",
		Action: func(c *cli.Context) error {
			o, err := devOptions(c)
			if err != nil {
				return err
			}
			st, err := devstack.Status(c.Context, o)
			if err != nil {
				return fmt.Errorf("reading the local stack's status: %w", err)
			}
			return printStatus(c, st)
		},
	}
}

// printStatus prints st as a table and returns an exit error naming the unhealthy
// components, if any.
func printStatus(c *cli.Context, st []devstack.ComponentStatus) error {
	w := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tADDRESS\tPID\tSTATE\tLOG")
	var bad, details []string
	for _, s := range st {
		pid, state := "-", "healthy"
		if s.PID > 0 {
			pid = strconv.Itoa(s.PID)
		}
		if !s.Healthy {
			state = "unhealthy"
			bad = append(bad, s.Name)
		}
		if s.Detail != "" {
			details = append(details, fmt.Sprintf("  %s: %s", s.Name, s.Detail))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.Name, orDash(s.Address), pid, state, orDash(s.Log))
	}
	w.Flush()
	if len(details) > 0 {
		fmt.Fprintf(c.App.Writer, "\n%s\n", strings.Join(details, "\n"))
	}
	if len(bad) > 0 {
		return cli.Exit(fmt.Sprintf("unhealthy: %s (see `conveyor dev logs NAME`; `conveyor dev up` starts what is down)", strings.Join(bad, ", ")), 1)
	}
	if len(st) == 0 {
		return cli.Exit("no components: run `conveyor dev up`", 1)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
