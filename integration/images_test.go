package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	gateway "github.com/moby/buildkit/frontend/gateway/client"

	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// conveyorImage is one image of .pipeline/blubber.yaml and what it must hold.
type conveyorImage struct {
	name   string
	binary string
	// helpSays is a flag or command that the binary's --help names.
	helpSays string
	// git says whether git is in the image (the worker's build pool) or must not be.
	git bool
}

var conveyorImages = []conveyorImage{
	{name: "conveyor-worker", binary: "/usr/bin/conveyor-worker", helpSays: "--health-listen", git: true},
	{name: "conveyor", binary: "/usr/bin/conveyor", helpSays: "blubber"},
}

// imagesUID is the user both images run as, and the owner of the state directory.
const imagesUID = "65532"

// composeImage is one image of deploy/images/blubber.yaml, which docker-compose.yml
// runs besides conveyor's: the files it must hold (executables unless under /etc/)
// and the directory the lives user owns, where the compose file mounts a volume.
type composeImage struct {
	name  string
	files []string
	owned string
}

var composeImages = []composeImage{
	{name: "postgresql", owned: "/var/lib/postgresql/data", files: []string{
		"/usr/local/bin/postgresql-entrypoint", "/usr/lib/postgresql/15/bin/postgres",
		"/usr/lib/postgresql/15/bin/initdb", "/usr/lib/postgresql/15/bin/pg_isready"}},
	{name: "temporal-server", owned: "/var/lib/temporal", files: []string{
		"/usr/bin/temporal-server", "/usr/bin/temporal-sql-tool", "/usr/bin/temporal", "/usr/bin/conveyor"}},
	{name: "temporal-ui", owned: "/var/lib/temporal-ui", files: []string{"/usr/bin/temporal-ui-server"}},
	{name: "registry", owned: "/var/lib/docker-registry", files: []string{"/usr/bin/docker-registry"}},
	{name: "buildkitd", owned: "/var/lib/buildkit", files: []string{"/usr/bin/buildkitd", "/usr/bin/buildctl", "/usr/sbin/runc"}},
}

// TestImagesReproducible builds conveyor's own images and the compose stack's twice
// with tools/images.sh, the script `make images` runs (host binaries and the pinned
// tools into a clean bin/images/, then `conveyor blubber build` of each variant), and
// wants the same digests both times. It then reads each pushed image: its
// configuration, its files (the layers' tar listings, flattened) and, for conveyor's,
// what its binaries do when run as the image's user on buildkitd.
func TestImagesReproducible(t *testing.T) {
	c := stacktest.Debian(t)
	prefix := c.Registry.Address + "/conveyor-test"
	first := buildConveyorImages(t, c, prefix)
	second := buildConveyorImages(t, c, prefix)
	for ref, d := range first {
		if second[ref] != d {
			t.Errorf("%s: the second build gave %s, the first %s: the images are not reproducible", ref, second[ref], d)
		}
	}
	for _, im := range conveyorImages {
		ref := prefix + "/" + im.name + ":test"
		if first[ref] == "" || first[ref] != first[prefix+"/"+im.name+":latest"] {
			t.Fatalf("tools/images.sh pushed %v, want %s and :latest with one digest", first, ref)
		}
		t.Run(im.name, func(t *testing.T) {
			pinned := ref + "@" + first[ref]
			img := pullImage(t, pinned)
			checkImageConfig(t, img, im)
			checkImageFiles(t, img, im)
			checkImageRuns(t, c, pinned, img, im)
		})
	}
	for _, im := range composeImages {
		t.Run(im.name, func(t *testing.T) {
			img := pullImage(t, prefix+"/"+im.name+"@"+first[prefix+"/"+im.name+":test"])
			checkComposeImage(t, img, im)
		})
	}
}

