// Package workspace keeps checkouts of git repositories, one directory a commit,
// under <stateDir>/workspaces/<hash of the repository>/<commit>.
//
// A checkout is fetched and checked out in a temporary directory next to its final
// place and renamed into place only when complete, so a worker that crashes halfway
// leaves a temporary directory (removed later), never a half checkout under a
// commit's name. A checkout that exists is reused as it is: asking again for the
// same commit costs one stat, and for a branch or a change ref one `git ls-remote`.
//
// The checkout holds the commit's files without a .git directory: the directory is
// a build context, and a .git index (with its checkout timestamps) in it would make
// the images built from the same commit differ.
//
// Everything goes through the git command rather than a Go implementation of git:
// Debian's git speaks every transport and protocol version the servers do (Gerrit's
// refs/changes/* fetches, shallow fetches by commit, ssh with the system's
// configuration, credential helpers), which is the robust choice for fetching
// arbitrary repositories.
package workspace

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// ErrNotFound matches (errors.Is) the errors of Ensure and EnsureCommit when the
// repository, the ref or the commit does not exist. Retrying does not help.
var ErrNotFound = errors.New("not found")

// ErrInvalidRef matches (errors.Is) the errors of Ensure and EnsureCommit when the
// ref or the repository cannot be a git ref or repository at all. Retrying does
// not help.
var ErrInvalidRef = errors.New("invalid ref")

// tmpPrefix names the temporary directories of checkouts in progress.
const tmpPrefix = ".tmp-"

// staleAfter is the age after which a temporary directory is a crashed worker's
// leftover rather than a checkout in progress.
const staleAfter = 24 * time.Hour

// Source is one commit of one repository. It has the fields of the activities'
// contract.Source, so either converts to the other.
type Source struct {
	// Repo is a git URL or a local path.
	Repo string
	// Commit is a full commit hash.
	Commit string
	// Branch is the branch the ref resolved through, without refs/heads/; empty
	// when the ref was not a branch (a change ref, a tag, a commit).
	Branch string
}

var commitRE = regexp.MustCompile(`^([0-9a-fA-F]{40}|[0-9a-fA-F]{64})$`)

// Dir is the directory of src's checkout under stateDir. src.Repo must be spelled
// as Ensure returns it (local paths made absolute) for the directory to be found.
func Dir(stateDir string, src Source) string {
	return filepath.Join(repoDir(stateDir, src.Repo), src.Commit)
}

func repoDir(stateDir, repo string) string {
	sum := sha256.Sum256([]byte(repo))
	return filepath.Join(stateDir, "workspaces", hex.EncodeToString(sum[:8]))
}

// Ensure resolves ref in repo and returns the resolved commit with the directory of
// its checkout, fetching and checking it out if it is not there yet. repo is a git
// URL, an scp-like address (host:path) or a local path (a work tree or a bare
// repository); the returned Source names a local path absolutely. ref is a branch,
// a tag, a full commit hash, HEAD or any full ref name such as a Gerrit change ref
// (refs/changes/34/1234/2), which a plain clone would not fetch.
//
// Errors match ErrNotFound when the repository or the ref does not exist and
// ErrInvalidRef when ref is not a ref name; other errors (network, disk) may go
// away on retry. They say what was tried: "fetching refs/changes/34/1234/2 from
// /srv/hello: fatal: couldn't find remote ref ... (does the ref exist?)".
func Ensure(ctx context.Context, stateDir, repo, ref string) (Source, string, error) {
	repo, err := normalizeRepo(repo)
	if err != nil {
		return Source{}, "", err
	}
	if err := checkRef(ref); err != nil {
		return Source{}, "", err
	}
	if commitRE.MatchString(ref) {
		src := Source{Repo: repo, Commit: strings.ToLower(ref)}
		dir, err := EnsureCommit(ctx, stateDir, src)
		return src, dir, err
	}
	name, commit, err := resolveRef(ctx, repo, ref)
	if err != nil {
		return Source{}, "", err
	}
	src := Source{Repo: repo, Commit: commit}
	if branch, ok := strings.CutPrefix(name, "refs/heads/"); ok {
		src.Branch = branch
	}
	if dir := Dir(stateDir, src); isDir(dir) {
		touch(dir)
		return src, dir, nil
	}
	commit, dir, err := checkout(ctx, stateDir, repo, name, func(gitDir string) (string, error) {
		if _, err := git(ctx, "--git-dir", gitDir, "fetch", "--quiet", "--no-tags", "--depth=1", "--", repo, name); err != nil {
			return "", fetchError(name, repo, err)
		}
		return "FETCH_HEAD", nil
	})
	if err != nil {
		return Source{}, "", err
	}
	// The ref may have moved between ls-remote and fetch: the fetched commit wins.
	src.Commit = commit
	return src, dir, nil
}

