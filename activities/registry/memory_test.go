package registry_test

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// The tests in this file run PublishImage against go-containerregistry's
// in-memory registry (pkg/registry) behind httptest: the distribution protocol
// in milliseconds, without the local stack. That registry keeps one blob store
// for all repositories, so a blob is never missing from the public repository
// and the client never asks to mount it: cross-repository mounts are
// TestPublishMountsTheCandidateAndKeepsItsDigest's, on the real registry.

// memRegistry starts an in-memory registry and returns its host:port.
func memRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// newMemFixture is newFixture on an in-memory registry of its own.
func newMemFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureOn(t, config.Config{Registry: config.Registry{Address: memRegistry(t)}})
}

func TestPublishKeepsTheDigestAndUploadsNoBlob(t *testing.T) {
	f := newMemFixture(t)
	f.publishCandidate(t, "2026-11-26-120000-production", "change-1234-2", "change-1234-2")
	var manifests []string
	for _, req := range f.rec.take() {
		if isBlobUpload(req) {
			t.Errorf("a blob was uploaded: %s %s", req.Method, req.URL)
		}
		if req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/manifests/") {
			manifests = append(manifests, req.URL.Path)
		}
	}
	if len(manifests) != 2 {
		t.Errorf("manifest writes %v, want one per tag", manifests)
	}
}

