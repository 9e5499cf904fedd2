package blubber

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/docker/cli/cli/config/types"
	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	"github.com/moby/patternmatcher/ignorefile"
	digest "github.com/opencontainers/go-digest"
	"github.com/tonistiigi/fsutil"

	"github.com/wikimedia/conveyor/internal/lib/repofile"
)

// Solver is the part of *client.Client (github.com/moby/buildkit/client) that
// Build uses.
type Solver interface {
	Build(ctx context.Context, opt bkclient.SolveOpt, product string, buildFunc gateway.BuildFunc, statusChan chan *bkclient.SolveStatus) (*bkclient.SolveResponse, error)
}

var _ Solver = (*bkclient.Client)(nil)

// BuildOptions says what Build builds and where the image goes.
type BuildOptions struct {
	// ContextDir is the build context, mounted as a local source; its
	// .dockerignore is honoured. Required.
	ContextDir string
	// Tag is the image reference to export to (e.g. localhost:5000/app:v1);
	// empty builds without exporting.
	Tag string
	// Push pushes Tag to its registry.
	Push bool
	// Insecure lets the push use plain HTTP (a local registry).
	Insecure bool
	// Registry, Username and Password are the credentials the session hands
	// buildkitd for the registry host Registry (e.g. localhost:5000).
	Registry, Username, Password string
	// SourceDateEpoch is the time given to files and to the image; zero means
	// the Unix epoch, so that the same config and context give the same digest.
	SourceDateEpoch time.Time
	// BuildArgs override the defaults of the config's `arguments`; a name that
	// no stage of the variant declares fails the build before it starts.
	// Default none.
	BuildArgs map[string]string
	// Test runs the variant's entrypoint as a step (see Compiled.TestState)
	// instead of exporting an image; Tag and Push are then ignored.
	Test bool
	// Progress, if set, receives every status update from buildkitd, for
	// heartbeats and logs. It is called from one goroutine, in order.
	Progress func(Progress)
	// Egress, when set, isolates every step from the host's network and lets
	// steps fetch only from the hosts it allows (see Egress). Nil leaves steps on
	// buildkitd's own network: only for trusted configs.
	Egress *Egress
	// CacheScope, when set, prefixes the id of every cache mount, so that builds
	// in different scopes (a project's reviewed branch, its unreviewed changes,
	// another project) never share a cache. Default none: ids as the config says.
	CacheScope string
}

// Progress is a status update of a running build.
type Progress struct {
	// Completed and Total count the build steps seen so far.
	Completed, Total int
	// Current names the step that started last.
	Current string
	// Status is the update as buildkitd sent it.
	Status *bkclient.SolveStatus
}

// BuildResult is what a successful Build made.
type BuildResult struct {
	// Digest is the image manifest's digest (sha256:...), empty when nothing
	// was exported.
	Digest string
	// Ref is Tag@Digest when the image was exported.
	Ref string
	// Image is the exported image configuration.
	Image []byte
}

// StepError is a build step that failed, with the tail of its output. A failed
// test (BuildOptions.Test) is a StepError with Test set.
type StepError struct {
	Variant string
	Step    string
	Test    bool
	Output  string
	// Refused lists the URLs the build asked for that BuildOptions.Egress did
	// not allow.
	Refused []string
	Err     error
}

func (e *StepError) Error() string {
	what := "build step"
	if e.Test {
		what = "test"
	}
	msg := fmt.Sprintf("variant %s: %s %q failed: %v", e.Variant, what, e.Step, e.Err)
	if e.Output != "" {
		msg += "\noutput:\n" + e.Output
	}
	if len(e.Refused) > 0 {
		msg += "\nrefused by the build's egress policy (buildkit.egress.allow): " + strings.Join(e.Refused, ", ")
	}
	return msg
}

// Unwrap returns the solve error.
func (e *StepError) Unwrap() error { return e.Err }

