package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	bkclient "github.com/moby/buildkit/client"
	"github.com/urfave/cli/v2"

	"github.com/wikimedia/conveyor/internal/lib/blubber"
)

func blubberCommand() *cli.Command {
	return &cli.Command{
		Name:  "blubber",
		Usage: "check, render and build Blubber v4 configs (.pipeline/blubber.yaml)",
		Description: "Blubber configs describe the image variants of an application. These commands\n" +
			"read one without Temporal: lint it, show the Dockerfile it stands for, or build a\n" +
			"variant on the local stack's BuildKit.\n\n" +
			"Examples:\n\n" +
			"   conveyor blubber lint .pipeline/blubber.yaml\n" +
			"   conveyor blubber dockerfile .pipeline/blubber.yaml production\n" +
			"   conveyor blubber build .pipeline/blubber.yaml production --tag localhost:5000/app:dev --push",
		Subcommands: []*cli.Command{blubberLintCommand(), blubberDockerfileCommand(), blubberBuildCommand()},
	}
}

func blubberLintCommand() *cli.Command {
	return &cli.Command{
		Name:      "lint",
		Usage:     "check a Blubber config and list its variants",
		ArgsUsage: "FILE",
		Description: "Checks the config in three passes (schema, unknown fields, references and\n" +
			"names) and prints every problem, one per line as FILE:LINE: FIELD: PROBLEM, then\n" +
			"exits 1. A valid config prints what its build will ignore (as upstream Blubber\n" +
			"does, e.g. apt on a variant without a base) as FILE:LINE: notice: ..., then its\n" +
			"variants, and exits 0.\n\n" +
			"Example:\n\n   conveyor blubber lint .pipeline/blubber.yaml",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("lint takes one FILE, got %d arguments (see `conveyor blubber lint --help`)", c.NArg())
			}
			file := c.Args().First()
			cfg, err := blubber.ParseFile(file)
			if err != nil {
				printConfigErrors(c.App.Writer, file, err)
				return cli.Exit("", 1)
			}
			for _, n := range cfg.Notices() {
				if n.Line > 0 {
					fmt.Fprintf(c.App.Writer, "%s:%d: notice: %s\n", file, n.Line, n)
				} else {
					fmt.Fprintf(c.App.Writer, "%s: notice: %s\n", file, n)
				}
			}
			fmt.Fprintf(c.App.Writer, "%s: valid Blubber %s config with %d variants:\n", file, blubber.ConfigVersion, len(cfg.Variants))
			for _, v := range cfg.VariantNames() {
				fmt.Fprintf(c.App.Writer, "  %s\n", v)
			}
			return nil
		},
	}
}

// printConfigErrors writes one line per problem, compiler style.
func printConfigErrors(w io.Writer, file string, err error) {
	var errs blubber.Errors
	if !errors.As(err, &errs) {
		fmt.Fprintf(w, "%s: %v\n", file, err)
		return
	}
	for _, e := range errs {
		if e.Line > 0 {
			fmt.Fprintf(w, "%s:%d: %s\n", file, e.Line, e)
		} else {
			fmt.Fprintf(w, "%s: %s\n", file, e)
		}
	}
}

func blubberDockerfileCommand() *cli.Command {
	return &cli.Command{
		Name:      "dockerfile",
		Usage:     "print the Dockerfile a variant stands for",
		ArgsUsage: "FILE VARIANT",
		Description: "Prints the build plan of VARIANT (and of the variants it copies from, as\n" +
			"earlier stages) as a Dockerfile, to read or to build with docker.\n\n" +
			"Example:\n\n   conveyor blubber dockerfile .pipeline/blubber.yaml production > Dockerfile",
		Action: func(c *cli.Context) error {
			cfg, variant, err := configAndVariant(c, "dockerfile")
			if err != nil {
				return err
			}
			df, err := cfg.Dockerfile(variant)
			if err != nil {
				return err
			}
			fmt.Fprint(c.App.Writer, df)
			return nil
		},
	}
}

