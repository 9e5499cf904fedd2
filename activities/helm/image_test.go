package helm

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/cli/cli/config/types"
	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/wikimedia/conveyor/internal/dev/devstack"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// testPage is what the test image serves at /.
const testPage = "conveyor helm activities: hello from the candidate\n"

var (
	imageOnce sync.Once
	imageRef  string
	imageErr  error
)

// testImage is a tiny HTTP service, built once per test binary on the stack's
// buildkitd and pushed to its registry: the base busybox image running httpd as uid
// 900 on port 8080, serving testPage. It returns repository@sha256:....
func testImage(t *testing.T, cfg config.Config) string {
	t.Helper()
	imageOnce.Do(func() { imageRef, imageErr = buildTestImage(cfg) })
	if imageErr != nil {
		t.Fatalf("building the test image on buildkitd (make up): %v", imageErr)
	}
	return imageRef
}

func buildTestImage(cfg config.Config) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	st := llb.Image(devstack.BaseImage).
		File(llb.Mkdir("/srv/www", 0o755, llb.WithParents(true), llb.WithCreatedTime(time.Unix(0, 0)))).
		File(llb.Mkfile("/srv/www/index.html", 0o644, []byte(testPage), llb.WithCreatedTime(time.Unix(0, 0))))
	def, err := st.Marshal(ctx, llb.LinuxAmd64)
	if err != nil {
		return "", err
	}
	imgConfig, err := json.Marshal(ocispecs.Image{
		Platform: ocispecs.Platform{OS: "linux", Architecture: "amd64"},
		Config: ocispecs.ImageConfig{
			User:         "900:900",
			Env:          []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Entrypoint:   []string{"/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/srv/www"},
			ExposedPorts: map[string]struct{}{"8080/tcp": {}},
			WorkingDir:   "/srv/www",
		},
	})
	if err != nil {
		return "", err
	}
	bk, err := bkclient.New(ctx, cfg.Buildkit.Address)
	if err != nil {
		return "", err
	}
	defer bk.Close()
	repo := cfg.Registry.Address + "/conveyor-test/helm-activities"
	resp, err := bk.Build(ctx, bkclient.SolveOpt{
		Exports: []bkclient.ExportEntry{{Type: bkclient.ExporterImage, Attrs: map[string]string{"name": repo + ":latest", "push": "true"}}},
		Session: []session.Attachable{registryAuth(cfg.Registry)},
	}, "", func(ctx context.Context, c gateway.Client) (*gateway.Result, error) {
		res, err := c.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB(), Evaluate: true})
		if err != nil {
			return nil, err
		}
		res.AddMeta(exptypes.ExporterImageConfigKey, imgConfig)
		return res, nil
	}, nil)
	if err != nil {
		return "", err
	}
	digest := resp.ExporterResponse[exptypes.ExporterImageDigestKey]
	if !strings.HasPrefix(digest, "sha256:") {
		return "", &missingDigestError{resp.ExporterResponse}
	}
	return repo + "@" + digest, nil
}

type missingDigestError struct{ resp map[string]string }

func (e *missingDigestError) Error() string {
	b, _ := json.Marshal(e.resp)
	return "no image digest in the exporter response: " + string(b)
}

// registryAuth gives buildkitd the registry credentials from the configuration.
func registryAuth(reg config.Registry) session.Attachable {
	return authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
		AuthConfigProvider: func(_ context.Context, host string, _ []string, _ authprovider.ExpireCachedAuthCheck) (types.AuthConfig, error) {
			if host == reg.Address {
				return types.AuthConfig{Username: reg.Username, Password: reg.Password}, nil
			}
			return types.AuthConfig{}, nil
		},
	})
}