// EnsureCommit returns the directory of src's checkout, fetching src.Commit from
// src.Repo if it is not there yet. Activities that receive a Source from
// PrepareSource call it on whatever worker they run.
func EnsureCommit(ctx context.Context, stateDir string, src Source) (string, error) {
	repo, err := normalizeRepo(src.Repo)
	if err != nil {
		return "", err
	}
	if !commitRE.MatchString(src.Commit) {
		return "", invalidReff("commit %q is not a full commit hash", src.Commit)
	}
	commit := strings.ToLower(src.Commit)
	if dir := Dir(stateDir, Source{Repo: repo, Commit: commit}); isDir(dir) {
		touch(dir)
		return dir, nil
	}
	got, dir, err := checkout(ctx, stateDir, repo, commit, func(gitDir string) (string, error) {
		_, err := git(ctx, "--git-dir", gitDir, "fetch", "--quiet", "--no-tags", "--depth=1", "--", repo, commit)
		if err == nil {
			return commit, nil
		}
		// Servers that refuse to send an unadvertised commit (uploadpack.
		// allowReachableSHA1InWant off) still send it with the refs it is on.
		if _, err := git(ctx, "--git-dir", gitDir, "fetch", "--quiet", "--no-tags", "--", repo, "+refs/*:refs/fetched/*"); err != nil {
			return "", fetchError(commit, repo, err)
		}
		if _, err := git(ctx, "--git-dir", gitDir, "cat-file", "-e", commit+"^{commit}"); err != nil {
			return "", notFoundf("fetching commit %s from %s: no branch, tag or ref of the repository leads to it (was it pushed?)", commit, repo)
		}
		return commit, nil
	})
	if err != nil {
		return "", err
	}
	if got != commit {
		return "", fmt.Errorf("fetching commit %s from %s: got commit %s instead", commit, repo, got)
	}
	return dir, nil
}

// checkout fetches with fetch into a new git directory, checks out the revision
// fetch returns in a temporary work tree and renames the tree to the commit's
// directory. It returns the commit and its directory.
func checkout(ctx context.Context, stateDir, repo, what string, fetch func(gitDir string) (string, error)) (string, string, error) {
	base := repoDir(stateDir, repo)
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", "", fmt.Errorf("creating the workspace of %s: %w", repo, err)
	}
	removeStale(base)
	tmp, err := os.MkdirTemp(base, tmpPrefix)
	if err != nil {
		return "", "", fmt.Errorf("creating the workspace of %s: %w", repo, err)
	}
	defer os.RemoveAll(tmp)

	gitDir, tree := filepath.Join(tmp, "git"), filepath.Join(tmp, "tree")
	if _, err := git(ctx, "init", "--quiet", "--bare", gitDir); err != nil {
		return "", "", fmt.Errorf("creating a git directory for %s: %w", repo, err)
	}
	rev, err := fetch(gitDir)
	if err != nil {
		return "", "", err
	}
	out, err := git(ctx, "--git-dir", gitDir, "rev-parse", "--verify", rev+"^{commit}")
	if err != nil {
		return "", "", fmt.Errorf("resolving %s of %s to a commit: %w", what, repo, err)
	}
	commit := strings.TrimSpace(out)
	dir := Dir(stateDir, Source{Repo: repo, Commit: commit})
	if isDir(dir) {
		touch(dir)
		return commit, dir, nil
	}
	if err := os.Mkdir(tree, 0o755); err != nil {
		return "", "", fmt.Errorf("checking out %s: %w", commit, err)
	}
	if _, err := git(ctx, "--git-dir", gitDir, "--work-tree", tree, "checkout", "--quiet", "--detach", "--force", commit); err != nil {
		return "", "", fmt.Errorf("checking out %s of %s: %w", commit, repo, err)
	}
	recordRepo(base, repo)
	if err := os.Rename(tree, dir); err != nil {
		// Another worker sharing the state directory finished the same commit first.
		if isDir(dir) {
			touch(dir)
			return commit, dir, nil
		}
		return "", "", fmt.Errorf("moving the checkout of %s into place: %w", commit, err)
	}
	touch(dir)
	return commit, dir, nil
}

