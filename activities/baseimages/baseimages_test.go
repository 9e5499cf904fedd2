package baseimages

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"go.temporal.io/sdk/testsuite"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
)

func TestBaseImagesAndDigestsOnTheRealRegistry(t *testing.T) {
	cfg := stacktest.Config(t)
	cfg.StateDir = t.TempDir()
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	base := cfg.Registry.Address + "/it-base-" + hex.EncodeToString(rnd[:]) + ":latest"

	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(base)
	if err != nil {
		t.Fatal(err)
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: cfg.Registry.Username, Password: cfg.Registry.Password})
	if err := remote.Write(ref, img, remote.WithAuth(auth)); err != nil {
		t.Fatalf("pushing the base image (make up): %v", err)
	}
	pushed, _ := img.Digest()

	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)

	repo := stacktest.HelloOnBase(t, base)
	v, err := env.ExecuteActivity(contract.ResolveBaseImages.Name, contract.ResolveBaseImagesInput{Targets: []contract.BaseTarget{
		{Project: "hello", Repo: repo, Branch: "main"},
		{Project: "missing", Repo: repo, Branch: "no-such-branch"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var bases contract.ResolveBaseImagesOutput
	if err := v.Get(&bases); err != nil {
		t.Fatal(err)
	}
	if len(bases.Targets) != 2 {
		t.Fatalf("targets %+v", bases.Targets)
	}
	if got := bases.Targets[0]; got.Error != "" || len(got.Images) != 1 || got.Images[0] != base || len(got.Commit) != 40 {
		t.Errorf("hello: %+v, want the one base %s", got, base)
	}
	if got := bases.Targets[1]; got.Error == "" || !strings.Contains(got.Error, "no-such-branch") || len(got.Images) != 0 {
		t.Errorf("missing branch: %+v, want an error naming it", got)
	}

	v, err = env.ExecuteActivity(contract.ImageDigests.Name, contract.ImageDigestsInput{Images: []string{base, cfg.Registry.Address + "/it-base-none:latest", "UPPER/case"}})
	if err != nil {
		t.Fatal(err)
	}
	var digests contract.ImageDigestsOutput
	if err := v.Get(&digests); err != nil {
		t.Fatal(err)
	}
	if d := digests.Digests[0]; d.Digest != pushed.String() || d.Error != "" {
		t.Errorf("digest of %s: %+v, want %s", base, d, pushed)
	}
	for _, d := range digests.Digests[1:] {
		if d.Digest != "" || d.Error == "" {
			t.Errorf("%s: %+v, want an error and no digest", d.Image, d)
		}
	}
}
