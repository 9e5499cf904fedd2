package promote

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/registryclient"
)

// publishedSuffix ends the tag the pipeline's publish step gives a tested image
// (2026-12-02-130405-production).
const publishedSuffix = "-production"

// checkPublished refuses to promote an image that conveyor's pipeline did not
// publish for the service: it must be in the service's own repository of the
// configured registry (<registry>/<service>), by digest, with a *-production tag
// at that digest. A starter cannot then promote a candidate that never passed its
// tests, another service's image or an image from anywhere else.
func (a *Activities) checkPublished(ctx context.Context, service, image string) error {
	repoName, digest, err := splitImage(image)
	if err != nil {
		return err
	}
	if !a.registry.Configured() {
		return nonRetryable(contract.ErrPromotionConfig,
			"the worker has no registry.address: set it to the registry the pipeline publishes to, so that a promoted image can be checked")
	}
	want := a.registry.Registry().RegistryStr() + "/" + service
	if repoName != want {
		return nonRetryable(contract.ErrPromotionInput,
			"image %s is not in service %s's repository %s: promote the image conveyor's pipeline published for %s (%s@sha256:…, shown by the pipeline's publish step)",
			image, service, want, service, want)
	}
	repo, err := name.NewRepository(repoName, name.StrictValidation)
	if err != nil {
		return nonRetryable(contract.ErrPromotionInput, "image %q: %v", image, err)
	}
	opts := a.registry.Options(ctx, repo.Registry)
	tags, err := remote.List(repo, opts...)
	if registryclient.IsNotFound(err) {
		return nonRetryable(contract.ErrPromotionInput, "image %s: the registry has no repository %s: nothing was published for service %s", image, want, service)
	}
	if err != nil {
		return fmt.Errorf("listing the tags of %s: %w", want, err)
	}
	var published []string
	for _, t := range tags {
		if strings.HasSuffix(t, publishedSuffix) {
			published = append(published, t)
		}
	}
	// Newest first: the pipeline's tags start with the time of publishing.
	slices.Sort(published)
	slices.Reverse(published)
	for _, t := range published {
		desc, err := remote.Head(repo.Tag(t), opts...)
		if registryclient.IsNotFound(err) {
			continue // deleted since the listing
		}
		if err != nil {
			return fmt.Errorf("reading %s:%s: %w", want, t, err)
		}
		if desc.Digest.String() == digest {
			return nil
		}
	}
	return nonRetryable(contract.ErrPromotionInput,
		"image %s was not published by conveyor's pipeline: no *%s tag of %s points at %s (of %d such tags); promote an image the pipeline tested and published",
		image, publishedSuffix, want, digest, len(published))
}