// removeStale removes the temporary directories that crashed workers left in base.
func removeStale(base string) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tmpPrefix) {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleAfter {
			_ = os.RemoveAll(filepath.Join(base, e.Name()))
		}
	}
}

// normalizeRepo makes a local path absolute, so that a Source names the same
// repository whatever the working directory of the worker that reads it, and
// refuses a local path that does not exist.
func normalizeRepo(repo string) (string, error) {
	switch {
	case repo == "":
		return "", invalidReff("the repository is empty: give a git URL or a local path")
	case strings.HasPrefix(repo, "-"):
		return "", invalidReff("repository %q starts with '-'", repo)
	case strings.ContainsAny(repo, "\x00\n\r"):
		return "", invalidReff("repository %q holds a control character", repo)
	case isRemote(repo):
		return repo, nil
	}
	abs, err := filepath.Abs(repo)
	if err != nil {
		return "", fmt.Errorf("resolving the path %s: %w", repo, err)
	}
	if _, err := os.Stat(abs); errors.Is(err, fs.ErrNotExist) {
		return "", notFoundf("repository %s does not exist (give a git URL or the path of a repository on this machine)", abs)
	}
	return abs, nil
}

// isRemote tells a URL (scheme://...) or an scp-like address (host:path, no slash
// before the colon) from a local path, by git's own rule.
func isRemote(repo string) bool {
	if strings.Contains(repo, "://") {
		return true
	}
	colon := strings.IndexByte(repo, ':')
	return colon > 0 && !strings.Contains(repo[:colon], "/")
}

// checkRef refuses what git would read as an option or a refspec rather than a
// ref: git check-ref-format's rules, loosely, plus HEAD and commit hashes.
func checkRef(ref string) error {
	bad := ""
	switch {
	case ref == "":
		bad = "is empty"
	case strings.HasPrefix(ref, "-"):
		bad = "starts with '-'"
	case strings.ContainsAny(ref, " :^~?*[\\"):
		bad = "holds one of the characters space : ^ ~ ? * [ \\"
	case strings.Contains(ref, "..") || strings.Contains(ref, "@{") || strings.Contains(ref, "//"):
		bad = "holds '..', '@{' or '//'"
	case strings.HasSuffix(ref, "/") || strings.HasSuffix(ref, ".") || strings.HasSuffix(ref, ".lock"):
		bad = "ends with '/', '.' or '.lock'"
	}
	for _, c := range ref {
		if c < 0x20 || c == 0x7f {
			bad = "holds a control character"
		}
	}
	if bad != "" {
		return invalidReff("ref %q %s; give a branch, a tag, a full commit hash or a ref such as refs/changes/34/1234/2", ref, bad)
	}
	return nil
}

func isDir(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.IsDir()
}

// kindError is an error message that matches a sentinel with errors.Is without
// repeating the sentinel's text.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string        { return e.msg }
func (e *kindError) Is(target error) bool { return target == e.kind }

func notFoundf(format string, args ...any) error {
	return &kindError{msg: fmt.Sprintf(format, args...), kind: ErrNotFound}
}

func invalidReff(format string, args ...any) error {
	return &kindError{msg: fmt.Sprintf(format, args...), kind: ErrInvalidRef}
}
