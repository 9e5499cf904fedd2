package openstack

import (
	"context"
	"fmt"
	"strings"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"

	"github.com/wikimedia/conveyor/activities/contract"
)

// Whether a legacy server was migrated, for stage 5's cleanup: the source's
// migrated-to marker (set by MigrateMark once the destination was verified) is
// only a claim, since the project can edit metadata; the cleanup believes it only
// when the destination deployment agrees: the server it names exists, is ACTIVE,
// belongs to the same project, and carries the migrated-from marker naming the
// source and the verified marker with the source's migration key.

// migratedVerdict checks src's migrated-to marker against dst, the server the
// marker names in region to (nil when it is gone). It returns the destination's
// "<region>/<id>" when the migration is verified, or why it is not.
func migratedVerdict(from, to string, src, dst *servers.Server) (ref, why string) {
	marker := src.Metadata[contract.MarkerMigratedTo]
	region, id, ok := strings.Cut(marker, "/")
	switch {
	case marker == "":
		return "", "no " + contract.MarkerMigratedTo + " marker: conveyor never finished migrating it"
	case !ok || id == "":
		return "", fmt.Sprintf("%s is %q, not <region>/<server id>", contract.MarkerMigratedTo, marker)
	case region != to:
		return "", fmt.Sprintf("%s names region %s, not the cleanup's destination %s", contract.MarkerMigratedTo, region, to)
	case dst == nil:
		return "", "its destination " + marker + " is gone"
	case dst.Status != "ACTIVE":
		return "", fmt.Sprintf("its destination %s is %s, not ACTIVE", marker, dst.Status)
	case dst.TenantID != src.TenantID:
		return "", fmt.Sprintf("its destination %s belongs to project %s, not %s", marker, dst.TenantID, src.TenantID)
	case dst.Metadata[contract.MarkerMigratedFrom] != from+"/"+src.ID:
		return "", fmt.Sprintf("its destination %s has %s=%q, not %s/%s", marker, contract.MarkerMigratedFrom, dst.Metadata[contract.MarkerMigratedFrom], from, src.ID)
	case dst.Metadata[contract.MarkerVerified] == "" || dst.Metadata[contract.MarkerVerified] != src.Metadata[contract.MarkerMigration]:
		return "", fmt.Sprintf("its destination %s has %s=%q, not the source's migration key %q", marker, contract.MarkerVerified, dst.Metadata[contract.MarkerVerified], src.Metadata[contract.MarkerMigration])
	}
	return marker, ""
}

// verifyMigrated reads the destination src's marker names (in deployment to,
// with admin clients) and says whether src was migrated there (migratedVerdict).
// With no destination deployment, nothing is verified.
func verifyMigrated(ctx context.Context, from, to *clients, src *servers.Server) (ref, why string, err error) {
	if to == nil {
		return "", "the cleanup names no destination deployment (to) to verify its " + contract.MarkerMigratedTo + " marker against", nil
	}
	var dst *servers.Server
	if region, id, ok := strings.Cut(src.Metadata[contract.MarkerMigratedTo], "/"); ok && region == to.Region && id != "" {
		dst, err = serversGet(ctx, to, id)
		if notFound(err) {
			dst, err = nil, nil
		}
		if err != nil {
			return "", "", fmt.Errorf("reading destination server %s in %s: %w", id, to.Region, err)
		}
	}
	ref, why = migratedVerdict(from.Region, to.Region, src, dst)
	return ref, why, nil
}