func blubberBuildCommand() *cli.Command {
	return &cli.Command{
		Name:      "build",
		Usage:     "build a variant on the local stack's BuildKit",
		ArgsUsage: "FILE VARIANT",
		Description: "Builds VARIANT on buildkitd (the address and registry credentials come from\n" +
			"conveyor's configuration, see `conveyor dev up`). The image is reproducible: its\n" +
			"files and creation time are set to $SOURCE_DATE_EPOCH (default 0). With --tag it\n" +
			"is exported under that name and, with --push, pushed; the digest is printed.\n" +
			"With --test the variant's entrypoint runs as a build step instead, and a failure\n" +
			"prints its output. --build-arg NAME=VALUE (repeatable) overrides the default of a\n" +
			"build argument the config declares under `arguments`.\n\n" +
			"Examples:\n\n" +
			"   conveyor blubber build .pipeline/blubber.yaml production --tag localhost:5000/app:dev --push\n" +
			"   conveyor blubber build .pipeline/blubber.yaml make --build-arg MAKE_TARGET=bar\n" +
			"   conveyor blubber build .pipeline/blubber.yaml test --test --context ~/src/app",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "context", Value: ".", Usage: "build context `DIR` (its .dockerignore is honoured)"},
			&cli.StringFlag{Name: "tag", Usage: "image `REF` to export to, e.g. localhost:5000/app:dev"},
			&cli.BoolFlag{Name: "push", Usage: "push the image to --tag's registry"},
			&cli.BoolFlag{Name: "test", Usage: "run the variant's entrypoint as a build step instead of exporting"},
			&cli.GenericFlag{Name: "build-arg", Value: &buildArgs{}, Usage: "set build argument `NAME=VALUE` (repeatable)"},
		},
		Action: blubberBuild,
	}
}

func blubberBuild(c *cli.Context) error {
	args, flags, err := trailingFlags(c.Args().Slice(), c)
	if err != nil {
		return err
	}
	cfg, variant, err := configAndVariant(c, "build", args...)
	if err != nil {
		return err
	}
	tag := flags.tag
	if flags.push && tag == "" {
		return errors.New("--push needs --tag REF, e.g. --tag localhost:5000/app:dev")
	}
	plan, err := cfg.Plan(variant)
	if err != nil {
		return err
	}
	if err := plan.CheckBuildArgs(flags.buildArgs); err != nil {
		return fmt.Errorf("--build-arg: %w", err)
	}
	conf, err := loadConfig(c)
	if err != nil {
		return err
	}
	if conf.Buildkit.Address == "" {
		return errors.New("no BuildKit address: start the local stack with `conveyor dev up`, or set CONVEYOR_BUILDKIT_ADDRESS")
	}
	opts := blubber.BuildOptions{
		ContextDir: flags.context,
		Tag:        tag,
		Push:       flags.push,
		Test:       flags.test,
		BuildArgs:  flags.buildArgs,
		Registry:   conf.Registry.Address,
		Username:   conf.Registry.Username,
		Password:   conf.Registry.Password,
		Insecure:   isLocalRegistry(tag),
		Progress:   progressPrinter(c.App.ErrWriter),
	}
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", v)
		}
		opts.SourceDateEpoch = time.Unix(sec, 0)
	}
	bk, err := bkclient.New(c.Context, conf.Buildkit.Address)
	if err != nil {
		return fmt.Errorf("connecting to buildkitd at %s: %w", conf.Buildkit.Address, err)
	}
	defer bk.Close()
	res, err := blubber.Build(c.Context, bk, cfg, variant, opts)
	if err != nil {
		return err
	}
	switch {
	case opts.Test:
		fmt.Fprintf(c.App.Writer, "variant %s: tests passed\n", variant)
	case res.Ref != "":
		fmt.Fprintln(c.App.Writer, res.Ref)
	default:
		fmt.Fprintf(c.App.Writer, "variant %s built (pass --tag to export it)\n", variant)
	}
	return nil
}

// buildFlags are build's flags, wherever they were written.
type buildFlags struct {
	context, tag string
	push, test   bool
	buildArgs    map[string]string
}

