package promote

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/helmkit"
	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/internal/lib/repofile"
)

// PromotionConfig reads in.Service's promotion plan and Helm values from the
// configuration registry at in.Ref (its default branch when empty) and returns them
// with the commit they were read at. Files are read from that commit's tree (git
// cat-file), never from a work tree, so concurrent reads and edits cannot mix.
//
// The format is docs/promotion.md's "Configuration registry". A plan that is not
// valid, or names a cluster this worker does not know, is a non-retryable
// contract.ErrPromotionConfig listing every problem with its file and field.
func (a *Activities) PromotionConfig(ctx context.Context, in contract.PromotionConfigInput) (contract.PromotionConfigOutput, error) {
	if a.configRepo == "" && in.Optional {
		helmkit.Logger(ctx).Info("No configuration registry: no promotion plan", "service", in.Service)
		return contract.PromotionConfigOutput{Absent: true}, nil
	}
	if a.configRepo == "" {
		return contract.PromotionConfigOutput{}, nonRetryable(contract.ErrPromotionConfig,
			"the worker has no configuration registry: set promotion.configRepo in its configuration file (or CONVEYOR_CONFIG_REPO) to a git repository; `conveyor dev up` makes a sample one in the state directory")
	}
	if !serviceRE.MatchString(in.Service) {
		return contract.PromotionConfigOutput{}, nonRetryable(contract.ErrPromotionConfig,
			"service %q: want a lowercase name of letters, digits and '-' (at most 46), as in services/<service>/promotion.yaml", in.Service)
	}
	reg, err := a.openRegistry(ctx)
	if err != nil {
		return contract.PromotionConfigOutput{}, err
	}
	commit, err := reg.resolve(ctx, in.Ref)
	if err != nil {
		return contract.PromotionConfigOutput{}, err
	}
	if err := reg.onBranch(ctx, commit, cmp.Or(a.protected, config.DefaultProtectedBranch), in.Ref); err != nil {
		return contract.PromotionConfigOutput{}, err
	}
	if in.Image != "" {
		if err := a.checkPublished(ctx, in.Service, in.Image); err != nil {
			return contract.PromotionConfigOutput{}, err
		}
	}
	files, err := reg.serviceFiles(ctx, commit, in.Service)
	if errors.Is(err, errNoPlan) && in.Optional {
		helmkit.Logger(ctx).Info("The configuration registry has no promotion plan for the service", "service", in.Service, "commit", commit)
		return contract.PromotionConfigOutput{Absent: true}, nil
	}
	if err != nil {
		return contract.PromotionConfigOutput{}, err
	}
	plan, err := a.parsePlan(in.Service, files)
	if err != nil {
		var inv *invalidPlan
		if errors.As(err, &inv) {
			return contract.PromotionConfigOutput{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("the promotion plan of %s in %s at %s is invalid:\n%s", in.Service, a.configRepo, commit[:12], inv.Error()),
				contract.ErrPromotionConfig, nil)
		}
		return contract.PromotionConfigOutput{}, err
	}
	helmkit.Logger(ctx).Info("Read the promotion plan", "service", in.Service, "ref", in.Ref, "commit", commit, "clusters", len(plan.Production))
	return contract.PromotionConfigOutput{Commit: commit, Plan: plan, Simulated: a.simulatedClusters(plan)}, nil
}

// simulatedClusters lists the plan's clusters, staging's included, whose nodes are
// simulated, in the plan's order.
func (a *Activities) simulatedClusters(plan contract.PromotionPlan) []string {
	var out []string
	for _, t := range append([]contract.Target{plan.Staging}, plan.Production...) {
		if c, ok := a.clusters[t.Cluster]; ok && c.simulated && !slices.Contains(out, t.Cluster) {
			out = append(out, t.Cluster)
		}
	}
	return out
}

// errNoPlan matches the error of serviceFiles when the service has no plan.
var errNoPlan = errors.New("no promotion plan")

