package openstack

import (
	"context"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

func TestActivitiesSayWhatToConfigure(t *testing.T) {
	a, err := New(config.Config{})
	if err != nil {
		t.Fatalf("New without an openstack section: %v (the worker must still start)", err)
	}
	_, err = a.MigrateStopSource(context.Background(), contract.VMRef{Project: "p", From: "a", To: "b", ServerID: "s", Key: "k"})
	for _, want := range []string{"openstack.authURL", "openstack.username", "openstack.password", "openstack.deployments", "conveyor dev up --with openstack"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
	a, _ = New(config.Config{OpenStack: config.OpenStack{AuthURL: "http://127.0.0.1:1/v3", Username: "u", Password: "p", ProjectName: "admin",
		Deployments: map[string]config.OpenStackDeployment{"eqiad1": {Region: "eqiad1"}}}})
	if _, err := a.MigrateStopSource(context.Background(), contract.VMRef{Project: "p", From: "x", To: "x", ServerID: "s", Key: "k"}); err == nil || !strings.Contains(err.Error(), "between two deployments") {
		t.Errorf("same from and to: %v", err)
	}
	if _, err := newClients(a.cfg, nil, "codfw9"); err == nil || !strings.Contains(err.Error(), `unknown deployment "codfw9": openstack.deployments has eqiad1`) {
		t.Errorf("unknown deployment: %v", err)
	}
	if _, err := New(config.Config{}, WithCopyRate(0)); err == nil {
		t.Error("WithCopyRate(0) accepted")
	}
	t.Setenv(CopyRateEnv, "fast")
	if _, err := New(config.Config{}); err == nil || !strings.Contains(err.Error(), CopyRateEnv) {
		t.Errorf("a bad %s: %v", CopyRateEnv, err)
	}
}

func TestPropertyQueryFiltersOnExtraProperties(t *testing.T) {
	q, err := propertyQuery{ListOpts: images.ListOpts{SortKey: "created_at"}, props: map[string]string{contract.MarkerSourceServer: "abc"}}.ToImageListQuery()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(q, "sort_key=created_at") || !strings.Contains(q, "conveyor.source-server=abc") || strings.Count(q, "?") != 1 {
		t.Errorf("query %q", q)
	}
}
