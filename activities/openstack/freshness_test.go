package openstack

import (
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/instanceactions"
)

// history builds a server's instance actions, newest first as Nova lists them,
// from "action/request" pairs given oldest first.
func history(steps ...string) []instanceactions.InstanceAction {
	t0 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	var out []instanceactions.InstanceAction
	for i, s := range steps {
		action, req, _ := strings.Cut(s, "/")
		out = append([]instanceactions.InstanceAction{{Action: action, RequestID: req, StartTime: t0.Add(time.Duration(i) * time.Minute)}}, out...)
	}
	return out
}

func TestSnapshotStale(t *testing.T) {
	for _, c := range []struct {
		name    string
		actions []instanceactions.InstanceAction
		req     string
		want    string // "" = fresh; else a part of the reason
	}{
		{"taken after the stop", history("create/r0", "stop/r1", "createImage/snap"), "snap", ""},
		{"a lock and another snapshot since", history("create/r0", "stop/r1", "createImage/snap", "lock/r2", "createImage/r3"), "snap", ""},
		{"rebuilt while stopped, then snapshotted", history("create/r0", "stop/r1", "rebuild/r2", "createImage/snap"), "snap", ""},
		{"started and stopped since", history("create/r0", "stop/r1", "createImage/snap", "start/r2", "stop/r3"), "snap", "start at 2025-03-01T10:03:00Z (request r2) after the snapshot"},
		{"rebooted since", history("create/r0", "stop/r1", "createImage/snap", "reboot/r2"), "snap", "reboot"},
		{"an action Nova may add later", history("create/r0", "stop/r1", "createImage/snap", "frobnicate/r2"), "snap", "frobnicate"},
		{"stopped again after the snapshot", history("create/r0", "createImage/snap", "stop/r1"), "snap", "stop at"},
		{"taken while running", history("create/r0", "stop/r1", "start/r2", "createImage/snap"), "snap", "while the server could run"},
		{"never stopped before it", history("createImage/snap"), "snap", "no stop before"},
		{"no request recorded", history("create/r0", "stop/r1", "createImage/snap"), "", "no conveyor.snapshot-request"},
		{"request not in Nova's record", history("create/r0", "stop/r1", "createImage/snap"), "forged", "no createImage with request forged"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := snapshotStale(c.actions, c.req)
			if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
				t.Errorf("snapshotStale = %q, want %q", got, c.want)
			}
		})
	}
}

func TestStoppedSince(t *testing.T) {
	for _, c := range []struct {
		name    string
		actions []instanceactions.InstanceAction
		want    string
	}{
		{"stopped", history("create/r0", "stop/r1"), ""},
		{"stopped, resized", history("create/r0", "stop/r1", "resize/r2", "confirmResize/r3"), ""},
		{"started since", history("create/r0", "stop/r1", "start/r2"), "start at"},
		{"never stopped", history("create/r0"), "no stop after it"},
		{"no actions", nil, "no stop of it"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := stoppedSince(c.actions)
			if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
				t.Errorf("stoppedSince = %q, want %q", got, c.want)
			}
		})
	}
}