var (
	serviceRE = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,44}[a-z0-9])?$`)
	commitRE  = regexp.MustCompile(`^[0-9a-f]{40}$`)
)

// registry is the configuration registry's git directory on this worker: the
// repository itself when it is a local path, else a bare mirror under the state
// directory that fetches from it.
type registry struct {
	// dir is the git directory commands run in.
	dir string
	// remote is the URL to fetch from, "" for a local repository.
	remote string
	label  string
}

func (a *Activities) openRegistry(ctx context.Context) (*registry, error) {
	if st, err := os.Stat(a.configRepo); err == nil && st.IsDir() {
		return &registry{dir: a.configRepo, label: a.configRepo}, nil
	}
	if !strings.Contains(a.configRepo, ":") {
		return nil, nonRetryable(contract.ErrPromotionConfig,
			"the configuration registry %s (promotion.configRepo) is neither a local directory nor a git URL", a.configRepo)
	}
	sum := sha256.Sum256([]byte(a.configRepo))
	dir := filepath.Join(a.stateDir, "config-registry", hex.EncodeToString(sum[:8])+".git")
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return nil, err
		}
		tmp, err := os.MkdirTemp(filepath.Dir(dir), ".tmp-")
		if err != nil {
			return nil, err
		}
		if _, err := git(ctx, tmp, "init", "--quiet", "--bare"); err != nil {
			os.RemoveAll(tmp)
			return nil, err
		}
		if err := os.Rename(tmp, dir); err != nil {
			os.RemoveAll(tmp)
			if _, serr := os.Stat(filepath.Join(dir, "HEAD")); serr != nil {
				return nil, err
			}
		}
	}
	return &registry{dir: dir, remote: a.configRepo, label: a.configRepo}, nil
}

// resolve returns the full commit ref names; "" is the default branch (HEAD).
func (r *registry) resolve(ctx context.Context, ref string) (string, error) {
	if strings.HasPrefix(ref, "-") || strings.ContainsAny(ref, " \t\n:~^?*[\\") {
		return "", nonRetryable(contract.ErrPromotionConfig, "configuration ref %q is not a branch, tag or commit name", ref)
	}
	name := ref
	if name == "" {
		name = "HEAD"
	}
	if r.remote != "" {
		if err := r.fetch(ctx, name); err != nil {
			return "", err
		}
		if !commitRE.MatchString(name) {
			name = "refs/fetched/" + strings.TrimPrefix(name, "refs/")
		}
	}
	out, err := git(ctx, r.dir, "rev-parse", "--verify", "--quiet", "--end-of-options", name+"^{commit}")
	if err != nil {
		var ge *gitError
		if errors.As(err, &ge) && ctx.Err() == nil {
			return "", nonRetryable(contract.ErrPromotionConfig, "configuration ref %q: no such branch, tag or commit in the configuration registry %s", orHead(ref), r.label)
		}
		return "", err
	}
	return strings.TrimSpace(out), nil
}

// fetch brings ref from the remote into refs/fetched/*, or a commit into the
// object store.
func (r *registry) fetch(ctx context.Context, ref string) error {
	if commitRE.MatchString(ref) {
		if _, err := git(ctx, r.dir, "cat-file", "-e", ref+"^{commit}"); err == nil {
			return nil
		}
		_, err := git(ctx, r.dir, "fetch", "--quiet", "--no-tags", "--", r.remote, "+refs/heads/*:refs/fetched/heads/*", "+refs/tags/*:refs/fetched/tags/*")
		return err
	}
	dst := "refs/fetched/" + strings.TrimPrefix(ref, "refs/")
	_, err := git(ctx, r.dir, "fetch", "--quiet", "--no-tags", "--", r.remote, "+"+ref+":"+dst)
	if err != nil && ref != "HEAD" && !strings.HasPrefix(ref, "refs/") {
		// A short name: a branch or a tag.
		for _, full := range []string{"refs/heads/" + ref, "refs/tags/" + ref} {
			if _, ferr := git(ctx, r.dir, "fetch", "--quiet", "--no-tags", "--", r.remote, "+"+full+":"+dst); ferr == nil {
				return nil
			}
		}
	}
	if err != nil {
		return fmt.Errorf("fetching %s from the configuration registry %s: %w", ref, r.remote, err)
	}
	return nil
}

// onBranch refuses a commit that the registry's protected branch does not
// contain: an unmerged change of the registry (its own ref, or a branch anyone may
// push) must not choose a promotion's clusters, values or approvers.
func (r *registry) onBranch(ctx context.Context, commit, branch, ref string) error {
	tip := "refs/heads/" + branch
	if r.remote != "" {
		if err := r.fetch(ctx, tip); err != nil {
			return err
		}
		tip = "refs/fetched/heads/" + branch
	}
	if _, err := git(ctx, r.dir, "rev-parse", "--verify", "--quiet", "--end-of-options", tip+"^{commit}"); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return nonRetryable(contract.ErrPromotionConfig,
			"the configuration registry %s has no branch %s (promotion.protectedBranch): set promotion.protectedBranch to its reviewed branch", r.label, branch)
	}
	_, err := git(ctx, r.dir, "merge-base", "--is-ancestor", commit, tip)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exit) && exit.ExitCode() == 1: // not an ancestor
		return nonRetryable(contract.ErrPromotionConfig,
			"configuration ref %q is commit %s, which is not on the configuration registry's protected branch %s (promotion.protectedBranch): merge the change to %s first, then promote from %s or one of its commits",
			orHead(ref), commit[:12], branch, branch, branch)
	}
	return err
}

func orHead(ref string) string {
	if ref == "" {
		return "HEAD"
	}
	return ref
}

// serviceFiles reads every file under services/<service>/ at commit, by path.
func (r *registry) serviceFiles(ctx context.Context, commit, service string) (map[string][]byte, error) {
	dir := "services/" + service + "/"
	// -l adds each blob's size: "<mode> blob <object> <size>\t<path>".
	out, err := git(ctx, r.dir, "ls-tree", "-r", "-z", "-l", commit, "--", dir)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, entry := range strings.Split(out, "\x00") {
		meta, p, ok := strings.Cut(entry, "\t")
		if !ok {
			continue
		}
		if f := strings.Fields(meta); len(f) == 4 && f[1] == "blob" {
			size, _ := strconv.ParseInt(f[3], 10, 64)
			if err := repofile.Check(p, size, repofile.ConfigRegistryFile); err != nil {
				return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("the configuration registry %s at %s: %v", r.label, commit[:12], err),
					contract.ErrPromotionConfig, err)
			}
		}
		b, err := git(ctx, r.dir, "cat-file", "blob", commit+":"+p)
		if err != nil {
			return nil, err
		}
		files[p] = []byte(b)
	}
	if _, ok := files[dir+planFile]; !ok {
		known, _ := git(ctx, r.dir, "ls-tree", "--name-only", commit, "--", "services/")
		var names []string
		for _, l := range strings.Split(strings.TrimSpace(known), "\n") {
			if l != "" {
				names = append(names, strings.TrimPrefix(l, "services/"))
			}
		}
		list := "none"
		if len(names) > 0 {
			list = strings.Join(names, ", ")
		}
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"service %s has no promotion plan: %s%s does not exist at commit %s of the configuration registry %s (services there: %s); add it (docs/promotion.md, Configuration registry)",
			service, dir, planFile, commit[:12], r.label, list), contract.ErrPromotionConfig, errNoPlan)
	}
	return files, nil
}

// gitError is a git command that failed, with its standard error.
type gitError struct {
	args   []string
	stderr string
	err    error
}

func (e *gitError) Error() string {
	return fmt.Sprintf("git %s: %v: %s", strings.Join(e.args, " "), e.err, e.stderr)
}

func (e *gitError) Unwrap() error { return e.err }

// git runs git in dir and returns its standard output. It never prompts.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	full := append([]string{"-C", dir, "-c", "protocol.file.allow=always"}, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "LC_ALL=C")
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		msg := strings.Join(strings.Fields(stderr.String()), " ")
		if len(msg) > 1000 {
			msg = msg[:1000] + "..."
		}
		return "", &gitError{args: args, stderr: msg, err: err}
	}
	return stdout.String(), nil
}
