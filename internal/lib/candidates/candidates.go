// Package candidates prunes the candidate images that the change pipeline pushes
// to <registry>/candidates/<image>:<change>-<patchset>-<run> (or :run-<run>), one
// per pipeline run, which nothing else ever deletes.
//
// A candidate's age is the start of the pipeline run that pushed it, read from
// its tag: <run> is the first ten hex digits of the Temporal run ID, and Temporal
// (1.26 and later) makes run IDs UUIDv7, whose first 48 bits are the Unix time in
// milliseconds. The image itself cannot tell: conveyor builds are reproducible,
// so every image's config says it was created at the source date epoch (1970),
// and the registry's API has no push time. A tag that is not the pipeline's, or
// whose run part decodes to a time before 2024 or in the future (a UUIDv4 run
// ID from an older Temporal), has no age and is always kept.
//
// Deleting is by digest (DELETE /v2/<repo>/manifests/<digest>), which in the
// distribution registry removes every tag of that repository pointing at it. So
// a digest goes only when every one of its candidate tags may go: reproducible
// builds give a recheck of the same commit the same digest under a new tag. And
// a digest that the service's public repository (<registry>/<image>) has under
// any tag is never deleted: it was published, and its candidate tag is where it
// came from. Deleting manifests frees no disk by itself; the registry's
// `registry garbage-collect` then removes the blobs nothing refers to.
package candidates

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Prefix is the repository prefix of candidate images.
const Prefix = "candidates/"

// Retention is which candidates Prune keeps.
type Retention struct {
	// MaxAge protects every candidate younger than this.
	MaxAge time.Duration
	// Keep protects the newest Keep candidate tags of each image, whatever their
	// age.
	Keep int
}

// Tag is one candidate tag and why Prune keeps or deletes it.
type Tag struct {
	// Ref is repository:tag.
	Ref string
	// Digest is the manifest the tag points at.
	Digest string
	// Pushed is the start of the pipeline run that pushed it; zero when unknown.
	Pushed time.Time
	// Deleted says Prune deleted the tag's digest (or would, in a dry run).
	Deleted bool
	// Reason says why the tag is kept or deleted.
	Reason string
}

// Options are what Prune reads and how it reaches the registry.
type Options struct {
	// Retention is what to keep.
	Retention Retention
	// Images limits Prune to these images (hello for candidates/hello); all
	// candidate repositories when empty.
	Images []string
	// DryRun deletes nothing.
	DryRun bool
	// Now is the time ages are measured at; time.Now when zero.
	Now time.Time
	// Remote are the options of every registry request: its transport and the
	// credentials, which deleting needs.
	Remote []remote.Option
}

// runRE is a pipeline candidate tag: <change>-<patchset>-<run> or run-<run>.
var runRE = regexp.MustCompile(`^(?:[0-9]+-[0-9]+|run)-([0-9a-f]{10})$`)

// oldestRun is before any run ID conveyor's pipeline made: an earlier "time" is
// a UUIDv4 run ID's random bits.
var oldestRun = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// PushedAt reads the start of the pipeline run from a candidate tag; false when
// the tag is not the pipeline's or does not hold a plausible time before now.
func PushedAt(tag string, now time.Time) (time.Time, bool) {
	m := runRE.FindStringSubmatch(tag)
	if m == nil {
		return time.Time{}, false
	}
	// Ten hex digits are the top 40 of the 48 bits of milliseconds.
	v, err := strconv.ParseUint(m[1], 16, 64)
	if err != nil {
		return time.Time{}, false
	}
	t := time.UnixMilli(int64(v << 8)).UTC()
	if t.Before(oldestRun) || t.After(now.Add(time.Minute)) {
		return time.Time{}, false
	}
	return t, true
}

