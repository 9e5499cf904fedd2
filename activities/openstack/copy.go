package openstack

import (
	"context"
	"crypto/md5" //nolint:gosec // Glance's checksum field is MD5; it is compared, not trusted for security.
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/imagedata"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/heartbeat"
)

// MigrateCopyImage copies a snapshot's data from the source deployment's Glance to
// the destination's: the download streams straight into the upload, hashed on the
// way, so the image is never held on disk or in memory. The copy is accepted only
// when its hashes equal the source's os_hash_value and checksum and the ones the
// destination's Glance computed; it then gets the source-checksum property, which
// marks it finished. A finished copy from an earlier attempt is reused, never
// copied again; an unfinished one (an upload a crash interrupted) is deleted and
// copied anew.
func (a *Activities) MigrateCopyImage(ctx context.Context, in contract.CopyImageInput) (contract.ImageOutput, error) {
	src, dst, err := a.pair(ctx, in.VM)
	if err != nil {
		return contract.ImageOutput{}, err
	}
	if in.Source.ImageID == "" {
		return contract.ImageOutput{}, badInput("MigrateCopyImage needs the source image's id")
	}
	srcImg, err := images.Get(ctx, src.Image, in.Source.ImageID).Extract()
	if notFound(err) {
		return contract.ImageOutput{}, badInput("snapshot %s does not exist in %s", in.Source.ImageID, src.Region)
	}
	if err != nil {
		return contract.ImageOutput{}, fmt.Errorf("reading snapshot %s in %s: %w", in.Source.ImageID, src.Region, err)
	}
	if srcImg.Status != images.ImageStatusActive {
		return contract.ImageOutput{}, fmt.Errorf("snapshot %s in %s is %s, not active", srcImg.ID, src.Region, srcImg.Status)
	}
	want := imageOutput(srcImg, false)
	finished := want.HashAlgo + ":" + want.HashValue
	marker := regionRef(src, srcImg.ID)

	found, err := imagesWith(ctx, dst.Image, map[string]string{contract.MarkerSourceImage: marker})
	if err != nil {
		return contract.ImageOutput{}, err
	}
	for _, im := range found {
		if im.Status == images.ImageStatusActive && prop(&im, contract.MarkerSourceChecksum) == finished {
			return imageOutput(&im, true), nil
		}
	}
	for _, im := range found {
		if err := images.Delete(ctx, dst.Image, im.ID).ExtractErr(); err != nil && !notFound(err) {
			return contract.ImageOutput{}, fmt.Errorf("deleting unfinished copy %s in %s: %w", im.ID, dst.Region, err)
		}
	}

	props := map[string]string{contract.MarkerSourceImage: marker, contract.MarkerMigration: in.VM.Key}
	for _, k := range []string{"hw_disk_bus", "hw_scsi_model", "hw_firmware_type", "os_type", "os_distro", "architecture"} {
		if v := prop(srcImg, k); v != "" {
			props[k] = v
		}
	}
	created, err := images.Create(ctx, dst.Image, images.CreateOpts{
		Name: srcImg.Name, ContainerFormat: srcImg.ContainerFormat, DiskFormat: srcImg.DiskFormat,
		MinDisk: srcImg.MinDiskGigabytes, MinRAM: srcImg.MinRAMMegabytes, Properties: props,
	}).Extract()
	if err != nil {
		return contract.ImageOutput{}, fmt.Errorf("creating the copy of %s in %s: %w", srcImg.ID, dst.Region, err)
	}

	body, err := imagedata.Download(ctx, src.Image, srcImg.ID).Extract()
	if err != nil {
		return contract.ImageOutput{}, fmt.Errorf("downloading snapshot %s from %s: %w", srcImg.ID, src.Region, err)
	}
	defer body.Close()
	h, err := newHasher(want.HashAlgo)
	if err != nil {
		return contract.ImageOutput{}, err
	}
	r := &copyReader{ctx: ctx, r: body, h: h, md5: md5.New(), total: srcImg.SizeBytes, rate: a.copyRate, start: time.Now()}
	if err := imagedata.Upload(ctx, dst.Image, created.ID, r).ExtractErr(); err != nil {
		return contract.ImageOutput{}, fmt.Errorf("uploading %s to %s after %d of %d bytes: %w", created.ID, dst.Region, r.n, srcImg.SizeBytes, err)
	}
	gotHash, gotMD5 := hex.EncodeToString(r.h.Sum(nil)), hex.EncodeToString(r.md5.Sum(nil))
	if r.n != srcImg.SizeBytes || gotHash != want.HashValue || (want.Checksum != "" && gotMD5 != want.Checksum) {
		// The unfinished copy is deleted by the next attempt.
		return contract.ImageOutput{}, fmt.Errorf("the copy of %s differs from the source: %d bytes %s %s, source %d bytes %s %s",
			srcImg.ID, r.n, want.HashAlgo, gotHash, srcImg.SizeBytes, want.HashAlgo, want.HashValue)
	}
	var out *images.Image
	err = a.waitFor(ctx, "copy "+created.ID+" to become active", func() (bool, string, error) {
		out, err = images.Get(ctx, dst.Image, created.ID).Extract()
		if err != nil {
			return false, "", fmt.Errorf("reading copy %s in %s: %w", created.ID, dst.Region, err)
		}
		return out.Status == images.ImageStatusActive, string(out.Status), nil
	})
	if err != nil {
		return contract.ImageOutput{}, err
	}
	if prop(out, "os_hash_value") != want.HashValue || out.Checksum != gotMD5 {
		return contract.ImageOutput{}, fmt.Errorf("glance in %s computed %s %s / md5 %s for copy %s; the source has %s / md5 %s",
			dst.Region, prop(out, "os_hash_algo"), prop(out, "os_hash_value"), out.Checksum, out.ID, want.HashValue, want.Checksum)
	}
	out, err = images.Update(ctx, dst.Image, out.ID, images.UpdateOpts{
		images.UpdateImageProperty{Op: images.AddOp, Name: contract.MarkerSourceChecksum, Value: finished},
	}).Extract()
	if err != nil {
		return contract.ImageOutput{}, fmt.Errorf("marking copy %s in %s finished: %w", created.ID, dst.Region, err)
	}
	return imageOutput(out, false), nil
}

