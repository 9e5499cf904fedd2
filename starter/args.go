package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
)

// interspersed returns a context whose flags include those given among the
// arguments, and the arguments without them: urfave/cli stops parsing flags at
// the first argument, and `export ID -o FILE` is the natural order. "--" ends the
// flags.
func interspersed(c *cli.Context) (*cli.Context, []string, error) {
	rest := c.Args().Slice()
	if !hasFlag(rest) {
		return c, rest, nil
	}
	set := flag.NewFlagSet(c.Command.Name, flag.ContinueOnError)
	set.SetOutput(io.Discard)
	for _, f := range c.Command.Flags {
		if err := f.Apply(set); err != nil {
			return nil, nil, err
		}
	}
	for _, name := range c.FlagNames() {
		if c.IsSet(name) {
			_ = set.Set(name, fmt.Sprint(c.Value(name)))
		}
	}
	var args []string
	for len(rest) > 0 {
		switch {
		case rest[0] == "--":
			args, rest = append(args, rest[1:]...), nil
		case !strings.HasPrefix(rest[0], "-") || rest[0] == "-":
			args, rest = append(args, rest[0]), rest[1:]
		default:
			if err := set.Parse(rest); err != nil {
				return nil, nil, fmt.Errorf("%v (see `conveyor %s --help`)", err, c.Command.FullName())
			}
			rest = set.Args()
		}
	}
	// Each name of a flag is a flag of its own in the set: give the value of the
	// one set (-o) to its other names (--output), as urfave/cli does.
	visited := map[string]bool{}
	set.Visit(func(f *flag.Flag) { visited[f.Name] = true })
	for _, f := range c.Command.Flags {
		names := f.Names()
		for _, n := range names {
			if !visited[n] {
				continue
			}
			v := set.Lookup(n).Value.String()
			for _, other := range names {
				if other != n {
					_ = set.Set(other, v)
				}
			}
			break
		}
	}
	nc := cli.NewContext(c.App, set, c)
	nc.Command = c.Command
	return nc, args, nil
}

func hasFlag(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			return true
		}
	}
	return false
}
