package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/urfave/cli/v2"

	"github.com/wikimedia/conveyor/internal/lib/candidates"
	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/internal/lib/workspace"
)

// gcKinds are what gc can prune, in the order it prunes them.
var gcKinds = []string{"workspaces", "candidates"}

func gcCommand() *cli.Command {
	return &cli.Command{
		Name:      "gc",
		Usage:     "delete old workspaces and candidate images (--dry-run shows what would go)",
		ArgsUsage: " ",
		Description: "Deletes what conveyor's pipeline leaves behind and nothing else deletes, as the\n" +
			"configuration's retention says (docs/operating.md, \"Garbage collection\"):\n\n" +
			"   retention:\n" +
			"     workspaces: {maxAge: 168h, keep: 3}    # per repository, by last use\n" +
			"     candidates: {maxAge: 336h, keep: 10}   # per image, by pipeline run\n\n" +
			"An item goes only when it is older than maxAge AND not among the newest keep of\n" +
			"its group. Workspaces are the checkouts under <state dir>/workspaces, one per\n" +
			"commit; a checkout used within maxAge (at least 2h) is never removed, so one in\n" +
			"use by a running build is safe. Candidates are the images under\n" +
			"<registry>/candidates/; a digest that a kept tag shares, or that the service's\n" +
			"public repository has under any tag (it was published), is never deleted.\n\n" +
			"Run it where the workers' state directory is, from cron, e.g. daily. It prints\n" +
			"what it deleted; with --dry-run it deletes nothing and prints what it would.\n" +
			"Deleting a candidate removes its manifest; the registry frees the blobs only\n" +
			"when its own `registry garbage-collect <config.yml>` runs afterwards.\n\n" +
			"Examples:\n\n" +
			"   conveyor gc --dry-run                    # what would go, with the reasons\n" +
			"   conveyor gc --dry-run --verbose          # and what stays, and why\n" +
			"   conveyor gc --what workspaces            # prune only this host's checkouts\n" +
			"   conveyor gc --what candidates --image hello",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "delete nothing: print what would be deleted"},
			&cli.StringSliceFlag{Name: "what", Value: cli.NewStringSlice(gcKinds...),
				Usage: "comma-separated `KIND`s to prune: " + strings.Join(gcKinds, ", ")},
			&cli.StringSliceFlag{Name: "image", Usage: "prune only the candidates of `IMAGE` (hello for candidates/hello); repeatable", DefaultText: "every image"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "also print the candidates kept, with the reason"},
		},
		Action: gc,
	}
}

func gc(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: gc takes only flags (see `conveyor gc --help`)", c.Args().Slice())
	}
	what := c.StringSlice("what")
	for _, k := range what {
		if !slices.Contains(gcKinds, k) {
			return fmt.Errorf("--what: %q is not one of %s", k, strings.Join(gcKinds, ", "))
		}
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	dry := c.Bool("dry-run")
	w := c.App.Writer
	var errs []error
	if slices.Contains(what, "workspaces") {
		errs = append(errs, gcWorkspaces(w, cfg, dry))
	}
	if slices.Contains(what, "candidates") {
		errs = append(errs, gcCandidates(c, w, cfg, dry))
	}
	return errors.Join(errs...)
}

func gcWorkspaces(w io.Writer, cfg config.Config, dry bool) error {
	r := cfg.Retention.Workspaces
	fmt.Fprintf(w, "Workspaces in %s/workspaces (keeping the newest %d of each repository and any used within %s):\n", cfg.StateDir, r.Keep, r.MaxAge)
	now := time.Now()
	pruned, err := workspace.Prune(cfg.StateDir, workspace.Retention{MaxAge: r.MaxAge, Keep: r.Keep}, now, dry)
	verb := map[bool]string{true: "would remove", false: "removed"}[dry]
	for _, p := range pruned {
		what := p.Repo
		if p.Leftover {
			what = "unfinished checkout of a crashed worker"
		}
		if what == "" {
			what = "repository unknown"
		}
		fmt.Fprintf(w, "  %s %s (%s; last used %s, %s ago)\n", verb, p.Dir, what, p.LastUsed.UTC().Format(time.DateTime), ago(now.Sub(p.LastUsed)))
	}
	fmt.Fprintf(w, "  %s %d\n", verb, len(pruned))
	if err != nil {
		return fmt.Errorf("pruning workspaces: %w", err)
	}
	return nil
}

func gcCandidates(c *cli.Context, w io.Writer, cfg config.Config, dry bool) error {
	r := cfg.Retention.Candidates
	reg, err := name.NewRegistry(cfg.Registry.Address, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("registry.address %q: %w", cfg.Registry.Address, err)
	}
	fmt.Fprintf(w, "Candidates in %s/%s (keeping the newest %d of each image and any pushed within %s):\n", reg, candidates.Prefix, r.Keep, r.MaxAge)
	auth := authn.Anonymous
	if cfg.Registry.Username != "" {
		auth = authn.FromConfig(authn.AuthConfig{Username: cfg.Registry.Username, Password: cfg.Registry.Password})
	}
	tags, err := candidates.Prune(c.Context, reg, candidates.Options{
		Retention: candidates.Retention{MaxAge: r.MaxAge, Keep: r.Keep},
		Images:    c.StringSlice("image"),
		DryRun:    dry,
		Remote:    []remote.Option{remote.WithAuth(auth)},
	})
	now := time.Now()
	verb := map[bool]string{true: "would delete", false: "deleted"}[dry]
	digests := map[string]bool{}
	for _, t := range tags {
		pushed := "pushed at an unknown time"
		if !t.Pushed.IsZero() {
			pushed = fmt.Sprintf("pushed %s, %s ago", t.Pushed.Format(time.DateTime), ago(now.Sub(t.Pushed)))
		}
		switch {
		case t.Deleted:
			digests[t.Digest] = true
			fmt.Fprintf(w, "  %s %s@%s (%s)\n", verb, t.Ref, t.Digest, pushed)
		case c.Bool("verbose"):
			fmt.Fprintf(w, "  kept %s (%s): %s\n", t.Ref, pushed, strings.TrimPrefix(t.Reason, "kept: "))
		}
	}
	fmt.Fprintf(w, "  %s %d digests of %d candidate tags", verb, len(digests), len(tags))
	if len(digests) > 0 && !dry {
		fmt.Fprint(w, "; `registry garbage-collect` on the registry's host frees their blobs")
	}
	fmt.Fprintln(w)
	if err != nil {
		hint := ""
		if cfg.Registry.Username == "" && !dry {
			hint = " (deleting needs the registry's credentials: set registry.username and registry.password or passwordFile)"
		}
		return fmt.Errorf("pruning candidates: %w%s", err, hint)
	}
	return nil
}

// ago writes d in days, or hours under two days.
func ago(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
	return d.Truncate(time.Minute).String()
}
