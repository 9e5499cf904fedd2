package promote

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/registryclient"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// TestOnlyAPublishedImageIsPromoted runs PromotionConfig against
// go-containerregistry's in-memory registry: the service's image with a
// *-production tag at its digest passes; a candidate, another service's image,
// an image tagged otherwise and one from another registry are refused.
func TestOnlyAPublishedImageIsPromoted(t *testing.T) {
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	push := func(ref string) string {
		t.Helper()
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		tag, err := name.NewTag(ref)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(tag, img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		return tag.Context().Name() + "@" + d.String()
	}
	published := push(host + "/hello:2026-12-02-130405-production")
	push(host + "/hello:2026-12-01-090000-production")
	candidate := push(host + "/candidates/hello:1234-2-abcdef")
	other := push(host + "/other:2026-12-02-130405-production")
	untested := push(host + "/hello:latest")

	repo, _ := registryRepo(t, goodFiles())
	a := testActivities(t, repo)
	var err error
	if a.registry, err = registryclient.New(config.Registry{Address: host}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.PromotionConfig(context.Background(), contract.PromotionConfigInput{Service: "hello", Image: published}); err != nil {
		t.Fatalf("the published image: %v", err)
	}
	for image, want := range map[string]string{
		candidate: "is not in service hello's repository " + host + "/hello",
		other:     "is not in service hello's repository",
		"registry.example.org/hello@" + strings.Split(published, "@")[1]: "is not in service hello's repository",
		untested: "was not published by conveyor's pipeline: no *-production tag of " + host + "/hello points at",
		host + "/hello@sha256:" + strings.Repeat("0", 64): "was not published",
		host + "/hello:latest":                            "want repository@sha256",
	} {
		_, err := a.PromotionConfig(context.Background(), contract.PromotionConfigInput{Service: "hello", Image: image})
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != contract.ErrPromotionInput || !appErr.NonRetryable() || !strings.Contains(err.Error(), want) {
			t.Errorf("image %s: %v, want a non-retryable %s saying %q", image, err, contract.ErrPromotionInput, want)
		}
	}
}
