package workspace

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeCheckout makes a checkout directory of repo last used age ago.
func fakeCheckout(t *testing.T, state, repo, commit string, age time.Duration) string {
	t.Helper()
	dir := Dir(state, Source{Repo: repo, Commit: commit})
	writeFile(t, filepath.Join(dir, "README"), commit+"\n")
	recordRepo(filepath.Dir(dir), repo)
	setAge(t, dir, age)
	return dir
}

func setAge(t *testing.T, dir string, age time.Duration) {
	t.Helper()
	at := time.Now().Add(-age)
	if err := os.Chtimes(dir, at, at); err != nil {
		t.Fatal(err)
	}
}

func commitN(n int) string { return strings.Repeat(string(rune('a'+n)), 40) }

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func TestPruneKeepsTheNewestAndTheYoung(t *testing.T) {
	state := t.TempDir()
	day := 24 * time.Hour
	// hello: five checkouts 1, 3, 10, 20 and 30 days old; keep 2 and a week.
	var hello []string
	for i, age := range []time.Duration{1 * day, 3 * day, 10 * day, 20 * day, 30 * day} {
		hello = append(hello, fakeCheckout(t, state, "https://example.org/hello", commitN(i), age))
	}
	// other: one old checkout, kept as its repository's newest.
	other := fakeCheckout(t, state, "https://example.org/other", commitN(9), 60*day)
	// A crashed worker's leftover, and one in progress.
	base := filepath.Dir(hello[0])
	leftover, inProgress := filepath.Join(base, tmpPrefix+"123"), filepath.Join(base, tmpPrefix+"456")
	writeFile(t, filepath.Join(leftover, "git", "HEAD"), "x")
	writeFile(t, filepath.Join(inProgress, "git", "HEAD"), "x")
	setAge(t, leftover, 2*day)

	r := Retention{MaxAge: 7 * day, Keep: 2}
	dry, err := Prune(state, r, time.Now(), true)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, p := range dry {
		dirs = append(dirs, p.Dir)
	}
	// Oldest first.
	want := []string{hello[4], hello[3], hello[2], leftover}
	if !slices.Equal(dirs, want) {
		t.Fatalf("dry run would prune\n%s\nwant\n%s", strings.Join(dirs, "\n"), strings.Join(want, "\n"))
	}
	if dry[0].Repo != "https://example.org/hello" || dry[0].Leftover || !dry[3].Leftover {
		t.Errorf("dry run reports %+v; want the repository named and the leftover marked", dry)
	}
	for _, d := range append(hello, other, leftover, inProgress) {
		if !exists(d) {
			t.Fatalf("the dry run removed %s", d)
		}
	}

	pruned, err := Prune(state, r, time.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(pruned) != len(want) {
		t.Fatalf("pruned %d directories; want %d", len(pruned), len(want))
	}
	for _, d := range want {
		if exists(d) {
			t.Errorf("%s is still there", d)
		}
	}
	for _, d := range []string{hello[0], hello[1], other, inProgress} {
		if !exists(d) {
			t.Errorf("%s was removed; it is kept", d)
		}
	}
	if entries, _ := os.ReadDir(base); slices.ContainsFunc(entries, func(e os.DirEntry) bool { return strings.HasPrefix(e.Name(), tmpPrefix+"gc-") }) {
		t.Errorf("a checkout moved aside was left behind in %s", base)
	}
}

func TestPruneOfNoWorkspacesIsNothing(t *testing.T) {
	pruned, err := Prune(t.TempDir(), Retention{}, time.Now(), false)
	if err != nil || len(pruned) != 0 {
		t.Fatalf("Prune of an empty state directory = %v, %v; want nothing", pruned, err)
	}
}

// A checkout that Ensure or EnsureCommit returns is marked as used, so that Prune
// does not take it from a running activity.
func TestEnsureMarksTheCheckoutUsed(t *testing.T) {
	r := newTestRepo(t)
	state := t.TempDir()
	ctx := context.Background()
	src, dir, err := Ensure(ctx, state, r.dir, "main")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := readFile(t, filepath.Join(filepath.Dir(dir), repoFile)), src.Repo+"\n"; got != want {
		t.Errorf("%s holds %q; want %q", repoFile, got, want)
	}
	old := Retention{MaxAge: time.Hour}
	for name, ensure := range map[string]func() error{
		"Ensure":       func() error { _, _, err := Ensure(ctx, state, r.dir, "main"); return err },
		"EnsureCommit": func() error { _, err := EnsureCommit(ctx, state, src); return err },
	} {
		setAge(t, dir, 48*time.Hour)
		if err := ensure(); err != nil {
			t.Fatal(err)
		}
		if pruned, err := Prune(state, old, time.Now(), true); err != nil || len(pruned) != 0 {
			t.Errorf("after %s, Prune would remove %v (%v); want the checkout kept as just used", name, pruned, err)
		}
	}
	setAge(t, dir, 48*time.Hour)
	if pruned, _ := Prune(state, old, time.Now(), false); len(pruned) != 1 || exists(dir) {
		t.Fatalf("Prune of a checkout unused for two days = %v; want it removed", pruned)
	}
}