// Build compiles the variant and solves it on buildkitd: the context directory
// is a local source, base images are resolved through buildkitd, and the image
// is exported to opts.Tag (pushed if opts.Push) with timestamps rewritten to the
// source date epoch, so that it is reproducible.
func Build(ctx context.Context, s Solver, cfg *Config, variant string, opts BuildOptions) (*BuildResult, error) {
	if opts.ContextDir == "" {
		return nil, errors.New("building: no context directory given")
	}
	plan, err := cfg.Plan(variant)
	if err != nil {
		return nil, err
	}
	if err := plan.CheckBuildArgs(opts.BuildArgs); err != nil {
		return nil, err
	}
	excludes, err := ReadDockerignore(opts.ContextDir)
	if err != nil {
		return nil, err
	}
	fs, err := fsutil.NewFS(opts.ContextDir)
	if err != nil {
		return nil, fmt.Errorf("opening build context %s: %w", opts.ContextDir, err)
	}
	abs, err := filepath.Abs(opts.ContextDir)
	if err != nil {
		return nil, fmt.Errorf("opening build context: %w", err)
	}
	contextID := "blubber-" + digest.FromString(abs).Encoded()[:20]
	epoch := opts.SourceDateEpoch
	if epoch.IsZero() {
		epoch = time.Unix(0, 0)
	}
	solveOpt := bkclient.SolveOpt{
		LocalMounts: map[string]fsutil.FS{DefaultContextName: fs},
		Session:     []session.Attachable{authProvider(opts)},
	}
	var egress *egressPolicy
	if opts.Egress != nil {
		egress = &egressPolicy{Egress: *opts.Egress}
		solveOpt.ProxyNetwork, solveOpt.SourcePolicyProvider = true, egress.provider()
	}
	if opts.Tag != "" && !opts.Test {
		solveOpt.Exports = []bkclient.ExportEntry{{Type: bkclient.ExporterImage, Attrs: map[string]string{
			string(exptypes.OptKeyName):             opts.Tag,
			string(exptypes.OptKeyPush):             strconv.FormatBool(opts.Push),
			string(exptypes.OptKeyInsecure):         strconv.FormatBool(opts.Insecure),
			string(exptypes.OptKeyOCITypes):         "true",
			string(exptypes.OptKeyRewriteTimestamp): "true",
			string(exptypes.OptKeySourceDateEpoch):  strconv.FormatInt(epoch.Unix(), 10),
		}}}
	}
	var imageConfig []byte
	buildFunc := func(ctx context.Context, c gateway.Client) (*gateway.Result, error) {
		copts := []CompileOption{WithImageResolver(c), WithDockerignore(excludes), WithSourceDateEpoch(epoch),
			WithContextID(contextID), WithBuildArgs(opts.BuildArgs), WithCacheScope(opts.CacheScope)}
		if w := c.BuildOpts().Workers; len(w) > 0 && len(w[0].Platforms) > 0 {
			copts = append(copts, WithPlatform(w[0].Platforms[0]))
		}
		comp, err := cfg.Compile(ctx, variant, copts...)
		if err != nil {
			return nil, err
		}
		st := comp.State
		if opts.Test {
			if st, err = comp.TestState(); err != nil {
				return nil, err
			}
		}
		def, err := st.Marshal(ctx, llb.Platform(comp.Image.Platform))
		if err != nil {
			return nil, fmt.Errorf("marshalling LLB: %w", err)
		}
		res, err := c.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB(), Evaluate: true})
		if err != nil {
			return nil, err
		}
		if imageConfig, err = comp.ImageConfigJSON(); err != nil {
			return nil, err
		}
		res.AddMeta(exptypes.ExporterImageConfigKey, imageConfig)
		return res, nil
	}

	statusCh := make(chan *bkclient.SolveStatus)
	tracker := newStatusTracker(opts.Progress)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for st := range statusCh {
			tracker.update(st)
		}
	}()
	resp, err := s.Build(ctx, solveOpt, "conveyor-blubber", buildFunc, statusCh)
	<-done // Build closes statusCh when it returns.
	if err != nil {
		if se := tracker.failure(variant, err); se != nil {
			if egress != nil {
				se.Refused = egress.refused()
			}
			return nil, se
		}
		return nil, fmt.Errorf("building variant %s: %w", variant, err)
	}
	out := &BuildResult{Image: imageConfig}
	if resp != nil {
		out.Digest = resp.ExporterResponse[exptypes.ExporterImageDigestKey]
	}
	if out.Digest != "" && opts.Tag != "" {
		out.Ref = opts.Tag + "@" + out.Digest
	}
	return out, nil
}

// authProvider hands buildkitd the registry credentials of opts, and no
// credentials for other hosts.
func authProvider(opts BuildOptions) session.Attachable {
	return authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
		AuthConfigProvider: func(_ context.Context, host string, _ []string, _ authprovider.ExpireCachedAuthCheck) (types.AuthConfig, error) {
			if opts.Username != "" && host == opts.Registry {
				return types.AuthConfig{Username: opts.Username, Password: opts.Password, ServerAddress: host}, nil
			}
			return types.AuthConfig{}, nil
		},
	})
}

// ReadDockerignore returns the patterns of dir/.dockerignore, or none when the
// file does not exist. A file larger than repofile.Dockerignore is refused with a
// *repofile.TooLargeError.
func ReadDockerignore(dir string) ([]string, error) {
	b, err := repofile.ReadFile(filepath.Join(dir, ".dockerignore"), repofile.Dockerignore)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading .dockerignore: %w", err)
	}
	patterns, err := ignorefile.ReadAll(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Join(dir, ".dockerignore"), err)
	}
	return patterns, nil
}
