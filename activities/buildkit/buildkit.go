// Package buildkit holds the build pool's BuildKit activities: building a Blubber
// variant of a source on buildkitd, and running a variant's tests as a build step.
package buildkit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bkclient "github.com/moby/buildkit/client"
	"go.opentelemetry.io/otel/attribute"
	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/heartbeat"
	"github.com/wikimedia/conveyor/internal/lib/blubber"
	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/internal/lib/repofile"
	"github.com/wikimedia/conveyor/internal/lib/tracing"
	"github.com/wikimedia/conveyor/internal/lib/workspace"
)

// heartbeatEvery is how often a build reports progress to Temporal; it is well below
// the activities' heartbeat timeout, so a worker that dies is noticed quickly.
const heartbeatEvery = 5 * time.Second

// outputTail is how many lines of a failed step's output an error carries.
const outputTail = 40

// Activities builds on one buildkitd. The worker builds it once and registers it as a
// pointer; its methods are the activities named in activities/contract.
type Activities struct {
	cfg    config.Config
	client *bkclient.Client
}

// New connects to the buildkitd of cfg (the connection is made lazily).
func New(ctx context.Context, cfg config.Config) (*Activities, error) {
	if cfg.Buildkit.Address == "" {
		return nil, errors.New("buildkit.address is not configured (e.g. unix:///run/buildkit/buildkitd.sock)")
	}
	c, err := bkclient.New(ctx, cfg.Buildkit.Address)
	if err != nil {
		return nil, fmt.Errorf("connecting to buildkitd at %s: %w", cfg.Buildkit.Address, err)
	}
	return &Activities{cfg: cfg, client: c}, nil
}

// Close closes the buildkitd connection.
func (a *Activities) Close() error { return a.client.Close() }

// BuildVariant builds one variant of a source and, with Push, pushes it. Retrying it
// is cheap and harmless: buildkitd's cache makes a finished build a no-op, and
// pushing the same digest again changes nothing.
func (a *Activities) BuildVariant(ctx context.Context, in contract.BuildVariantInput) (contract.BuildVariantOutput, error) {
	start := time.Now()
	dir, cfg, err := a.prepare(ctx, in.Source, in.Blubber, in.Variant)
	if err != nil {
		return contract.BuildVariantOutput{}, err
	}
	opts := a.options(dir, in.Source)
	if in.Push != "" {
		opts.Tag, opts.Push = a.cfg.Registry.Address+"/"+in.Push, true
	}
	res, err := a.build(ctx, cfg, in.Variant, opts)
	if err != nil {
		return contract.BuildVariantOutput{}, err
	}
	out := contract.BuildVariantOutput{Duration: time.Since(start)}
	if in.Push != "" {
		repo, _, _ := strings.Cut(in.Push, ":")
		out.Digest = res.Digest
		out.Ref = a.cfg.Registry.Address + "/" + repo + "@" + res.Digest
	}
	return out, nil
}

// RunTests runs the variant's entrypoint as a build step. Failing tests are a
// non-retryable TestsFailed error carrying the output's last lines.
func (a *Activities) RunTests(ctx context.Context, in contract.RunTestsInput) (contract.RunTestsOutput, error) {
	dir, cfg, err := a.prepare(ctx, in.Source, in.Blubber, in.Variant)
	if err != nil {
		return contract.RunTestsOutput{}, err
	}
	opts := a.options(dir, in.Source)
	opts.Test = true
	logs := &testLog{}
	_, err = a.build(ctx, cfg, in.Variant, opts, logs.record)
	if err != nil {
		return contract.RunTestsOutput{}, err
	}
	return contract.RunTestsOutput{Output: logs.tail(outputTail)}, nil
}

// prepare checks the source out and reads its Blubber config.
func (a *Activities) prepare(ctx context.Context, src contract.Source, file, variant string) (string, *blubber.Config, error) {
	dir, err := workspace.EnsureCommit(ctx, a.cfg.StateDir, workspace.Source(src))
	if err != nil {
		return "", nil, fmt.Errorf("checking out %s at %s: %w", src.Repo, src.Commit, err)
	}
	cfg, err := blubber.ParseFile(filepath.Join(dir, file))
	if err != nil {
		return "", nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s: %v", file, err), contract.ErrInvalidBlubber, err)
	}
	if _, ok := cfg.Variants[variant]; !ok {
		return "", nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("%s: variants.%s: no such variant; define it or change the pipeline settings", file, variant), contract.ErrInvalidConfig, nil)
	}
	return dir, cfg, nil
}

