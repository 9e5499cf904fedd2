package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/wikimedia/conveyor/internal/dev/devstack"
)

func devLogsCommand() *cli.Command {
	return &cli.Command{
		Name:      "logs",
		Usage:     "print a component's log, or follow it with -f",
		ArgsUsage: "COMPONENT [-f]",
		Description: "Prints the log file of COMPONENT (a NAME from `conveyor dev status`). With\n" +
			"-f, keeps printing what is appended until interrupted, like tail -f.\n\n" +
			"Example:\n\n   conveyor dev logs temporal -f",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new lines until interrupted"},
		},
		Action: func(c *cli.Context) error {
			// urfave/cli stops parsing flags at the first argument; accept the
			// natural `logs temporal -f` as well as `logs -f temporal`.
			args, follow := c.Args().Slice(), c.Bool("follow")
			args = slices.DeleteFunc(args, func(a string) bool {
				if a == "-f" || a == "--follow" {
					follow = true
					return true
				}
				return false
			})
			if len(args) != 1 {
				return fmt.Errorf("usage: conveyor dev logs COMPONENT [-f]: want one component (a NAME from `conveyor dev status`), got %d", len(args))
			}
			o, err := devOptions(c)
			if err != nil {
				return err
			}
			path, err := devstack.LogFile(o, args[0])
			if err != nil {
				return fmt.Errorf("finding the log of %s: %w", args[0], err)
			}
			if !follow {
				return printFile(c.App.Writer, path)
			}
			ctx, stop := signalContext(c)
			defer stop()
			return followFile(ctx, c.App.Writer, path, 250*time.Millisecond)
		},
	}
}

// printFile copies the file at path to w.
func printFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("reading log: %w", err)
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// followFile copies the file at path to w, then keeps copying what is appended to it,
// checking every poll, until ctx is done. A file that is truncated or replaced (log
// rotation, a component restarted with a fresh log) is read again from its start.
func followFile(ctx context.Context, w io.Writer, path string, poll time.Duration) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("reading log: %w", err)
	}
	defer func() { f.Close() }()
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if _, err := io.Copy(w, f); err != nil {
			return fmt.Errorf("reading log: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		cur, err := f.Stat()
		if err != nil {
			return fmt.Errorf("reading log: %w", err)
		}
		onDisk, err := os.Stat(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			continue // Being replaced; keep the old file until the new one appears.
		case err != nil:
			return fmt.Errorf("reading log: %w", err)
		case !os.SameFile(cur, onDisk):
			nf, err := os.Open(path)
			if err != nil {
				return fmt.Errorf("reading log: %w", err)
			}
			// The tail of the old file, written since the last copy.
			if _, err := io.Copy(w, f); err != nil {
				return fmt.Errorf("reading log: %w", err)
			}
			f.Close()
			f = nf
		default:
			if off, err := f.Seek(0, io.SeekCurrent); err == nil && onDisk.Size() < off {
				if _, err := f.Seek(0, io.SeekStart); err != nil {
					return fmt.Errorf("reading log: %w", err)
				}
			}
		}
	}
}
