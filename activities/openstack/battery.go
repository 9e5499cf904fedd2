package openstack

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/imagedata"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"

	"github.com/wikimedia/conveyor/activities/contract"
)

// The stage-3 test battery. Each test is one activity; what it creates carries
// the run's key in the property (images) or name (servers) below, so a retried
// test finds its own resources, and every test deletes them before it returns.

// batteryMarker is the image property holding the battery run's key; its role
// ("source", "copy", "server") is batteryRole.
const (
	batteryMarker = "conveyor.battery"
	batteryRole   = "conveyor.battery-role"
)

// batteryImageSize is the test image's size: enough to stream in several chunks.
const batteryImageSize = 256 << 10

// BatteryReportFile is the pair's report file, relative to the state directory:
// one JSON contract.BatteryRun per line, oldest first.
func BatteryReportFile(from, to string) string {
	return filepath.Join("migration", "battery-"+from+"-"+to+".jsonl")
}

// RunBatteryTest runs one test of the battery. A failed test is a result with
// OK false and a detail; the activity fails only when the test name is unknown.
func (a *Activities) RunBatteryTest(ctx context.Context, in contract.BatteryTestInput) (contract.BatteryResult, error) {
	start := time.Now()
	res := contract.BatteryResult{Test: in.Test}
	var err error
	switch in.Test {
	case contract.BatteryKeystone:
		res.Detail, err = a.batteryKeystone(ctx, in)
	case contract.BatteryServer:
		res.Detail, err = a.batteryServer(ctx, in)
	case contract.BatteryImageCopy:
		res.Detail, res.SourceChecksum, res.CopyChecksum, err = a.batteryImageCopy(ctx, in)
	case contract.BatteryDNS:
		if len(in.DNSNames) == 0 {
			res.Skipped, res.Detail = true, "no DNS names configured (dnsNames)"
			break
		}
		res.Detail, err = batteryDNS(ctx, in.DNSNames)
	case contract.BatteryBastion:
		if in.Bastion == "" {
			res.Skipped, res.Detail = true, "no bastion configured (bastion: host:port)"
			break
		}
		res.Detail, err = batteryBastion(ctx, in.Bastion)
	default:
		return res, badInput("the battery has no test %q: its tests are %s", in.Test, strings.Join(contract.BatteryTests, ", "))
	}
	res.Seconds = time.Since(start).Seconds()
	if err != nil {
		res.Detail = err.Error()
		return res, nil
	}
	res.OK = !res.Skipped
	return res, nil
}

// batteryKeystone authenticates anew and checks the catalog has compute, image
// and network endpoints for both regions, and that each answers.
func (a *Activities) batteryKeystone(ctx context.Context, in contract.BatteryTestInput) (string, error) {
	var mu sync.Mutex
	p, err := providerFor(ctx, a.cfg, "", &mu, map[string]*gophercloud.ProviderClient{})
	if err != nil {
		return "", err
	}
	cl, err := newClients(a.cfg, p, in.From)
	if err != nil {
		return "", err
	}
	res := tokens.Get(ctx, cl.Identity, p.Token())
	catalog, err := res.ExtractServiceCatalog()
	if err != nil {
		return "", fmt.Errorf("reading the catalog: %w", err)
	}
	var missing []string
	for _, d := range []string{in.From, in.To} {
		region := a.cfg.Deployments[d].Region
		if region == "" {
			region = d
		}
		for _, typ := range []string{"compute", "image", "network"} {
			found := false
			for _, e := range catalog.Entries {
				if e.Type != typ {
					continue
				}
				for _, ep := range e.Endpoints {
					if ep.Region == region && ep.Interface == "public" {
						found = true
					}
				}
			}
			if !found {
				missing = append(missing, typ+" in "+region)
			}
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("the catalog has no public endpoint for %s", strings.Join(missing, ", "))
	}
	ok, detail, err := a.apisUp(ctx, in.From, in.To)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("%s", detail)
	}
	return fmt.Sprintf("authenticated as %s; catalog has compute, image and network for %s and %s; %s", a.cfg.Username, in.From, in.To, detail), nil
}