// TestPublishFromAnotherRegistryCopiesTheCandidate: a candidate outside the
// configured registry cannot be mounted; it is copied, digest and all.
func TestPublishFromAnotherRegistryCopiesTheCandidate(t *testing.T) {
	f := newMemFixture(t)
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	elsewhere, err := name.NewTag(memRegistry(t) + "/candidates/other:candidate")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(elsewhere, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	out, err := f.publish(t, contract.PublishImageInput{From: elsewhere.Context().Digest(d.String()).String(), Repository: f.publicRepo(), Tags: []string{"copied"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := f.head(t, f.publicRepo()+":copied"); !ok || got != d.String() || out.Digest != d.String() {
		t.Errorf("copied points at %q (exists %v), output digest %s, want %s", got, ok, out.Digest, d)
	}
}

// TestPublishNoticesATagMovedWhileItPushes: a writer that moves a tag between
// the check and the push makes the check after the push refuse, with the
// conflict named.
func TestPublishNoticesATagMovedWhileItPushes(t *testing.T) {
	f := newMemFixture(t)
	racy := f.cfg.Registry.Address + "/" + f.publicRepo() + ":racy"
	var other string
	f.rec.after = func(req *http.Request) {
		if req.Method != http.MethodPut || !strings.HasSuffix(req.URL.Path, "/manifests/racy") || other != "" {
			return
		}
		tag, err := name.NewTag(racy)
		if err != nil {
			t.Error(err)
			return
		}
		img, _ := random.Image(128, 1)
		if err := remote.Write(tag, img); err != nil {
			t.Error(err)
		}
		d, _ := img.Digest()
		other = d.String()
	}
	_, err := f.publish(t, contract.PublishImageInput{From: f.cand.String(), Repository: f.publicRepo(), Tags: []string{"racy"}})
	if err == nil {
		t.Fatal("publishing over a tag moved during the push succeeded")
	}
	app := applicationError(t, err)
	if app.Type() != contract.ErrTagConflict || !strings.Contains(err.Error(), ":racy points at "+other) {
		t.Errorf("error %v (type %s), want %s naming the moved tag", err, app.Type(), contract.ErrTagConflict)
	}
}

// Behaviours that run both here and, once each, on the real registry
// (TestPublishBehavioursOnTheRealRegistry).
var behaviours = []struct {
	name string
	run  func(*testing.T, *fixture)
}{
	{"twice", publishTwiceIsHarmless},
	{"tag conflict", refusesToMoveATag},
	{"candidate missing", refusesAMissingCandidate},
}

func TestPublishTwiceIsHarmless(t *testing.T) { publishTwiceIsHarmless(t, newMemFixture(t)) }

func TestPublishRefusesToMoveATag(t *testing.T) { refusesToMoveATag(t, newMemFixture(t)) }

func TestPublishRefusesAMissingCandidate(t *testing.T) { refusesAMissingCandidate(t, newMemFixture(t)) }

func publishTwiceIsHarmless(t *testing.T, f *fixture) {
	in := contract.PublishImageInput{From: f.cand.String(), Repository: f.publicRepo(), Tags: []string{"one", "two"}}
	first, err := f.publish(t, in)
	if err != nil {
		t.Fatal(err)
	}
	f.rec.take()
	second, err := f.publish(t, in)
	if err != nil {
		t.Fatalf("publishing again: %v", err)
	}
	if second.Digest != first.Digest || !slices.Equal(second.Refs, first.Refs) {
		t.Errorf("second publish = %+v, want %+v", second, first)
	}
	for _, req := range f.rec.take() {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			t.Errorf("publishing again wrote to the registry: %s %s", req.Method, req.URL)
		}
	}

	// A new tag for the same digest is added; the existing ones stay.
	in.Tags = append(in.Tags, "three")
	third, err := f.publish(t, in)
	if err != nil || len(third.Refs) != 3 {
		t.Fatalf("adding a tag: %+v %v", third, err)
	}
	if d, ok := f.head(t, f.publicRepo()+":three"); !ok || d != first.Digest {
		t.Errorf("three points at %q, want %s", d, first.Digest)
	}
}

func refusesToMoveATag(t *testing.T, f *fixture) {
	other, _ := f.push(t, f.publicRepo()+":taken")
	in := contract.PublishImageInput{From: f.cand.String(), Repository: f.publicRepo(), Tags: []string{"fresh", "taken"}}
	_, err := f.publish(t, in)
	if err == nil {
		t.Fatal("publishing over a tag of another digest succeeded")
	}
	app := applicationError(t, err)
	if app.Type() != contract.ErrTagConflict || !app.NonRetryable() {
		t.Errorf("type %s, non-retryable %v, want %s non-retryable", app.Type(), app.NonRetryable(), contract.ErrTagConflict)
	}
	for _, want := range []string{":taken points at " + other.DigestStr(), "never moved"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
	if d, _ := f.head(t, f.publicRepo()+":taken"); d != other.DigestStr() {
		t.Errorf("taken was moved to %s", d)
	}
	if d, ok := f.head(t, f.publicRepo()+":fresh"); ok {
		t.Errorf("fresh was written (%s) although the publish was refused", d)
	}
}

func TestPublishRefusesBadInput(t *testing.T) {
	f := newMemFixture(t)
	tests := []struct {
		name string
		in   contract.PublishImageInput
		typ  string
		says string
	}{
		{"candidate by tag", contract.PublishImageInput{From: f.cand.Context().Tag("candidate").String(), Repository: "x", Tags: []string{"t"}},
			contract.ErrInvalidPublish, "repository@sha256:<digest>"},
		{"repository with tag", contract.PublishImageInput{From: f.cand.String(), Repository: "x:latest", Tags: []string{"t"}},
			contract.ErrInvalidPublish, `"x:latest"`},
		{"no tags", contract.PublishImageInput{From: f.cand.String(), Repository: f.publicRepo()},
			contract.ErrInvalidPublish, "no tags"},
		{"bad tag", contract.PublishImageInput{From: f.cand.String(), Repository: f.publicRepo(), Tags: []string{"-bad"}},
			contract.ErrInvalidPublish, `"-bad"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.publish(t, tt.in)
			if err == nil {
				t.Fatal("PublishImage succeeded")
			}
			app := applicationError(t, err)
			if app.Type() != tt.typ || !app.NonRetryable() {
				t.Errorf("type %s, non-retryable %v, want %s non-retryable: %v", app.Type(), app.NonRetryable(), tt.typ, err)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("the error does not say %q: %v", tt.says, err)
			}
		})
	}
}

func refusesAMissingCandidate(t *testing.T, f *fixture) {
	missing := f.cand.Context().Digest("sha256:" + strings.Repeat("0", 64))
	_, err := f.publish(t, contract.PublishImageInput{From: missing.String(), Repository: f.publicRepo(), Tags: []string{"t"}})
	if err == nil {
		t.Fatal("publishing a candidate that is not in the registry succeeded")
	}
	app := applicationError(t, err)
	if app.Type() != contract.ErrCandidateMissing || !app.NonRetryable() || !strings.Contains(err.Error(), missing.String()) {
		t.Errorf("type %s, non-retryable %v, want a non-retryable %s naming %s: %v", app.Type(), app.NonRetryable(), contract.ErrCandidateMissing, missing, err)
	}
}
