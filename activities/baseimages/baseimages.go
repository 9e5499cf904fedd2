// Package baseimages holds the activities of the base image check: which base
// images the enabled projects build on (their Blubber configs' base, read from a
// workspace checkout of the branch), and what each image's digest is now in its
// registry (go-containerregistry).
package baseimages

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/heartbeat"
	"github.com/wikimedia/conveyor/activities/internal/registryclient"
	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/internal/lib/pipelineconfig"
	"github.com/wikimedia/conveyor/internal/lib/workspace"
)

// Activities reads base images and their digests. The worker builds one with New
// and registers it as a pointer; workflows call ResolveBaseImages and ImageDigests
// by name (contract.ResolveBaseImages.Name, contract.ImageDigests.Name).
type Activities struct {
	stateDir string
	client   *registryclient.Client
}

// Option configures Activities.
type Option = registryclient.Option

// WithTransport sends the registry requests through t. Default:
// remote.DefaultTransport.
func WithTransport(t http.RoundTripper) Option { return registryclient.WithTransport(t) }

// New returns the activities keeping checkouts under cfg.StateDir and
// authenticating to cfg.Registry with its credentials (other registries are read
// anonymously).
func New(cfg config.Config, opts ...Option) (*Activities, error) {
	c, err := registryclient.New(cfg.Registry, opts...)
	if err != nil {
		return nil, err
	}
	return &Activities{stateDir: cfg.StateDir, client: c}, nil
}

// ResolveBaseImages checks out each target's branch head (reusing a workspace
// that has it) and lists the base images of the stages of its test and
// production variants. A target that cannot be read gets an Error and no images;
// the others are still read. Only a cancelled context fails the whole call.
func (a *Activities) ResolveBaseImages(ctx context.Context, in contract.ResolveBaseImagesInput) (contract.ResolveBaseImagesOutput, error) {
	out := contract.ResolveBaseImagesOutput{Targets: make([]contract.TargetBases, 0, len(in.Targets))}
	for i, t := range in.Targets {
		heartbeat.Record(ctx, fmt.Sprintf("reading %s %s (%d of %d)", t.Project, t.Branch, i+1, len(in.Targets)))
		tb := contract.TargetBases{Target: t}
		tb.Commit, tb.Images, tb.Error = a.bases(ctx, t)
		if err := ctx.Err(); err != nil {
			return contract.ResolveBaseImagesOutput{}, err
		}
		out.Targets = append(out.Targets, tb)
	}
	return out, nil
}

func (a *Activities) bases(ctx context.Context, t contract.BaseTarget) (commit string, images []string, problem string) {
	src, dir, err := workspace.Ensure(ctx, a.stateDir, t.Repo, "refs/heads/"+t.Branch)
	if err != nil {
		return "", nil, fmt.Sprintf("fetching %s of %s: %v", t.Branch, t.Repo, err)
	}
	parsed, err := pipelineconfig.ParseSettings(dir, src.Repo)
	if err != nil {
		return src.Commit, nil, fmt.Sprintf("reading the pipeline settings of %s at %s: %v", t.Project, src.Commit, err)
	}
	for _, v := range []string{parsed.Settings.TestVariant, parsed.Settings.ProductionVariant} {
		if v == "" {
			continue
		}
		plan, err := parsed.Blubber.Plan(v)
		if err != nil {
			return src.Commit, nil, fmt.Sprintf("planning variant %s of %s: %v", v, t.Project, err)
		}
		for _, st := range plan.Stages {
			if st.Base != "" && !slices.Contains(images, st.Base) {
				images = append(images, st.Base)
			}
		}
	}
	slices.Sort(images)
	return src.Commit, images, ""
}

// ImageDigests asks each image's registry for the digest its tag points at now
// (a HEAD request; nothing is downloaded). An image that cannot be read gets an
// Error; the check then leaves it out rather than mistake an outage for a change.
func (a *Activities) ImageDigests(ctx context.Context, in contract.ImageDigestsInput) (contract.ImageDigestsOutput, error) {
	out := contract.ImageDigestsOutput{Digests: make([]contract.ImageDigest, 0, len(in.Images))}
	for _, img := range in.Images {
		d := contract.ImageDigest{Image: img}
		ref, err := name.ParseReference(img)
		if err != nil {
			d.Error = fmt.Sprintf("%q is not an image reference: %v", img, err)
			out.Digests = append(out.Digests, d)
			continue
		}
		desc, err := remote.Head(ref, a.client.Options(ctx, ref.Context().Registry)...)
		if err != nil {
			if ctx.Err() != nil {
				return contract.ImageDigestsOutput{}, ctx.Err()
			}
			d.Error = fmt.Sprintf("looking up %s: %v", img, err)
		} else {
			d.Digest = desc.Digest.String()
		}
		out.Digests = append(out.Digests, d)
	}
	return out, nil
}
