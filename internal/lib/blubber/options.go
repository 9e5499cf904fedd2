package blubber

import (
	"fmt"
	"maps"
	"time"

	"github.com/moby/buildkit/client/llb"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// CompileOption configures Compile.
type CompileOption func(*compileOptions) error

type compileOptions struct {
	resolver    llb.ImageMetaResolver
	platform    ocispecs.Platform
	contextName string
	contextID   string
	excludes    []string
	epoch       time.Time
	buildArgs   map[string]string
}

// WithImageResolver resolves base images' configurations (environment, working
// directory, user) so that steps and the image inherit them, and pins each base
// image to the digest resolved. By default nothing is resolved: steps get a
// standard PATH and the image configuration holds only what the variant sets.
func WithImageResolver(r llb.ImageMetaResolver) CompileOption {
	return func(o *compileOptions) error {
		if r == nil {
			return fmt.Errorf("WithImageResolver: resolver is nil")
		}
		o.resolver = r
		return nil
	}
}

// WithPlatform sets the platform to build for; default linux on the running
// architecture.
func WithPlatform(p ocispecs.Platform) CompileOption {
	return func(o *compileOptions) error {
		if p.OS == "" || p.Architecture == "" {
			return fmt.Errorf("WithPlatform: OS and architecture are required, got %q/%q", p.OS, p.Architecture)
		}
		o.platform = p
		return nil
	}
}

// WithContextName names the local source of the build context; default
// DefaultContextName.
func WithContextName(name string) CompileOption {
	return func(o *compileOptions) error {
		if name == "" {
			return fmt.Errorf("WithContextName: name is empty")
		}
		o.contextName = name
		return nil
	}
}

// WithContextID sets the unique ID of the build context's local source, which
// buildkitd uses to reuse what it synced of that directory before; default
// "blubber-" plus the context name. Build derives it from the context path.
func WithContextID(id string) CompileOption {
	return func(o *compileOptions) error {
		if id == "" {
			return fmt.Errorf("WithContextID: id is empty")
		}
		o.contextID = id
		return nil
	}
}

// WithDockerignore excludes these .dockerignore patterns from the build context;
// default none. ReadDockerignore reads them from a context directory.
func WithDockerignore(patterns []string) CompileOption {
	return func(o *compileOptions) error {
		o.excludes = append([]string(nil), patterns...)
		return nil
	}
}

// WithSourceDateEpoch sets the time given to every file the build copies or
// writes and to the image's creation; default the Unix epoch (0), so that the
// same configuration and context always give the same image.
func WithSourceDateEpoch(t time.Time) CompileOption {
	return func(o *compileOptions) error {
		if t.Before(time.Unix(0, 0)) {
			return fmt.Errorf("WithSourceDateEpoch: %s is before 1970", t)
		}
		o.epoch = t.UTC()
		return nil
	}
}

// WithBuildArgs gives build arguments values that override the defaults of
// the config's `arguments`; default none (every argument keeps its default).
// Compile fails on a name that no stage of the variant declares.
func WithBuildArgs(args map[string]string) CompileOption {
	return func(o *compileOptions) error {
		for name := range args {
			if !envNameRE.MatchString(name) {
				return fmt.Errorf("WithBuildArgs: %q is not a valid argument name", name)
			}
		}
		o.buildArgs = maps.Clone(args)
		return nil
	}
}
