package workspace

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/internal/dev/gittest"
)

// testRepo is a git repository made for a test: two commits on main, the first
// also under a Gerrit change ref and an annotated tag.
type testRepo struct {
	dir            string
	first, second  string
	changeRef, tag string
}

func runGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return gittest.Git(t, dir, args...)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newTestRepo(t *testing.T) testRepo {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "hello")
	gittest.Git(t, t.TempDir(), "init", "--quiet", "--initial-branch=main", dir)
	writeFile(t, filepath.Join(dir, "README"), "first\n")
	writeFile(t, filepath.Join(dir, "www", "cgi-bin", "hello"), "#!/bin/sh\n")
	if err := os.Chmod(filepath.Join(dir, "www", "cgi-bin", "hello"), 0o755); err != nil {
		t.Fatal(err)
	}
	gittest.Git(t, dir, "add", ".")
	gittest.Git(t, dir, "commit", "--quiet", "-m", "first")
	first := gittest.Git(t, dir, "rev-parse", "HEAD")
	writeFile(t, filepath.Join(dir, "README"), "second\n")
	gittest.Git(t, dir, "commit", "--quiet", "-am", "second")
	second := gittest.Git(t, dir, "rev-parse", "HEAD")
	r := testRepo{dir: dir, first: first, second: second, changeRef: "refs/changes/34/1234/2", tag: "v1.0"}
	// Gerrit keeps patch sets under refs/changes/, which a clone does not fetch.
	gittest.Git(t, dir, "update-ref", r.changeRef, first)
	gittest.Git(t, dir, "tag", "-a", "-m", "release", r.tag, first)
	return r
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEnsureResolvesEveryKindOfRef(t *testing.T) {
	r := newTestRepo(t)
	state := t.TempDir()
	bare := filepath.Join(t.TempDir(), "hello.git")
	gittest.Git(t, t.TempDir(), "clone", "--quiet", "--mirror", r.dir, bare)

	tests := []struct {
		name, repo, ref, commit, readme, branch string
	}{
		{"branch", r.dir, "main", r.second, "second\n", "main"},
		{"full branch ref", r.dir, "refs/heads/main", r.second, "second\n", "main"},
		{"HEAD", r.dir, "HEAD", r.second, "second\n", ""},
		{"change ref", r.dir, r.changeRef, r.first, "first\n", ""},
		{"annotated tag", r.dir, r.tag, r.first, "first\n", ""},
		{"full commit", r.dir, r.first, r.first, "first\n", ""},
		{"upper-case commit", r.dir, strings.ToUpper(r.second), r.second, "second\n", ""},
		{"bare repository", bare, r.changeRef, r.first, "first\n", ""},
		{"file URL", "file://" + r.dir, "main", r.second, "second\n", "main"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dir, err := Ensure(context.Background(), state, tt.repo, tt.ref)
			if err != nil {
				t.Fatalf("Ensure(%s, %s): %v", tt.repo, tt.ref, err)
			}
			if src.Commit != tt.commit {
				t.Errorf("commit = %s, want %s", src.Commit, tt.commit)
			}
			if src.Branch != tt.branch {
				t.Errorf("branch = %q, want %q (only a branch is reviewed code)", src.Branch, tt.branch)
			}
			if dir != Dir(state, src) {
				t.Errorf("dir = %s, want Dir(...) = %s", dir, Dir(state, src))
			}
			if got := readFile(t, filepath.Join(dir, "README")); got != tt.readme {
				t.Errorf("README = %q, want %q", got, tt.readme)
			}
			info, err := os.Stat(filepath.Join(dir, "www", "cgi-bin", "hello"))
			if err != nil || info.Mode().Perm()&0o111 == 0 {
				t.Errorf("www/cgi-bin/hello lost its executable bit: %v %v", info.Mode(), err)
			}
			if _, err := os.Stat(filepath.Join(dir, ".git")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the checkout holds a .git (%v); it must hold only the commit's files", err)
			}
		})
	}
}

func TestEnsureIsIdempotentAndAtomic(t *testing.T) {
	r := newTestRepo(t)
	state := t.TempDir()
	ctx := context.Background()
	src, dir, err := Ensure(ctx, state, r.dir, "main")
	if err != nil {
		t.Fatal(err)
	}
	if src.Repo != r.dir {
		t.Errorf("Source.Repo = %s, want the absolute path %s", src.Repo, r.dir)
	}
	// A file added to the checkout stays: a second call reuses it instead of
	// checking out again.
	marker := filepath.Join(dir, "marker")
	writeFile(t, marker, "kept")
	src2, dir2, err := Ensure(ctx, state, r.dir, "main")
	if err != nil || src2 != src || dir2 != dir {
		t.Fatalf("second Ensure = %+v %s %v, want %+v %s", src2, dir2, err, src, dir)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the second Ensure replaced the checkout: %v", err)
	}
	again, err := EnsureCommit(ctx, state, src)
	if err != nil || again != dir {
		t.Errorf("EnsureCommit = %s %v, want %s", again, err, dir)
	}
	// Nothing but finished checkouts (and the repository's name) is left in the
	// repository's directory.
	entries, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != src.Commit && e.Name() != repoFile {
			t.Errorf("left behind in the workspace: %s", e.Name())
		}
	}
}

func TestEnsureFetchesAgainWhenTheBranchMoves(t *testing.T) {
	r := newTestRepo(t)
	state := t.TempDir()
	ctx := context.Background()
	before, _, err := Ensure(ctx, state, r.dir, "main")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(r.dir, "README"), "third\n")
	gittest.Git(t, r.dir, "commit", "--quiet", "-am", "third")
	after, dir, err := Ensure(ctx, state, r.dir, "main")
	if err != nil {
		t.Fatal(err)
	}
	if after.Commit == before.Commit || after.Commit != gittest.Git(t, r.dir, "rev-parse", "HEAD") {
		t.Errorf("main resolved to %s after the new commit, want the new HEAD", after.Commit)
	}
	if got := readFile(t, filepath.Join(dir, "README")); got != "third\n" {
		t.Errorf("README = %q, want the new commit's", got)
	}
}