// options builds a repository's config as untrusted code: its steps reach only
// the configured egress hosts, and its caches are its own (CacheScope).
func (a *Activities) options(dir string, src contract.Source) blubber.BuildOptions {
	return blubber.BuildOptions{
		ContextDir: dir,
		Insecure:   true,
		Registry:   a.cfg.Registry.Address,
		Username:   a.cfg.Registry.Username,
		Password:   a.cfg.Registry.Password,
		Egress:     &blubber.Egress{Allow: a.cfg.Buildkit.Egress.Allow},
		CacheScope: CacheScope(src),
	}
}

// CacheScope is the scope of a source's build caches: its repository and its
// branch, or "unreviewed" for change refs, tags and commits, so that an
// unreviewed patchset can plant nothing in what a branch's build uses, and no
// project reads another's caches.
func CacheScope(src contract.Source) string {
	sum := sha256.Sum256([]byte(src.Repo))
	trust := "unreviewed"
	if src.Branch != "" {
		trust = "branch:" + src.Branch
	}
	return "repo-" + hex.EncodeToString(sum[:8]) + "/" + trust
}

// build runs blubber.Build with a heartbeat carrying the latest progress, and turns
// a failed step into a non-retryable error with its output.
func (a *Activities) build(ctx context.Context, cfg *blubber.Config, variant string, opts blubber.BuildOptions, observers ...func(blubber.Progress)) (_ *blubber.BuildResult, err error) {
	ctx, span := tracing.Span(ctx, "buildkit solve", attribute.String("blubber.variant", variant),
		attribute.Bool("blubber.test", opts.Test), attribute.String("image.tag", opts.Tag))
	defer func() { tracing.End(span, err) }()
	var mu sync.Mutex
	var last blubber.Progress
	opts.Progress = func(p blubber.Progress) {
		mu.Lock()
		last = p
		mu.Unlock()
		for _, o := range observers {
			o(p)
		}
	}
	stop := heartbeat.Every(ctx, heartbeatEvery, func() any {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("%d/%d steps, at %s", last.Completed, last.Total, last.Current)
	})
	defer stop()
	res, err := blubber.Build(ctx, a.client, cfg, variant, opts)
	if err == nil {
		return res, nil
	}
	var step *blubber.StepError
	if errors.As(err, &step) && ctx.Err() == nil {
		kind := contract.ErrBuildFailed
		if step.Test {
			kind = contract.ErrTestsFailed
		}
		return nil, temporal.NewNonRetryableApplicationError(step.Error(), kind, err)
	}
	var bad blubber.Errors
	if errors.As(err, &bad) {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), contract.ErrInvalidBlubber, err)
	}
	var tooLarge *repofile.TooLargeError
	if errors.As(err, &tooLarge) {
		// The repository's .dockerignore: the same file again on retry.
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), contract.ErrInvalidConfig, err)
	}
	return nil, fmt.Errorf("building variant %s: %w", variant, err)
}

// testLog keeps the output of the test step from BuildKit's status stream.
type testLog struct {
	mu    sync.Mutex
	names map[string]bool // vertex digests of the test step
	buf   strings.Builder
}

func (l *testLog) record(p blubber.Progress) {
	if p.Status == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.names == nil {
		l.names = map[string]bool{}
	}
	for _, v := range p.Status.Vertexes {
		if strings.HasPrefix(v.Name, blubber.TestVertexPrefix) {
			l.names[v.Digest.String()] = true
		}
	}
	for _, lg := range p.Status.Logs {
		if l.names[lg.Vertex.String()] {
			l.buf.Write(lg.Data)
		}
	}
}

func (l *testLog) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := strings.Split(strings.TrimRight(l.buf.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