// checkComposeImage wants the image's user to be 65532, its files in its layers and
// its state directory owned by that user.
func checkComposeImage(t *testing.T, img v1.Image, im composeImage) {
	checkImageUser(t, img)
	files := imageFiles(t, img)
	want := map[string]byte{"/etc/ssl/certs/ca-certificates.crt": tar.TypeReg, "/bin/busybox": tar.TypeReg, im.owned: tar.TypeDir}
	for _, f := range im.files {
		want[f] = tar.TypeReg
	}
	checkFiles(t, files, want)
	if h := lookup(files, im.owned); h != nil && h.Uid != 65532 {
		t.Errorf("%s is owned by uid %d, want %s", im.owned, h.Uid, imagesUID)
	}
}

// buildConveyorImages runs tools/images.sh and returns the digest of each IMAGE:TAG
// it printed.
func buildConveyorImages(t *testing.T, c config.Config, prefix string) map[string]string {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoDir, "tools", "images.sh"))
	cmd.Dir = repoDir
	cmd.Env = append(os.Environ(), "CONVEYOR_STATE_DIR="+c.StateDir, "IMAGES_PREFIX="+prefix, "VERSION=test")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tools/images.sh: %v\n%s", err, stderr.String())
	}
	t.Logf("tools/images.sh in %s:\n%s%s", time.Since(start).Round(time.Second), stderr.String(), out)
	digests := map[string]string{}
	for _, line := range strings.Fields(string(out)) {
		ref, d, ok := strings.Cut(line, "@")
		if !ok || !strings.HasPrefix(d, "sha256:") {
			t.Fatalf("tools/images.sh printed %q, want IMAGE:TAG@sha256:... lines", line)
		}
		digests[ref] = d
	}
	if n := len(conveyorImages) + len(composeImages); len(digests) != 2*n {
		t.Fatalf("tools/images.sh pushed %v, want %d images under two tags each", digests, n)
	}
	return digests
}

func pullImage(t *testing.T, ref string) v1.Image {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatalf("pulling %s: %v", ref, err)
	}
	return img
}

// checkImageUser wants the image to run as imagesUID and returns its configuration.
func checkImageUser(t *testing.T, img v1.Image) *v1.ConfigFile {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != imagesUID {
		t.Errorf("user %q, want %s", cf.Config.User, imagesUID)
	}
	return cf
}

func checkImageConfig(t *testing.T, img v1.Image, im conveyorImage) {
	cf := checkImageUser(t, img)
	if !slices.Equal(cf.Config.Entrypoint, []string{im.binary}) {
		t.Errorf("entrypoint %q, want [%s]", cf.Config.Entrypoint, im.binary)
	}
}

// imageFiles reads the image's filesystem as its layers make it up.
func imageFiles(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	files := map[string]*tar.Header{}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading the layers: %v", err)
		}
		files[path.Clean("/"+h.Name)] = h
	}
	return files
}

// checkImageFiles checks the files of one of conveyor's own images.
func checkImageFiles(t *testing.T, img v1.Image, im conveyorImage) {
	files := imageFiles(t, img)
	want := map[string]byte{
		im.binary:                            tar.TypeReg,
		"/etc/ssl/certs/ca-certificates.crt": tar.TypeReg,
		"/bin/busybox":                       tar.TypeReg,
		"/var/lib/conveyor":                  tar.TypeDir,
	}
	if im.git {
		want["/usr/bin/git"] = tar.TypeReg
	}
	checkFiles(t, files, want)
	if h := lookup(files, "/var/lib/conveyor"); h != nil && h.Uid != 65532 {
		t.Errorf("/var/lib/conveyor is owned by uid %d, want %s", h.Uid, imagesUID)
	}
	if !im.git && lookup(files, "/usr/bin/git") != nil {
		t.Errorf("/usr/bin/git is in the image, which needs no git")
	}
}

// checkFiles wants each path of want in files with its type; regular files not
// empty, and executable unless under /etc/.
func checkFiles(t *testing.T, files map[string]*tar.Header, want map[string]byte) {
	t.Helper()
	for p, typ := range want {
		h := lookup(files, p)
		switch {
		case h == nil:
			t.Errorf("%s is not in the image", p)
		case h.Typeflag != typ:
			t.Errorf("%s has type %q, want %q", p, h.Typeflag, typ)
		case typ == tar.TypeReg && h.Size == 0:
			t.Errorf("%s is empty", p)
		case typ == tar.TypeReg && !strings.HasPrefix(p, "/etc/") && h.Mode&0o111 == 0:
			t.Errorf("%s has mode %o, want an executable", p, h.Mode)
		}
	}
}