func TestEnsureCommitOnAnotherWorker(t *testing.T) {
	r := newTestRepo(t)
	src, _, err := Ensure(context.Background(), t.TempDir(), r.dir, r.changeRef)
	if err != nil {
		t.Fatal(err)
	}
	// A worker with its own state directory checks out the Source it was given.
	other := t.TempDir()
	dir, err := EnsureCommit(context.Background(), other, src)
	if err != nil {
		t.Fatal(err)
	}
	if dir != Dir(other, src) {
		t.Errorf("dir = %s, want %s", dir, Dir(other, src))
	}
	if got := readFile(t, filepath.Join(dir, "README")); got != "first\n" {
		t.Errorf("README = %q, want the change's", got)
	}
}

func TestRemovesStaleTemporaryDirectories(t *testing.T) {
	r := newTestRepo(t)
	state := t.TempDir()
	base := repoDir(state, r.dir)
	stale := filepath.Join(base, tmpPrefix+"crashed")
	writeFile(t, filepath.Join(stale, "tree", "half"), "x")
	recent := filepath.Join(base, tmpPrefix+"in-progress")
	writeFile(t, filepath.Join(recent, "tree", "half"), "x")
	past := time.Now().Add(-2 * staleAfter)
	if err := os.Chtimes(stale, past, past); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Ensure(context.Background(), state, r.dir, "main"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stale directory is still there: %v", err)
	}
	if _, err := os.Stat(recent); err != nil {
		t.Errorf("a recent temporary directory (another worker's checkout in progress) was removed: %v", err)
	}
}

func TestErrorsSayWhatWasTried(t *testing.T) {
	r := newTestRepo(t)
	state := t.TempDir()
	missing := filepath.Join(t.TempDir(), "nope")
	notRepo := t.TempDir()
	tests := []struct {
		name, repo, ref string
		kind            error
		says            []string
	}{
		{"unknown change", r.dir, "refs/changes/99/9999/1", ErrNotFound,
			[]string{"refs/changes/99/9999/1", r.dir, "does the ref exist?"}},
		{"unknown branch", r.dir, "nope", ErrNotFound, []string{"nope", r.dir}},
		{"unknown commit", r.dir, strings.Repeat("0", 40), ErrNotFound,
			[]string{"fetching commit " + strings.Repeat("0", 40) + " from " + r.dir}},
		{"abbreviated commit", r.dir, r.first[:7], ErrNotFound, []string{"full 40-character hash"}},
		{"missing repository", missing, "main", ErrNotFound, []string{missing, "does not exist"}},
		{"directory that is no repository", notRepo, "main", ErrNotFound, []string{notRepo}},
		{"option as ref", r.dir, "--upload-pack=touch /tmp/x", ErrInvalidRef, []string{"starts with '-'"}},
		{"refspec as ref", r.dir, "main:refs/heads/x", ErrInvalidRef, []string{"main:refs/heads/x"}},
		{"option as repository", "--upload-pack=x", "main", ErrInvalidRef, []string{"starts with '-'"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Ensure(context.Background(), state, tt.repo, tt.ref)
			if err == nil {
				t.Fatal("Ensure succeeded")
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("error %q is not %v", err, tt.kind)
			}
			for _, s := range tt.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
}

func TestEnsureFetchErrorOfAChangeRef(t *testing.T) {
	// The ref vanishes between ls-remote and fetch: the fetch error names the ref
	// and the repository.
	r := newTestRepo(t)
	err := fetchError(r.changeRef, r.dir, &GitError{Args: []string{"fetch"}, Stderr: "fatal: couldn't find remote ref " + r.changeRef, Err: errors.New("exit status 128")})
	want := "fetching refs/changes/34/1234/2 from " + r.dir + ": fatal: couldn't find remote ref refs/changes/34/1234/2 (does the repository exist? does the ref exist?)"
	if err.Error() != want || !errors.Is(err, ErrNotFound) {
		t.Errorf("fetchError = %q (not found: %v), want %q", err, errors.Is(err, ErrNotFound), want)
	}
}

func TestCancelledContextStopsGit(t *testing.T) {
	r := newTestRepo(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := Ensure(ctx, t.TempDir(), r.dir, "main")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Ensure with a cancelled context = %v, want context.Canceled", err)
	}
	if errors.Is(err, ErrNotFound) {
		t.Errorf("a cancelled fetch must stay retryable: %v", err)
	}
}

func TestDirDependsOnRepoAndCommit(t *testing.T) {
	a := Dir("/s", Source{Repo: "/r/a", Commit: "c1"})
	b := Dir("/s", Source{Repo: "/r/b", Commit: "c1"})
	if a == b || filepath.Base(a) != "c1" || !strings.HasPrefix(a, "/s/workspaces/") {
		t.Errorf("Dir gives %s and %s", a, b)
	}
}

func TestConcurrentEnsureOfOneCommit(t *testing.T) {
	r := newTestRepo(t)
	state := t.TempDir()
	const n = 4
	dirs := make(chan string, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			_, dir, err := Ensure(context.Background(), state, r.dir, r.changeRef)
			dirs <- dir
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
		if dir := <-dirs; readFile(t, filepath.Join(dir, "README")) != "first\n" {
			t.Errorf("%s does not hold the change", dir)
		}
	}
}
