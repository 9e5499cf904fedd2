package workspace

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// repoFile, in a repository's directory, names the repository, so that what Prune
// reports says more than a hash.
const repoFile = ".repo"

// Retention is how many checkouts Prune keeps.
type Retention struct {
	// MaxAge protects every checkout used more recently than this.
	MaxAge time.Duration
	// Keep protects the Keep most recently used checkouts of each repository,
	// whatever their age.
	Keep int
}

// Pruned is a checkout that Prune removed, or would remove in a dry run.
type Pruned struct {
	// Dir is the checkout's directory.
	Dir string
	// Repo is the repository, "" when the workspace predates its recording.
	Repo string
	// LastUsed is when Ensure or EnsureCommit last returned the checkout.
	LastUsed time.Time
	// Leftover says Dir is a crashed worker's unfinished checkout, not a commit's.
	Leftover bool
}

// Prune removes the checkouts under stateDir that are older than r.MaxAge and not
// among the newest r.Keep of their repository, and the unfinished checkouts that
// crashed workers left. With dryRun it removes nothing and returns what it would
// remove. It returns what it removed, oldest first, and goes on past a checkout
// it cannot remove, returning the errors joined.
//
// A checkout's age is the time since its directory's modification time, which
// Ensure and EnsureCommit set each time they return it. That is how a checkout in
// use is told from an idle one without a lock that a killed worker would leave
// behind: an activity uses a checkout only after Ensure or EnsureCommit returned
// it, and for at most its start-to-close timeout (an hour for builds); each retry
// asks again. So a checkout untouched for longer than the longest activity is not
// in use, and config.MinWorkspaceAge keeps r.MaxAge above that. The one race left,
// an Ensure between Prune's look and its removal, is narrowed by moving the
// checkout aside first and looking again (see remove); an activity that loses it
// all the same fails with a retryable error and checks the commit out again.
func Prune(stateDir string, r Retention, now time.Time, dryRun bool) ([]Pruned, error) {
	root := filepath.Join(stateDir, "workspaces")
	repos, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing the workspaces in %s: %w", root, err)
	}
	var out []Pruned
	var errs []error
	for _, e := range repos {
		if !e.IsDir() {
			continue
		}
		base := filepath.Join(root, e.Name())
		victims, err := expired(base, r, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, v := range victims {
			if !dryRun {
				if err := remove(v, now, r.MaxAge); err != nil {
					errs = append(errs, err)
					continue
				}
			}
			out = append(out, v)
		}
	}
	slices.SortStableFunc(out, func(a, b Pruned) int { return a.LastUsed.Compare(b.LastUsed) })
	return out, errors.Join(errs...)
}

// expired lists the checkouts of one repository's directory that r does not keep.
func expired(base string, r Retention, now time.Time) ([]Pruned, error) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return nil, fmt.Errorf("listing the checkouts in %s: %w", base, err)
	}
	repo := ""
	if b, err := os.ReadFile(filepath.Join(base, repoFile)); err == nil {
		repo = strings.TrimSpace(string(b))
	}
	var checkouts, out []Pruned
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		p := Pruned{Dir: filepath.Join(base, e.Name()), Repo: repo, LastUsed: info.ModTime()}
		switch {
		case strings.HasPrefix(e.Name(), tmpPrefix):
			if now.Sub(p.LastUsed) > staleAfter {
				p.Leftover = true
				out = append(out, p)
			}
		case commitRE.MatchString(e.Name()):
			checkouts = append(checkouts, p)
		}
	}
	// Newest first; the commit breaks ties so that the choice does not depend on
	// the order of the directory.
	slices.SortFunc(checkouts, func(a, b Pruned) int {
		return cmp.Or(b.LastUsed.Compare(a.LastUsed), strings.Compare(a.Dir, b.Dir))
	})
	for i, c := range checkouts {
		if i >= r.Keep && now.Sub(c.LastUsed) > r.MaxAge {
			out = append(out, c)
		}
	}
	return out, nil
}

// remove moves the checkout aside under a temporary name, so that Ensure no
// longer finds it, then removes it, unless Ensure touched it just before the
// move: it is then in use, and goes back.
func remove(p Pruned, now time.Time, maxAge time.Duration) error {
	if p.Leftover {
		return removeAll(p.Dir)
	}
	aside := filepath.Join(filepath.Dir(p.Dir), tmpPrefix+"gc-"+filepath.Base(p.Dir))
	if err := os.Rename(p.Dir, aside); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("removing the checkout %s: %w", p.Dir, err)
	}
	if info, err := os.Stat(aside); err == nil && now.Sub(info.ModTime()) <= maxAge {
		if err := os.Rename(aside, p.Dir); err == nil {
			return fmt.Errorf("keeping the checkout %s: it was used while gc ran", p.Dir)
		}
		// A new checkout of the commit took the name meanwhile: this one is spare.
	}
	return removeAll(aside)
}

func removeAll(dir string) error {
	// A checkout holds read-only directories when the repository does; removal
	// needs write permission on each.
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	return nil
}

// touch marks dir as used now, for Prune. It fails only when dir went away
// meanwhile (Prune took it), and the caller's use then fails and is retried.
func touch(dir string) {
	now := time.Now()
	_ = os.Chtimes(dir, now, now)
}

// recordRepo writes the repository's name into its directory once.
func recordRepo(base, repo string) {
	p := filepath.Join(base, repoFile)
	if _, err := os.Stat(p); err == nil {
		return
	}
	_ = os.WriteFile(p, []byte(repo+"\n"), 0o644)
}