// batteryServer boots a server in the new deployment from a small image of its
// own, waits for ACTIVE (ERROR fails at once) and deletes both.
func (a *Activities) batteryServer(ctx context.Context, in contract.BatteryTestInput) (string, error) {
	cl, err := a.adminClients(ctx, in.To)
	if err != nil {
		return "", err
	}
	flavor, err := smallestFlavor(ctx, cl)
	if err != nil {
		return "", err
	}
	img, _, err := a.batteryImage(ctx, cl, in.Key, "server", bytes.NewReader(batteryData(in.Key)))
	if err != nil {
		return "", err
	}
	defer a.deleteBatteryImages(context.WithoutCancel(ctx), cl, in.Key)
	name := in.Key
	pages, err := servers.List(cl.Compute, servers.ListOpts{Name: "^" + name + "$"}).AllPages(ctx)
	if err != nil {
		return "", fmt.Errorf("looking for server %s in %s: %w", name, in.To, err)
	}
	existing, err := servers.ExtractServers(pages)
	if err != nil {
		return "", err
	}
	var id string
	for _, s := range existing {
		if s.Name == name && s.Status != "ERROR" {
			id = s.ID
		} else if s.Name == name {
			if err := a.deleteServer(ctx, cl, s.ID); err != nil {
				return "", err
			}
		}
	}
	if id == "" {
		s, err := servers.Create(ctx, cl.Compute, servers.CreateOpts{Name: name, ImageRef: img.ID, FlavorRef: flavor.ID, Networks: "none",
			Metadata: map[string]string{batteryMarker: in.Key}}, nil).Extract()
		if err != nil {
			return "", fmt.Errorf("creating server %s in %s: %w", name, in.To, err)
		}
		id = s.ID
	}
	defer a.deleteServer(context.WithoutCancel(ctx), cl, id)
	start := time.Now()
	err = a.waitFor(ctx, "battery server "+id+" to become ACTIVE", func() (bool, string, error) {
		s, err := servers.Get(ctx, cl.Compute, id).Extract()
		if err != nil {
			return false, "", fmt.Errorf("reading server %s in %s: %w", id, in.To, err)
		}
		if s.Status == "ERROR" {
			return false, s.Status, fmt.Errorf("server %s in %s went to ERROR: %s", id, in.To, faultText(s.Fault))
		}
		return s.Status == "ACTIVE", s.Status, nil
	})
	if err != nil {
		return "", err
	}
	active := time.Since(start)
	if err := a.deleteServer(ctx, cl, id); err != nil {
		return "", err
	}
	return fmt.Sprintf("server %s (flavor %s) in %s was ACTIVE after %.1fs and is deleted", name, flavor.Name, in.To, active.Seconds()), nil
}

// batteryImageCopy uploads an image to the legacy deployment, streams its data
// to the new one, and compares the sha512 Glance computed on both sides with the
// one computed on the way.
func (a *Activities) batteryImageCopy(ctx context.Context, in contract.BatteryTestInput) (detail, srcSum, dstSum string, err error) {
	src, err := a.adminClients(ctx, in.From)
	if err != nil {
		return "", "", "", err
	}
	dst, err := a.adminClients(ctx, in.To)
	if err != nil {
		return "", "", "", err
	}
	defer a.deleteBatteryImages(context.WithoutCancel(ctx), src, in.Key)
	defer a.deleteBatteryImages(context.WithoutCancel(ctx), dst, in.Key)
	srcImg, _, err := a.batteryImage(ctx, src, in.Key, "source", bytes.NewReader(batteryData(in.Key)))
	if err != nil {
		return "", "", "", err
	}
	body, err := imagedata.Download(ctx, src.Image, srcImg.ID).Extract()
	if err != nil {
		return "", "", "", fmt.Errorf("downloading image %s from %s: %w", srcImg.ID, in.From, err)
	}
	defer body.Close()
	h := sha512.New()
	dstImg, copied, err := a.batteryImage(ctx, dst, in.Key, "copy", io.TeeReader(body, h))
	if err != nil {
		return "", "", "", err
	}
	srcSum, dstSum = prop(srcImg, "os_hash_value"), prop(dstImg, "os_hash_value")
	streamed := hex.EncodeToString(h.Sum(nil))
	if !copied {
		// An earlier attempt finished the copy: compare Glance's sums only.
		streamed = dstSum
	}
	if srcSum == "" || srcSum != dstSum || streamed != srcSum || srcImg.Checksum != dstImg.Checksum {
		return "", srcSum, dstSum, fmt.Errorf("image copy %s→%s differs: source sha512 %s md5 %s, copy sha512 %s md5 %s, streamed sha512 %s",
			in.From, in.To, srcSum, srcImg.Checksum, dstSum, dstImg.Checksum, streamed)
	}
	return fmt.Sprintf("copied %d bytes from image %s in %s to %s in %s; sha512 %s… and md5 %s equal on both sides",
		dstImg.SizeBytes, srcImg.ID, in.From, dstImg.ID, in.To, srcSum[:16], srcImg.Checksum), srcSum, dstSum, nil
}