// buildArgs is the value of the repeatable --build-arg NAME=VALUE flag. Unlike
// a string slice flag, it does not split values on commas.
type buildArgs map[string]string

// Set adds one NAME=VALUE.
func (b *buildArgs) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("--build-arg %q: want NAME=VALUE, e.g. --build-arg VERSION=1.2", s)
	}
	if *b == nil {
		*b = buildArgs{}
	}
	(*b)[name] = value
	return nil
}

func (b *buildArgs) String() string {
	if b == nil {
		return ""
	}
	parts := make([]string, 0, len(*b))
	for k, v := range *b {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// trailingFlags reads build's flags from after FILE VARIANT too: urfave/cli stops
// at the first argument, and `build FILE VARIANT --tag REF` is the natural order.
func trailingFlags(args []string, c *cli.Context) ([]string, buildFlags, error) {
	f := buildFlags{context: c.String("context"), tag: c.String("tag"), push: c.Bool("push"), test: c.Bool("test")}
	bargs := buildArgs{}
	if flagged, ok := c.Generic("build-arg").(*buildArgs); ok && flagged != nil {
		maps.Copy(bargs, *flagged)
	}
	f.buildArgs = bargs
	var rest []string
	for i := 0; i < len(args); i++ {
		name, value, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if !strings.HasPrefix(args[i], "-") {
			rest = append(rest, args[i])
			continue
		}
		switch name {
		case "push", "test":
			b := true
			if hasValue {
				v, err := strconv.ParseBool(value)
				if err != nil {
					return nil, f, fmt.Errorf("--%s=%q: want true or false", name, value)
				}
				b = v
			}
			if name == "push" {
				f.push = b
			} else {
				f.test = b
			}
		case "context", "tag", "build-arg":
			if !hasValue {
				if i+1 >= len(args) {
					return nil, f, fmt.Errorf("--%s needs a value", name)
				}
				i++
				value = args[i]
			}
			switch name {
			case "context":
				f.context = value
			case "tag":
				f.tag = value
			default:
				if err := bargs.Set(value); err != nil {
					return nil, f, err
				}
			}
		default:
			return nil, f, fmt.Errorf("unknown flag %s (see `conveyor blubber build --help`)", args[i])
		}
	}
	return rest, f, nil
}

// configAndVariant parses FILE and checks VARIANT, from args if given, else
// from c's arguments.
func configAndVariant(c *cli.Context, verb string, args ...string) (*blubber.Config, string, error) {
	if args == nil {
		args = c.Args().Slice()
	}
	if len(args) != 2 {
		return nil, "", fmt.Errorf("%s takes FILE VARIANT, got %d arguments (see `conveyor blubber %s --help`)", verb, len(args), verb)
	}
	file, variant := args[0], args[1]
	cfg, err := blubber.ParseFile(file)
	if err != nil {
		printConfigErrors(c.App.ErrWriter, file, err)
		return nil, "", cli.Exit(fmt.Sprintf("%s is not a valid Blubber config; `conveyor blubber lint %s` lists the problems", file, file), 1)
	}
	if _, ok := cfg.Variants[variant]; !ok {
		return nil, "", fmt.Errorf("%s has no variant %q; it has %s", file, variant, strings.Join(cfg.VariantNames(), ", "))
	}
	return cfg, variant, nil
}

// isLocalRegistry reports whether ref names a registry on this machine, which
// the local stack serves over plain HTTP.
func isLocalRegistry(ref string) bool {
	host, _, _ := strings.Cut(ref, "/")
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// progressPrinter prints each build step as it starts, and the steps' output.
func progressPrinter(w io.Writer) func(blubber.Progress) {
	started := map[string]bool{}
	return func(p blubber.Progress) {
		for _, v := range p.Status.Vertexes {
			if v.Started != nil && !started[v.Digest.String()] {
				started[v.Digest.String()] = true
				fmt.Fprintf(w, "=> %s\n", v.Name)
			}
		}
		for _, l := range p.Status.Logs {
			_, _ = w.Write(l.Data)
		}
	}
}
