// Package registry holds the activity that publishes a tested candidate image into
// its public repository, with go-containerregistry.
//
// Publishing copies no layer: the candidate is read from the registry as a remote
// image, so writing it to another repository of the same registry mounts each blob
// across repositories (POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=<candidate
// repo>) and uploads only the manifest. The manifest's bytes are kept, so the
// published digest is the candidate's, the one that was deployed and tested.
package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/heartbeat"
	"github.com/wikimedia/conveyor/activities/internal/registryclient"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// tagRE is the OCI distribution specification's tag grammar, which ggcr's name
// package checks only loosely.
var tagRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)

// Activities publishes images into the configured registry. The worker builds one
// with New and registers it as a pointer; workflows call PublishImage by name
// (contract.PublishImage.Name).
type Activities struct {
	client *registryclient.Client
}

// Option configures Activities.
type Option = registryclient.Option

// WithTransport sends the registry requests through t. Default:
// remote.DefaultTransport.
func WithTransport(t http.RoundTripper) Option { return registryclient.WithTransport(t) }

// New returns the activities for cfg.Registry: its address, and its credentials
// for pushing (anonymous when the username is empty).
func New(cfg config.Config, opts ...Option) (*Activities, error) {
	if cfg.Registry.Address == "" {
		return nil, errors.New("the registry address is empty: set registry.address in the configuration or CONVEYOR_REGISTRY")
	}
	c, err := registryclient.New(cfg.Registry, opts...)
	if err != nil {
		return nil, err
	}
	return &Activities{client: c}, nil
}

// PublishImage writes the candidate in.From (repository@digest) into
// <registry>/<in.Repository> under each of in.Tags, mounting its blobs instead of
// uploading them, and returns the digest and the references repo:tag@digest.
//
// It is idempotent: tags that already point at the candidate's digest are left as
// they are. A tag that points at another digest is never moved: PublishImage then
// fails with the non-retryable contract.ErrTagConflict before writing anything.
func (a *Activities) PublishImage(ctx context.Context, in contract.PublishImageInput) (contract.PublishImageOutput, error) {
	from, repo, tags, err := a.parse(in)
	if err != nil {
		return contract.PublishImageOutput{}, temporal.NewNonRetryableApplicationError(err.Error(), contract.ErrInvalidPublish, nil)
	}
	logger := activity.GetLogger(ctx)
	reg := a.client.Registry()
	puller, err := remote.NewPuller(a.client.Options(ctx, from.Context().Registry)...)
	if err != nil {
		return contract.PublishImageOutput{}, err
	}
	pusher, err := remote.NewPusher(a.client.Options(ctx, reg)...)
	if err != nil {
		return contract.PublishImageOutput{}, err
	}

	cand, err := puller.Get(ctx, from)
	if err != nil {
		if registryclient.IsNotFound(err) {
			return contract.PublishImageOutput{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("reading the candidate %s: it is not in the registry (was it pushed, or deleted since?): %v", from, err), contract.ErrCandidateMissing, nil)
		}
		return contract.PublishImageOutput{}, fmt.Errorf("reading the candidate %s: %w", from, err)
	}
	digest := cand.Digest.String()
	if digest != from.DigestStr() {
		return contract.PublishImageOutput{}, fmt.Errorf("reading the candidate %s: the registry answered with digest %s", from, digest)
	}
	if from.Context().Registry != reg {
		logger.Warn("The candidate is in another registry: its layers are copied, not mounted", "from", from.String(), "registry", reg.String())
	}

	// Check every tag before writing any, so a conflict leaves the repository as it was.
	missing, err := a.missingTags(ctx, puller, tags, digest)
	if err != nil {
		return contract.PublishImageOutput{}, err
	}
	for i, tag := range missing {
		heartbeat.Record(ctx, fmt.Sprintf("tagging %s (%d of %d)", tag, i+1, len(missing)))
		if err := pusher.Push(ctx, tag, cand); err != nil {
			return contract.PublishImageOutput{}, fmt.Errorf("publishing %s as %s: %w", from, tag, err)
		}
	}
	// A concurrent writer could have moved a tag between the check and the push.
	if again, err := a.missingTags(ctx, puller, tags, digest); err != nil {
		return contract.PublishImageOutput{}, err
	} else if len(again) > 0 {
		return contract.PublishImageOutput{}, fmt.Errorf("publishing %s: %s still does not point at %s after the push", from, again[0], digest)
	}

	out := contract.PublishImageOutput{Digest: digest}
	for _, tag := range tags {
		out.Refs = append(out.Refs, tag.String()+"@"+digest)
	}
	logger.Info("Published image", "from", from.String(), "repository", repo.String(), "digest", digest,
		"tags", in.Tags, "written", len(missing))
	return out, nil
}

// parse checks the input and names the candidate, the public repository and the
// tags (without duplicates, in order).
func (a *Activities) parse(in contract.PublishImageInput) (name.Digest, name.Repository, []name.Tag, error) {
	from, err := name.NewDigest(in.From, name.StrictValidation)
	if err != nil {
		return name.Digest{}, name.Repository{}, nil, fmt.Errorf("the candidate %q is not repository@sha256:<digest>: %v", in.From, err)
	}
	if in.Repository == "" || strings.ContainsAny(in.Repository, ":@") {
		return name.Digest{}, name.Repository{}, nil, fmt.Errorf("the repository %q must be a repository name relative to the registry, without tag or digest (e.g. hello)", in.Repository)
	}
	repo, err := name.NewRepository(a.client.Registry().Name()+"/"+in.Repository, name.StrictValidation)
	if err != nil {
		return name.Digest{}, name.Repository{}, nil, fmt.Errorf("the repository %q is not a valid repository name: %v", in.Repository, err)
	}
	if len(in.Tags) == 0 {
		return name.Digest{}, name.Repository{}, nil, errors.New("no tags to publish under: give at least one")
	}
	var tags []name.Tag
	for _, t := range in.Tags {
		tag, err := name.NewTag(repo.Name()+":"+t, name.StrictValidation)
		if err != nil || tag.TagStr() != t || !tagRE.MatchString(t) {
			return name.Digest{}, name.Repository{}, nil, fmt.Errorf("the tag %q is not a valid tag (up to 128 letters, digits, _ . -, not starting with . or -)", t)
		}
		if !slices.Contains(tags, tag) {
			tags = append(tags, tag)
		}
	}
	return from, repo, tags, nil
}

// missingTags returns the tags that do not exist yet, and a non-retryable
// contract.ErrTagConflict naming every tag that points at a digest other than digest.
func (a *Activities) missingTags(ctx context.Context, puller *remote.Puller, tags []name.Tag, digest string) ([]name.Tag, error) {
	var missing []name.Tag
	var conflicts []string
	for _, tag := range tags {
		desc, err := puller.Head(ctx, tag)
		switch {
		case registryclient.IsNotFound(err):
			missing = append(missing, tag)
		case err != nil:
			return nil, fmt.Errorf("looking up %s: %w", tag, err)
		case desc.Digest.String() != digest:
			conflicts = append(conflicts, fmt.Sprintf("%s points at %s", tag, desc.Digest))
		}
	}
	if len(conflicts) > 0 {
		msg := fmt.Sprintf("refusing to publish %s: %s; published tags are never moved: publish under new tags, or delete the old ones first if they are wrong",
			digest, strings.Join(conflicts, ", "))
		return nil, temporal.NewNonRetryableApplicationError(msg, contract.ErrTagConflict, nil)
	}
	return missing, nil
}
