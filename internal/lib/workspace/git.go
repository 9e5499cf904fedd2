package workspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// GitError is a git command that failed, with the end of what it wrote on stderr.
type GitError struct {
	// Args are the command's arguments after "git" and the -c options.
	Args []string
	// Stderr is the command's trimmed standard error, at most a few lines.
	Stderr string
	Err    error
}

func (e *GitError) Error() string {
	msg := "git " + strings.Join(e.Args, " ") + ": " + e.Err.Error()
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

// Unwrap returns the process error (an *exec.ExitError or the context's error).
func (e *GitError) Unwrap() error { return e.Err }

// maxStderr bounds the stderr kept in a GitError.
const maxStderr = 2000

// git runs the git command and returns its standard output. Local repositories
// are reached with the file protocol, which git restricts by default for
// submodules and some transports (protocol.file.allow): conveyor fetches local
// paths on purpose, so it allows it. Git never prompts: a missing credential is an
// error, not a hung activity.
func git(ctx context.Context, args ...string) (string, error) {
	full := append([]string{"-c", "protocol.file.allow=always", "-c", "advice.detachedHead=false"}, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "LC_ALL=C")
	if os.Getenv("GIT_SSH_COMMAND") == "" {
		cmd.Env = append(cmd.Env, "GIT_SSH_COMMAND=ssh -o BatchMode=yes")
	}
	// git's helpers (upload-pack, ssh) may outlive a killed git and hold its pipes.
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > maxStderr {
			msg = "..." + msg[len(msg)-maxStderr:]
		}
		return "", &GitError{Args: args, Stderr: strings.Join(strings.Fields(msg), " "), Err: err}
	}
	return stdout.String(), nil
}

// resolveRef finds ref among repo's refs the way `git fetch repo ref` would (the
// name itself, then refs/<ref>, refs/tags/<ref>, refs/heads/<ref>) and returns its
// full name and commit. Annotated tags resolve to the commit they point at.
func resolveRef(ctx context.Context, repo, ref string) (string, string, error) {
	out, err := git(ctx, "ls-remote", "--", repo, ref, ref+"^{}")
	if err != nil {
		return "", "", classify(fmt.Sprintf("listing the refs of %s", repo), err)
	}
	refs := map[string]string{}
	for line := range strings.SplitSeq(out, "\n") {
		hash, name, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if ok {
			refs[name] = hash
		}
	}
	for _, name := range []string{ref, "refs/" + ref, "refs/tags/" + ref, "refs/heads/" + ref} {
		if hash, ok := refs[name+"^{}"]; ok {
			return name, hash, nil
		}
		if hash, ok := refs[name]; ok {
			return name, hash, nil
		}
	}
	if isHex(ref) {
		return "", "", notFoundf("resolving %s in %s: no such ref, and abbreviated commit hashes cannot be fetched; give the full 40-character hash", ref, repo)
	}
	return "", "", notFoundf("resolving %s in %s: no branch, tag or ref of that name (does the ref exist? was the change pushed?)", ref, repo)
}

// fetchError describes a failed fetch of what from repo.
func fetchError(what, repo string, err error) error {
	return classify(fmt.Sprintf("fetching %s from %s", what, repo), err)
}

// notFoundHints are what git says when the repository or the ref does not exist,
// as opposed to a network or server failure, which a retry may fix.
var notFoundHints = []string{
	"does not appear to be a git repository",
	"repository not found",
	"not found",
	"couldn't find remote ref",
	"not our ref",
	"unadvertised object",
	"no such remote ref",
	"not a valid object name",
}

// classify wraps a failed git command's error in doing's context, with ErrNotFound
// when git says the repository or ref does not exist.
func classify(doing string, err error) error {
	var ge *GitError
	if !errors.As(err, &ge) || ge.Err == context.Canceled || ge.Err == context.DeadlineExceeded {
		return fmt.Errorf("%s: %w", doing, err)
	}
	lower := strings.ToLower(ge.Stderr)
	for _, h := range notFoundHints {
		if strings.Contains(lower, h) {
			return notFoundf("%s: %s (does the repository exist? does the ref exist?)", doing, ge.Stderr)
		}
	}
	return fmt.Errorf("%s: %w", doing, err)
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}
