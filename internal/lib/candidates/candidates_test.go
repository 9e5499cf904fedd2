package candidates

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wikimedia/conveyor/internal/dev/stacktest"
)

// runTag is the pipeline's tag of a run started at t: the run ID's first ten hex
// digits are the top of its UUIDv7 millisecond time.
func runTag(prefix string, t time.Time) string {
	return fmt.Sprintf("%s-%010x", prefix, t.UnixMilli()>>8)
}

func TestPushedAtReadsTheRunID(t *testing.T) {
	now := time.Date(2026, 12, 2, 13, 42, 0, 0, time.UTC)
	// A tag the stack's pipeline pushed, run 01a236f782…, 7 minutes before now.
	got, ok := PushedAt("4101-1-01a236f782", now)
	if want := time.Date(2026, 12, 2, 13, 35, 20, 64_000_000, time.UTC); !ok || !got.Equal(want) {
		t.Errorf("PushedAt(4101-1-01a236f782) = %v, %v; want %v", got, ok, want)
	}
	if got, ok := PushedAt(runTag("run", now.Add(-time.Hour)), now); !ok || now.Sub(got) < time.Hour || now.Sub(got) > time.Hour+time.Second {
		t.Errorf("PushedAt(run-…) = %v, %v; want an hour before %v", got, ok, now)
	}
	for _, tag := range []string{
		"latest", "2026-12-01-120000-production", "change-4101-1",
		"4101-1-01A236F782",                       // not what ShortID writes
		"1-1-" + fmt.Sprintf("%010x", int64(1)),   // 1970: a UUIDv4's random bits
		runTag("1-1", now.Add(24*time.Hour)),      // the future
		"1-1-01a236f78", "x-1-01a236f782", "run-", // malformed
	} {
		if got, ok := PushedAt(tag, now); ok {
			t.Errorf("PushedAt(%q) = %v; want no time", tag, got)
		}
	}
}

// TestPruneAgainstTheStacksRegistry pushes candidates of one image to the stack's
// registry, one of them also published, and prunes with keep=1 and a week.
func TestPruneAgainstTheStacksRegistry(t *testing.T) {
	cfg := stacktest.Config(t)
	ctx := context.Background()
	reg, err := name.NewRegistry(cfg.Registry.Address)
	if err != nil {
		t.Fatal(err)
	}
	ro := []remote.Option{remote.WithContext(ctx),
		remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: cfg.Registry.Username, Password: cfg.Registry.Password}))}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	img := "gc-test-" + hex.EncodeToString(suffix)
	cands, err := name.NewRepository(reg.Name() + "/" + Prefix + img)
	if err != nil {
		t.Fatal(err)
	}
	public := reg.Repo(img)
	t.Cleanup(func() { deleteAll(t, ro, cands, public) })

	now := time.Now()
	day := 24 * time.Hour
	push := func(repo name.Repository, tag string, im v1.Image) string {
		t.Helper()
		if err := remote.Write(repo.Tag(tag), im, ro...); err != nil {
			t.Fatalf("pushing %s:%s: %v", repo, tag, err)
		}
		d, err := im.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	newImage := func() v1.Image {
		t.Helper()
		im, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		return im
	}
	var (
		tNewest    = runTag("2-1", now.Add(-1*day))
		tYoung     = runTag("3-1", now.Add(-3*day)) // same digest as tShared
		tShared    = runTag("1-2", now.Add(-20*day))
		tPublished = runTag("1-3", now.Add(-15*day))
		tOld       = runTag("1-1", now.Add(-30*day))
		tOldRun    = runTag("run", now.Add(-10*day))
		tManual    = "hand-pushed"
	)
	dNewest := push(cands, tNewest, newImage())
	shared := newImage()
	dShared := push(cands, tShared, shared)
	push(cands, tYoung, shared)
	pub := newImage()
	dPublished := push(cands, tPublished, pub)
	push(public, "2026-01-01-000000-production", pub)
	dOld := push(cands, tOld, newImage())
	dOldRun := push(cands, tOldRun, newImage())
	dManual := push(cands, tManual, newImage())

	opts := Options{Retention: Retention{MaxAge: 7 * day, Keep: 1}, Images: []string{img}, DryRun: true, Remote: ro}
	want := map[string]string{ // tag → the start of its reason
		tNewest:    "kept: among the newest 1",
		tYoung:     "kept: younger than 168h0m0s",
		tShared:    "kept: a tag that is kept points at the same digest",
		tPublished: "kept: published as " + public.Tag("2026-01-01-000000-production").String(),
		tOldRun:    "deleted: older than 168h0m0s and beyond the newest 1",
		tOld:       "deleted: older than 168h0m0s and beyond the newest 1",
		tManual:    "kept: the tag is not a pipeline run's",
	}
	order := []string{tNewest, tYoung, tOldRun, tPublished, tShared, tOld, tManual}
	check := func(tags []Tag, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, tg := range tags {
			tag := strings.TrimPrefix(tg.Ref, cands.String()+":")
			got = append(got, tag)
			if !strings.HasPrefix(tg.Reason, want[tag]) || tg.Deleted != strings.HasPrefix(want[tag], "deleted") {
				t.Errorf("%s: %q (deleted %v); want %q", tag, tg.Reason, tg.Deleted, want[tag])
			}
		}
		if !slices.Equal(got, order) {
			t.Errorf("tags %v; want newest first, unknown ages last: %v", got, order)
		}
	}

	check(Prune(ctx, reg, opts))
	for _, d := range []string{dNewest, dShared, dPublished, dOld, dOldRun, dManual} {
		if _, err := remote.Head(cands.Digest(d), ro...); err != nil {
			t.Fatalf("after the dry run, %s: %v; want it still there", d, err)
		}
	}

	opts.DryRun = false
	check(Prune(ctx, reg, opts))
	for _, d := range []string{dOld, dOldRun} {
		if _, err := remote.Head(cands.Digest(d), ro...); !isNotFound(err) {
			t.Errorf("after gc, %s@%s: %v; want it deleted (404)", cands, d, err)
		}
	}
	for _, tag := range []string{tNewest, tYoung, tShared, tPublished, tManual} {
		if _, err := remote.Head(cands.Tag(tag), ro...); err != nil {
			t.Errorf("after gc, %s:%s: %v; want it kept", cands, tag, err)
		}
	}
	if desc, err := remote.Head(public.Tag("2026-01-01-000000-production"), ro...); err != nil || desc.Digest.String() != dPublished {
		t.Errorf("after gc, the published image: %v %v; want %s", desc, err, dPublished)
	}
	tags, err := remote.List(cands, ro...)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(tags)
	if wantTags := []string{tYoung, tShared, tPublished, tNewest, tManual}; !slices.Equal(tags, sorted(wantTags)) {
		t.Errorf("tags left %v; want %v", tags, sorted(wantTags))
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// deleteAll removes what the test pushed.
func deleteAll(t *testing.T, ro []remote.Option, repos ...name.Repository) {
	for _, repo := range repos {
		tags, _ := remote.List(repo, ro...)
		for _, tag := range tags {
			if desc, err := remote.Head(repo.Tag(tag), ro...); err == nil {
				if err := remote.Delete(repo.Digest(desc.Digest.String()), ro...); err != nil && !isNotFound(err) {
					t.Logf("cleaning up %s: %v", repo, err)
				}
			}
		}
	}
}
