package openstack

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/heartbeat"
)

// notFound says err is a 404 from an OpenStack API.
func notFound(err error) bool {
	return gophercloud.ResponseCodeIs(err, 404)
}

// waitFor asks check every poll until it says done or fails, heartbeating what it
// last saw. It stops when ctx ends (the activity's deadline or cancellation).
func (a *Activities) waitFor(ctx context.Context, what string, check func() (done bool, seen string, err error)) error {
	t := time.NewTicker(a.poll)
	defer t.Stop()
	for {
		done, seen, err := check()
		if err != nil || done {
			return err
		}
		heartbeat.Record(ctx, what+": "+seen)
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s (last seen: %s): %w", what, seen, ctx.Err())
		case <-t.C:
		}
	}
}

// badInput is the non-retryable failure for an input that names something that
// does not exist.
func badInput(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), contract.ErrMigrationInput, nil)
}

// propertyQuery lists images filtered on extra properties, which Glance accepts
// as query parameters (gophercloud's ListOpts has no field for them).
type propertyQuery struct {
	images.ListOpts
	props map[string]string
}

func (p propertyQuery) ToImageListQuery() (string, error) {
	q, err := p.ListOpts.ToImageListQuery()
	if err != nil {
		return "", err
	}
	v := url.Values{}
	for k, val := range p.props {
		v.Set(k, val)
	}
	if q == "" {
		return "?" + v.Encode(), nil
	}
	return q + "&" + v.Encode(), nil
}

// imagesWith lists the images whose properties include props, oldest first.
func imagesWith(ctx context.Context, c *gophercloud.ServiceClient, props map[string]string) ([]images.Image, error) {
	pages, err := images.List(c, propertyQuery{ListOpts: images.ListOpts{SortKey: "created_at", SortDir: "asc"}, props: props}).AllPages(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing images with %v: %w", props, err)
	}
	all, err := images.ExtractImages(pages)
	if err != nil {
		return nil, err
	}
	// Glance ignores a filter on a property it does not know in some
	// configurations: check each image's properties here too.
	var out []images.Image
	for _, im := range all {
		ok := true
		for k, v := range props {
			if fmt.Sprint(im.Properties[k]) != v {
				ok = false
			}
		}
		if ok {
			out = append(out, im)
		}
	}
	return out, nil
}

// prop returns an image's extra property as a string ("" when absent).
func prop(im *images.Image, name string) string {
	if v, ok := im.Properties[name]; ok && v != nil {
		return fmt.Sprint(v)
	}
	return ""
}

// imageOutput describes im.
func imageOutput(im *images.Image, reused bool) contract.ImageOutput {
	return contract.ImageOutput{ImageID: im.ID, Checksum: im.Checksum, HashAlgo: prop(im, "os_hash_algo"),
		HashValue: prop(im, "os_hash_value"), Size: im.SizeBytes, Reused: reused}
}

// flavorName is the name of a server's flavor (microversion >= 2.47 embeds it).
func flavorName(s *servers.Server) string {
	if n, ok := s.Flavor["original_name"].(string); ok {
		return n
	}
	if id, ok := s.Flavor["id"].(string); ok {
		return id
	}
	return ""
}

// imageID is the id of the image a server booted from ("" for a volume).
func imageID(s *servers.Server) string {
	if id, ok := s.Image["id"].(string); ok {
		return id
	}
	return ""
}

// securityGroups lists the names of a server's security groups, sorted.
func securityGroups(s *servers.Server) []string {
	var out []string
	for _, g := range s.SecurityGroups {
		if n, ok := g["name"].(string); ok && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// userMetadata is a server's metadata without the migration's own markers.
func userMetadata(md map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range md {
		if !strings.HasPrefix(k, "conveyor.") {
			out[k] = v
		}
	}
	return out
}

// regionRef is "<region>/<id>", the value of the cross-region markers.
func regionRef(c *clients, id string) string {
	return c.Region + "/" + id
}
