package openstack

import (
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"

	"github.com/wikimedia/conveyor/activities/contract"
)

func TestMigratedVerdict(t *testing.T) {
	src := func(md map[string]string) *servers.Server {
		return &servers.Server{ID: "s1", TenantID: "p1", Metadata: md}
	}
	marked := map[string]string{contract.MarkerMigration: "key", contract.MarkerMigratedTo: "eqiad2/d1"}
	dst := func(status, tenant, from, verified string) *servers.Server {
		return &servers.Server{ID: "d1", Status: status, TenantID: tenant, Metadata: map[string]string{contract.MarkerMigratedFrom: from, contract.MarkerVerified: verified}}
	}
	good := dst("ACTIVE", "p1", "eqiad1/s1", "key")
	for _, c := range []struct {
		name     string
		src, dst *servers.Server
		want     string // "" = verified
	}{
		{"verified", src(marked), good, ""},
		{"never migrated", src(map[string]string{contract.MarkerMigration: "key"}), nil, "no conveyor.migrated-to marker"},
		{"malformed marker", src(map[string]string{contract.MarkerMigratedTo: "d1"}), good, "not <region>/<server id>"},
		{"other region", src(map[string]string{contract.MarkerMigratedTo: "codfw1/d1"}), good, "names region codfw1, not the cleanup's destination eqiad2"},
		{"destination gone", src(marked), nil, "destination eqiad2/d1 is gone"},
		{"destination stopped", src(marked), dst("SHUTOFF", "p1", "eqiad1/s1", "key"), "is SHUTOFF, not ACTIVE"},
		{"destination of another project", src(marked), dst("ACTIVE", "p2", "eqiad1/s1", "key"), "belongs to project p2"},
		{"destination from another source", src(marked), dst("ACTIVE", "p1", "eqiad1/s9", "key"), `conveyor.migrated-from="eqiad1/s9"`},
		{"destination not verified", src(marked), dst("ACTIVE", "p1", "eqiad1/s1", ""), `conveyor.verified=""`},
		{"destination of another migration", src(marked), dst("ACTIVE", "p1", "eqiad1/s1", "other"), `not the source's migration key "key"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			ref, why := migratedVerdict("eqiad1", "eqiad2", c.src, c.dst)
			if c.want == "" && (ref != "eqiad2/d1" || why != "") {
				t.Errorf("migratedVerdict = %q, %q; want verified eqiad2/d1", ref, why)
			}
			if c.want != "" && (ref != "" || !strings.Contains(why, c.want)) {
				t.Errorf("migratedVerdict = %q, %q; want unverified because %q", ref, why, c.want)
			}
		})
	}
}