// Prune deletes the candidates of reg that opts.Retention does not keep and that
// are not published, and returns every candidate tag it looked at, each with its
// fate, by repository and newest first. It goes on past an image it cannot read
// or delete, returning the errors joined.
func Prune(ctx context.Context, reg name.Registry, opts Options) ([]Tag, error) {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	ro := append([]remote.Option{remote.WithContext(ctx)}, opts.Remote...)
	images := opts.Images
	if len(images) == 0 {
		repos, err := remote.Catalog(ctx, reg, ro...)
		if err != nil {
			return nil, fmt.Errorf("listing the repositories of %s: %w", reg, err)
		}
		for _, r := range repos {
			if img, ok := strings.CutPrefix(r, Prefix); ok {
				images = append(images, img)
			}
		}
	}
	var out []Tag
	var errs []error
	for _, img := range images {
		tags, err := pruneImage(reg, img, opts, now, ro)
		out = append(out, tags...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// pruneImage prunes candidates/<img>.
func pruneImage(reg name.Registry, img string, opts Options, now time.Time, ro []remote.Option) ([]Tag, error) {
	cands, err := name.NewRepository(reg.Name()+"/"+Prefix+img, name.StrictValidation)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", img, err)
	}
	public, err := name.NewRepository(reg.Name()+"/"+img, name.StrictValidation)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", img, err)
	}
	tags, err := readTags(cands, now, ro)
	if err != nil {
		return nil, err
	}
	published, err := digests(public, ro)
	if err != nil {
		return nil, err
	}

	// Newest first; tags without a time last: they are kept anyway, and take no
	// place among the newest.
	slices.SortFunc(tags, func(a, b Tag) int {
		return cmp.Or(b.Pushed.Compare(a.Pushed), strings.Compare(a.Ref, b.Ref))
	})
	expendable := map[string]bool{} // digest → every tag of it may go
	for i := range tags {
		t := &tags[i]
		switch {
		case t.Pushed.IsZero():
			t.Reason = "kept: the tag is not a pipeline run's, so its age is unknown"
		case i < opts.Retention.Keep:
			t.Reason = fmt.Sprintf("kept: among the newest %d", opts.Retention.Keep)
		case now.Sub(t.Pushed) <= opts.Retention.MaxAge:
			t.Reason = fmt.Sprintf("kept: younger than %s", opts.Retention.MaxAge)
		case published[t.Digest] != "":
			t.Reason = "kept: published as " + published[t.Digest]
		default:
			if _, seen := expendable[t.Digest]; !seen {
				expendable[t.Digest] = true
			}
			continue
		}
		expendable[t.Digest] = false
	}
	for i := range tags {
		t := &tags[i]
		if t.Reason != "" {
			continue
		}
		if !expendable[t.Digest] {
			t.Reason = "kept: a tag that is kept points at the same digest"
			continue
		}
		t.Deleted = true
		t.Reason = fmt.Sprintf("deleted: older than %s and beyond the newest %d", opts.Retention.MaxAge, opts.Retention.Keep)
	}
	if opts.DryRun {
		return tags, nil
	}
	var errs []error
	done := map[string]bool{}
	for i := range tags {
		t := &tags[i]
		if !t.Deleted || done[t.Digest] {
			continue
		}
		done[t.Digest] = true
		if err := remote.Delete(cands.Digest(t.Digest), ro...); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting %s@%s: %w", cands, t.Digest, err))
			for j := range tags {
				if tags[j].Digest == t.Digest {
					tags[j].Deleted, tags[j].Reason = false, "kept: deleting failed: "+err.Error()
				}
			}
		}
	}
	return tags, errors.Join(errs...)
}

// readTags lists the tags of repo with their digests and, when now is not zero,
// their push times; none when repo does not exist.
func readTags(repo name.Repository, now time.Time, ro []remote.Option) ([]Tag, error) {
	names, err := remote.List(repo, ro...)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing the tags of %s: %w", repo, err)
	}
	tags := make([]Tag, 0, len(names))
	for _, n := range names {
		desc, err := remote.Head(repo.Tag(n), ro...)
		if isNotFound(err) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s:%s: %w", repo, n, err)
		}
		t := Tag{Ref: repo.Tag(n).String(), Digest: desc.Digest.String()}
		if !now.IsZero() {
			t.Pushed, _ = PushedAt(n, now)
		}
		tags = append(tags, t)
	}
	return tags, nil
}

// digests maps each digest of repo's tags to one of the tags (repo:tag); empty
// when repo does not exist.
func digests(repo name.Repository, ro []remote.Option) (map[string]string, error) {
	tags, err := readTags(repo, time.Time{}, ro)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, t := range tags {
		if _, ok := out[t.Digest]; !ok {
			out[t.Digest] = t.Ref
		}
	}
	return out, nil
}

func isNotFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}