// lookup finds p in files, following symbolic links on the way (bookworm's /bin is
// a link to usr/bin).
func lookup(files map[string]*tar.Header, p string) *tar.Header {
	cur := "/"
	rest := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for hops := 0; len(rest) > 0 && hops < 40; hops++ {
		next := path.Join(cur, rest[0])
		h := files[next]
		if h == nil {
			return nil
		}
		if h.Typeflag == tar.TypeSymlink {
			target := h.Linkname
			if !path.IsAbs(target) {
				target = path.Join(cur, target)
			}
			rest = append(strings.Split(strings.TrimPrefix(path.Clean(target), "/"), "/"), rest[1:]...)
			cur = "/"
			continue
		}
		if len(rest) == 1 {
			return h
		}
		cur, rest = next, rest[1:]
	}
	return nil
}

// checkImageRuns runs the image's binaries as a build step on buildkitd, as the
// image's user in its working directory and with its environment: the entrypoint's
// --help, id -u, git --version, busybox's wget, and a write to the state directory.
func checkImageRuns(t *testing.T, c config.Config, ref string, img v1.Image, im conveyorImage) {
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	script := `set -e
"$0" --help >/out/help
id -u >/out/uid
busybox --list | grep -qx wget
touch /var/lib/conveyor/written
`
	if im.git {
		script += "git --version >/out/git\n"
	}
	st := llb.Image(ref).User(cf.Config.User).Dir(cf.Config.WorkingDir)
	for _, kv := range cf.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		st = st.AddEnv(k, v)
	}
	outDir := llb.Scratch().File(llb.Mkdir("/out", 0o777))
	run := st.Run(llb.Args([]string{"/bin/sh", "-c", script, im.binary}), llb.IgnoreCache,
		llb.WithCustomName("run "+im.name))
	out := run.AddMount("/out", outDir, llb.SourcePath("/out"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	def, err := out.Marshal(ctx, llb.LinuxAmd64)
	if err != nil {
		t.Fatal(err)
	}
	bk, err := bkclient.New(ctx, c.Buildkit.Address)
	if err != nil {
		t.Fatalf("buildkitd at %s (make up): %v", c.Buildkit.Address, err)
	}
	defer bk.Close()
	got := map[string]string{}
	_, err = bk.Build(ctx, bkclient.SolveOpt{}, "conveyor-images-test", func(ctx context.Context, gc gateway.Client) (*gateway.Result, error) {
		res, err := gc.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB(), Evaluate: true})
		if err != nil {
			return nil, err
		}
		r, err := res.SingleRef()
		if err != nil {
			return nil, err
		}
		files := []string{"help", "uid"}
		if im.git {
			files = append(files, "git")
		}
		for _, f := range files {
			// The mount's output is all of outDir, the step's files under /out.
			b, err := r.ReadFile(ctx, gateway.ReadRequest{Filename: "out/" + f})
			if err != nil {
				return nil, fmt.Errorf("reading what the step wrote to /out/%s: %w", f, err)
			}
			got[f] = string(b)
		}
		return res, nil
	}, nil)
	if err != nil {
		t.Fatalf("running %s in %s: %v", im.binary, ref, err)
	}
	if !strings.Contains(got["help"], im.helpSays) {
		t.Errorf("%s --help says %q, want it to name %s", im.binary, got["help"], im.helpSays)
	}
	if strings.TrimSpace(got["uid"]) != imagesUID {
		t.Errorf("the image runs as uid %q, want %s", got["uid"], imagesUID)
	}
	if im.git && !strings.HasPrefix(got["git"], "git version ") {
		t.Errorf("git --version says %q", got["git"])
	}
}