// batteryImage returns the active battery image of role in cl's deployment,
// creating it with data when it does not exist (an unfinished one is replaced).
// created says it was uploaded now.
func (a *Activities) batteryImage(ctx context.Context, cl *clients, key, role string, data io.Reader) (*images.Image, bool, error) {
	found, err := imagesWith(ctx, cl.Image, map[string]string{batteryMarker: key, batteryRole: role})
	if err != nil {
		return nil, false, err
	}
	for _, im := range found {
		if im.Status == images.ImageStatusActive {
			return &im, false, nil
		}
		if err := images.Delete(ctx, cl.Image, im.ID).ExtractErr(); err != nil && !notFound(err) {
			return nil, false, fmt.Errorf("deleting unfinished image %s in %s: %w", im.ID, cl.Region, err)
		}
	}
	vis := images.ImageVisibilityPrivate
	im, err := images.Create(ctx, cl.Image, images.CreateOpts{Name: key + "-" + role, ContainerFormat: "bare", DiskFormat: "raw",
		Visibility: &vis, Properties: map[string]string{batteryMarker: key, batteryRole: role}}).Extract()
	if err != nil {
		return nil, false, fmt.Errorf("creating image %s-%s in %s: %w", key, role, cl.Region, err)
	}
	if err := imagedata.Upload(ctx, cl.Image, im.ID, data).ExtractErr(); err != nil {
		return nil, false, fmt.Errorf("uploading image %s in %s: %w", im.ID, cl.Region, err)
	}
	var got *images.Image
	err = a.waitFor(ctx, "image "+im.ID+" to become active", func() (bool, string, error) {
		g, err := images.Get(ctx, cl.Image, im.ID).Extract()
		if err != nil {
			return false, "", fmt.Errorf("reading image %s in %s: %w", im.ID, cl.Region, err)
		}
		got = g
		if g.Status == images.ImageStatusKilled || g.Status == images.ImageStatusDeleted {
			return false, string(g.Status), fmt.Errorf("image %s in %s is %s", im.ID, cl.Region, g.Status)
		}
		return g.Status == images.ImageStatusActive, string(g.Status), nil
	})
	return got, true, err
}

// deleteBatteryImages deletes the run's images from cl's deployment.
func (a *Activities) deleteBatteryImages(ctx context.Context, cl *clients, key string) {
	found, err := imagesWith(ctx, cl.Image, map[string]string{batteryMarker: key})
	if err != nil {
		return
	}
	for _, im := range found {
		_ = images.Delete(ctx, cl.Image, im.ID).ExtractErr()
	}
}

// batteryData is the test image's content, derived from the run's key.
func batteryData(key string) []byte {
	out := make([]byte, 0, batteryImageSize)
	block := sha256.Sum256([]byte(key))
	for len(out) < batteryImageSize {
		out = append(out, block[:]...)
		block = sha256.Sum256(block[:])
	}
	return out
}

// smallestFlavor is the deployment's flavor with the least RAM.
func smallestFlavor(ctx context.Context, cl *clients) (*flavors.Flavor, error) {
	pages, err := flavors.ListDetail(cl.Compute, nil).AllPages(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing flavors of %s: %w", cl.Deployment, err)
	}
	fs, err := flavors.ExtractFlavors(pages)
	if err != nil {
		return nil, err
	}
	if len(fs) == 0 {
		return nil, fmt.Errorf("%s has no flavors: create one (`openstack flavor create`)", cl.Deployment)
	}
	slices.SortFunc(fs, func(x, y flavors.Flavor) int {
		if x.RAM != y.RAM {
			return x.RAM - y.RAM
		}
		return strings.Compare(x.Name, y.Name)
	})
	return &fs[0], nil
}

func batteryDNS(ctx context.Context, names []string) (string, error) {
	var found, failed []string
	for _, n := range names {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		addrs, err := net.DefaultResolver.LookupHost(ctx, n)
		cancel()
		if err != nil {
			failed = append(failed, n+": "+err.Error())
			continue
		}
		found = append(found, n+" → "+strings.Join(addrs, ","))
	}
	if len(failed) > 0 {
		return "", fmt.Errorf("not resolved: %s", strings.Join(failed, "; "))
	}
	return "resolved " + strings.Join(found, "; "), nil
}

func batteryBastion(ctx context.Context, addr string) (string, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	start := time.Now()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("connecting to bastion %s: %w", addr, err)
	}
	c.Close()
	return fmt.Sprintf("bastion %s accepted a connection in %s", addr, time.Since(start).Round(time.Millisecond)), nil
}

// RecordBatteryReport appends the run to the pair's report file
// (BatteryReportFile under the state directory) unless a line with its id is
// already there, and returns up to in.Keep earlier runs, newest first.
func (a *Activities) RecordBatteryReport(ctx context.Context, in contract.RecordBatteryInput) (contract.RecordBatteryOutput, error) {
	if a.stateDir == "" {
		return contract.RecordBatteryOutput{}, fmt.Errorf("the worker has no state directory for the battery's report: set stateDir in the configuration")
	}
	keep := in.Keep
	if keep == 0 {
		keep = 10
	}
	path := filepath.Join(a.stateDir, BatteryReportFile(in.Run.From, in.Run.To))
	out := contract.RecordBatteryOutput{File: path}
	notifyMu.Lock()
	defer notifyMu.Unlock()
	runs, err := ReadBatteryRuns(path)
	if err != nil {
		return out, err
	}
	recorded := false
	for i := len(runs) - 1; i >= 0; i-- {
		if runs[i].ID == in.Run.ID {
			recorded = true
			continue
		}
		if len(out.Previous) < keep {
			out.Previous = append(out.Previous, runs[i])
		}
	}
	if recorded {
		return out, nil
	}
	b, err := json.Marshal(in.Run)
	if err != nil {
		return out, err
	}
	return out, appendLine(path, b)
}

// ReadBatteryRuns reads a battery report file, oldest run first; a missing file
// has none.
func ReadBatteryRuns(path string) ([]contract.BatteryRun, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var runs []contract.BatteryRun
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var r contract.BatteryRun
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		runs = append(runs, r)
	}
	return runs, sc.Err()
}