// newHasher returns the hash Glance names algo (its os_hash_algo).
func newHasher(algo string) (hash.Hash, error) {
	switch algo {
	case "sha512", "":
		return sha512.New(), nil
	case "sha256":
		return sha256.New(), nil
	}
	return nil, fmt.Errorf("the source image's os_hash_algo %q is not one conveyor can check (sha512, sha256)", algo)
}

// copyReader hashes what it reads, heartbeats the bytes copied at most once a
// second, and keeps to rate bytes per second when rate is set.
type copyReader struct {
	ctx   context.Context
	r     io.Reader
	h     hash.Hash
	md5   hash.Hash
	n     int64
	total int64
	last  time.Time
	rate  int64
	start time.Time
}

func (c *copyReader) Read(p []byte) (int, error) {
	if c.rate > 0 {
		if chunk := max(c.rate/10, 1); int64(len(p)) > chunk {
			p = p[:chunk]
		}
		ahead := time.Duration(float64(c.n)/float64(c.rate)*float64(time.Second)) - time.Since(c.start)
		if ahead > 0 {
			heartbeat.Record(c.ctx, fmt.Sprintf("copied %d of %d bytes", c.n, c.total))
			select {
			case <-c.ctx.Done():
				return 0, c.ctx.Err()
			case <-time.After(ahead):
			}
		}
	}
	n, err := c.r.Read(p)
	if n > 0 {
		c.h.Write(p[:n])
		c.md5.Write(p[:n])
		c.n += int64(n)
		if now := time.Now(); now.Sub(c.last) >= time.Second {
			c.last = now
			heartbeat.Record(c.ctx, fmt.Sprintf("copied %d of %d bytes", c.n, c.total))
		}
	}
	return n, err
}
