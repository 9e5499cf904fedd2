package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/workflows/migrations"

	"github.com/gophercloud/gophercloud/v2"
	gos "github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/quotasets"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/projects"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/imagedata"
	glance "github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/openstack"
	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/workflows"
)

// The stage workflows on the real two-region rig (eqiad1 → eqiad2): the projects
// driver's organic and manual modes, the test battery and the cleanup. Each test
// makes Keystone projects of its own and serves the migrate pool with a real
// conveyor-worker in a Temporal namespace of its own, whose state directory (for
// the notifications and battery reports) is the test's.
const (
	modesFrom = "eqiad1"
	modesTo   = "eqiad2"
	modesNS   = "conveyor-test-migration-modes"
)

// modesRig is the rig's admin clients.
type modesRig struct {
	cfg        config.OpenStack
	provider   *gophercloud.ProviderClient
	identity   *gophercloud.ServiceClient
	from, to   *gophercloud.ServiceClient // compute
	fromImages *gophercloud.ServiceClient
}

func newModesRig(t *testing.T) *modesRig {
	t.Helper()
	osCfg := stacktest.OpenStack(t)
	c := osCfg.OpenStack
	if c.AuthURL == "" || c.Deployments[modesFrom].Region == "" || c.Deployments[modesTo].Region == "" {
		t.Fatalf("the local stack has no OpenStack rig with %s and %s: start it with `conveyor dev up --with openstack` (make up-openstack)", modesFrom, modesTo)
	}
	r := &modesRig{cfg: c, provider: vmProvider(t, c, c.ProjectName)}
	var err error
	if r.identity, err = gos.NewIdentityV3(r.provider, gophercloud.EndpointOpts{Availability: gophercloud.AvailabilityPublic}); err != nil {
		t.Fatal(err)
	}
	r.from, r.fromImages = r.compute(t, r.provider, modesFrom), r.images(t, r.provider, modesFrom)
	r.to = r.compute(t, r.provider, modesTo)
	return r
}

func (r *modesRig) compute(t *testing.T, p *gophercloud.ProviderClient, d string) *gophercloud.ServiceClient {
	t.Helper()
	c, err := gos.NewComputeV2(p, gophercloud.EndpointOpts{Region: r.cfg.Deployments[d].Region, Availability: gophercloud.AvailabilityPublic})
	if err != nil {
		t.Fatal(err)
	}
	c.Microversion = "2.79"
	return c
}

func (r *modesRig) images(t *testing.T, p *gophercloud.ProviderClient, d string) *gophercloud.ServiceClient {
	t.Helper()
	c, err := gos.NewImageV2(p, gophercloud.EndpointOpts{Region: r.cfg.Deployments[d].Region, Availability: gophercloud.AvailabilityPublic})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// project creates a Keystone project for the test, deleted at its end with its
// quotas; withRole gives the migration account the admin role on it, so the test
// can create resources in it.
func (r *modesRig) project(t *testing.T, prefix string, withRole bool) *projects.Project {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := projects.Create(ctx, r.identity, projects.CreateOpts{Name: prefix + "-" + randomHex(t)[:8], DomainID: "default", Description: "conveyor migration modes test"}).Extract()
	if err != nil {
		t.Fatalf("creating a project: %v", err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = quotasets.Delete(ctx, r.from, p.ID).Err
		_ = quotasets.Delete(ctx, r.to, p.ID).Err
		_ = projects.Delete(ctx, r.identity, p.ID).ExtractErr()
	})
	if withRole {
		grantAdmin(ctx, t, r.identity, r.cfg.Username, p.ID, p.Name)
	}
	return p
}

func (r *modesRig) quota(t *testing.T, compute *gophercloud.ServiceClient, projectID string) contract.ComputeQuota {
	t.Helper()
	q, err := quotasets.Get(context.Background(), compute, projectID).Extract()
	if err != nil {
		t.Fatalf("reading the quota of %s: %v", projectID, err)
	}
	return contract.ComputeQuota{Instances: q.Instances, Cores: q.Cores, RAM: q.RAM}
}

// modesWorker serves the migrate pool in the test's namespace with a state
// directory of its own, which it returns.
func modesWorker(t *testing.T) (client.Client, string, *syncBuffer) {
	t.Helper()
	nsCfg := stacktest.Namespace(t, modesNS)
	state := t.TempDir()
	out := startLoggedWorker(t, []string{"CONVEYOR_STATE_DIR=" + state}, "--namespace", modesNS, "--pools", "migrate")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tc, err := temporalclient.Dial(ctx, nsCfg.Temporal, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatalf("Temporal (make up): %v", err)
	}
	t.Cleanup(tc.Close)
	return tc, state, out
}

// queryUntil queries a workflow until ok says its answer is what the test waits for.
func queryUntil[T any](t *testing.T, c client.Client, id, query string, timeout time.Duration, what string, ok func(T) bool) T {
	t.Helper()
	var v T
	stacktest.WaitFor(t, timeout, what, func() error {
		res, err := c.QueryWorkflow(context.Background(), id, "", query)
		if err != nil {
			return err
		}
		var got T
		if err := res.Get(&got); err != nil {
			return err
		}
		v = got
		if !ok(got) {
			b, _ := json.Marshal(got)
			return errors.New(string(b))
		}
		return nil
	})
	return v
}

func notificationsOf(t *testing.T, state string) []openstack.Notification {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, openstack.NotificationsFile))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []openstack.Notification
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var n openstack.Notification
		if err := json.Unmarshal(line, &n); err != nil {
			t.Fatalf("%s: %v", openstack.NotificationsFile, err)
		}
		out = append(out, n)
	}
	return out
}

// bootKit is what creating a server in a test project of eqiad1 needs.
type bootKit struct {
	compute, images *gophercloud.ServiceClient
	image           *glance.Image
	flavor          *flavors.Flavor
}

// bootable gives project p (created withRole) an active image and a flavor in
// eqiad1, both deleted at the end of the test.
func (r *modesRig) bootable(t *testing.T, p *projects.Project) bootKit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pp := vmProvider(t, r.cfg, p.Name)
	k := bootKit{compute: r.compute(t, pp, modesFrom), images: r.images(t, pp, modesFrom)}
	im, err := glance.Create(ctx, k.images, glance.CreateOpts{Name: "leftover-image", ContainerFormat: "bare", DiskFormat: "raw"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = glance.Delete(context.Background(), k.images, im.ID).ExtractErr() })
	if err := imagedata.Upload(ctx, k.images, im.ID, bytes.NewReader(make([]byte, 4096))).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	stacktest.WaitFor(t, time.Minute, "the image to become active", func() error {
		g, err := glance.Get(ctx, k.images, im.ID).Extract()
		if err == nil && g.Status != glance.ImageStatusActive {
			err = errors.New(string(g.Status))
		}
		return err
	})
	k.image = im
	disk := 1
	if k.flavor, err = flavors.Create(ctx, r.from, flavors.CreateOpts{Name: "modes-" + p.Name, RAM: 64, VCPUs: 1, Disk: &disk}).Extract(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = flavors.Delete(context.Background(), r.from, k.flavor.ID).ExtractErr() })
	return k
}

// TestOrganicModeZeroesTheLegacyQuota runs the projects driver in organic mode:
// the project's compute quota in eqiad1 goes to zero (read back with gophercloud),
// eqiad2's is untouched, the old quota is kept on the Keystone project, a second
// run keeps it, and ThawLegacyQuota restores it.
func TestOrganicModeZeroesTheLegacyQuota(t *testing.T) {
	rig := newModesRig(t)
	tc, _, wout := modesWorker(t)
	p := rig.project(t, "organic", true)
	k := rig.bootable(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	seven, nine, ram := 7, 9, 4096
	if _, err := quotasets.Update(ctx, rig.from, p.ID, quotasets.UpdateOpts{Instances: &seven, Cores: &nine, RAM: &ram}).Extract(); err != nil {
		t.Fatalf("setting the starting quota: %v", err)
	}
	toBefore := rig.quota(t, rig.to, p.ID)

	drive := func(id string) migrations.ProjectsStatus {
		t.Helper()
		run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueueMigrate}, migrations.ProjectsMigration,
			migrations.ProjectsMigrationInput{From: modesFrom, To: modesTo, Projects: []migrations.ProjectSpec{{Name: p.Name, Mode: migrations.ModeOrganic}}})
		if err != nil {
			t.Fatal(err)
		}
		var st migrations.ProjectsStatus
		if err := run.Get(ctx, &st); err != nil {
			t.Fatalf("projects driver: %v\nworker:\n%s", err, wout.String())
		}
		return st
	}
	dry, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "organic-dry-" + p.Name, TaskQueue: workflows.TaskQueueMigrate}, migrations.ProjectsMigration,
		migrations.ProjectsMigrationInput{From: modesFrom, To: modesTo, DryRun: true, Projects: []migrations.ProjectSpec{{Name: p.Name, Mode: migrations.ModeOrganic}}})
	if err != nil {
		t.Fatal(err)
	}
	var dst migrations.ProjectsStatus
	if err := dry.Get(ctx, &dst); err != nil {
		t.Fatal(err)
	}
	if pr := dst.Projects[0]; pr.State != migrations.ProjectPlanned || !strings.Contains(pr.Detail, "would set the compute quota of "+p.Name+" in eqiad1 to 0 (now instances=7 cores=9 ram=4096MB)") {
		t.Errorf("dry run: %+v, want planned, saying what it would set", pr)
	}
	if q := rig.quota(t, rig.from, p.ID); q != (contract.ComputeQuota{Instances: 7, Cores: 9, RAM: 4096}) {
		t.Errorf("the dry run changed the quota to %+v", q)
	}

	st := drive("organic-" + p.Name)
	if pr := st.Projects[0]; pr.State != migrations.ProjectDone || !strings.Contains(pr.Detail, "set the compute quota of "+p.Name+" in eqiad1 to 0 (was instances=7 cores=9 ram=4096MB") {
		t.Errorf("project %+v, want done, its quota set to 0", pr)
	}
	if q := rig.quota(t, rig.from, p.ID); !q.IsZero() {
		t.Errorf("eqiad1 quota %+v, want zero", q)
	}
	if q := rig.quota(t, rig.to, p.ID); q != toBefore || q.IsZero() {
		t.Errorf("eqiad2 quota %+v, want it untouched (%+v)", q, toBefore)
	}
	// New workloads can no longer start in eqiad1.
	if s, err := servers.Create(ctx, k.compute, servers.CreateOpts{Name: "new-workload", ImageRef: k.image.ID, FlavorRef: k.flavor.ID, Networks: "none"}, nil).Extract(); err == nil {
		_ = servers.Delete(context.Background(), k.compute, s.ID).ExtractErr()
		t.Errorf("created server %s in %s with a zero quota, want a quota refusal", s.ID, modesFrom)
	} else if !gophercloud.ResponseCodeIs(err, 403) || !strings.Contains(strings.ToLower(err.Error()), "quota") {
		t.Errorf("creating a server in %s with a zero quota: %v, want 403 quota exceeded", modesFrom, err)
	}
	got, err := projects.Get(ctx, rig.identity, p.ID).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if saved := got.Extra[contract.QuotaMarker(modesFrom)]; saved != `{"instances":7,"cores":9,"ram":4096}` {
		t.Errorf("project property %s = %v, want the old quota", contract.QuotaMarker(modesFrom), saved)
	}

	st = drive("organic-again-" + p.Name)
	if pr := st.Projects[0]; !strings.Contains(pr.Detail, "is already 0; the saved quota (instances=7 cores=9 ram=4096MB) is kept") {
		t.Errorf("second run: %+v, want the saved quota kept", pr)
	}

	a, err := openstack.New(stacktest.OpenStack(t))
	if err != nil {
		t.Fatal(err)
	}
	out, err := a.ThawLegacyQuota(ctx, contract.QuotaInput{Deployment: modesFrom, Project: p.Name})
	if err != nil {
		t.Fatal(err)
	}
	if q := rig.quota(t, rig.from, p.ID); q != (contract.ComputeQuota{Instances: 7, Cores: 9, RAM: 4096}) || !out.Changed {
		t.Errorf("after thawing, eqiad1 quota %+v (%s), want the saved one back", q, out.Detail)
	}
	got, _ = projects.Get(ctx, rig.identity, p.ID).Extract()
	if v, ok := got.Extra[contract.QuotaMarker(modesFrom)]; ok && v != nil {
		t.Errorf("the saved quota is still on the project after thawing: %v", v)
	}
}

// TestManualModeWaitsForTaskDone runs a migration stage whose task is the
// projects driver, with one organic and one manual project: the plan query shows
// both; the manual project's owners are notified and the stage waits until the
// project is marked done with task-done, then until the stage is approved.
func TestManualModeWaitsForTaskDone(t *testing.T) {
	rig := newModesRig(t)
	tc, state, wout := modesWorker(t)
	organic, manual := rig.project(t, "organic", false), rig.project(t, "manual", false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	input, _ := json.Marshal(migrations.ProjectsMigrationInput{
		Projects: []migrations.ProjectSpec{
			{Name: organic.Name, Mode: migrations.ModeOrganic},
			{Name: manual.Name, Mode: migrations.ModeManual, Owners: []string{"owner@example.org"}},
		},
		ReminderEvery: time.Hour, ProgressEvery: time.Second,
	})
	plan := migrations.MigrationPlan{From: modesFrom, To: modesTo, Stages: []migrations.StagePlan{{
		Name: "migration", Months: 12, EntryChecks: []string{"api endpoints up", "capacity available"},
		Tasks: []migrations.TaskPlan{{Name: "projects migrated", Automated: true, Workflow: migrations.WorkflowProjectsMigration, Input: input}},
	}}}
	id := migrations.MigrationID(modesFrom, modesTo)
	_ = tc.TerminateWorkflow(ctx, id, "", "a new test run")
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueueMigrate}, migrations.CloudMigration, plan)
	if err != nil {
		t.Fatal(err)
	}
	stageID := migrations.MigrationStageID(modesFrom, modesTo, 0, "migration")
	driverID := migrations.MigrationTaskID(stageID, "projects migrated")

	st := queryUntil(t, tc, id, migrations.QueryPlan, 3*time.Minute, "the plan showing the organic project done and the manual one waiting",
		func(st migrations.MigrationStatus) bool {
			ps := st.Stages[0].Tasks[0].Projects
			return len(ps) == 2 && ps[0].State == migrations.ProjectDone && ps[1].State == migrations.ProjectWaiting
		})
	task := st.Stages[0].Tasks[0]
	if task.State != migrations.TaskRunning || task.Workflow != driverID || !strings.Contains(task.Detail, "1 done, 1 waiting") {
		t.Errorf("plan task %+v, want running as %s with 1 done, 1 waiting", task, driverID)
	}
	if q := rig.quota(t, rig.from, organic.ID); !q.IsZero() {
		t.Errorf("the organic project's eqiad1 quota is %+v, want zero", q)
	}
	if q := rig.quota(t, rig.from, manual.ID); q.IsZero() {
		t.Errorf("the manual project's eqiad1 quota is zero: manual mode must not change it")
	}
	var told *openstack.Notification
	for _, n := range notificationsOf(t, state) {
		if n.Kind == contract.NotifyProjectAssigned && n.Project == manual.Name {
			told = &n
		}
	}
	if told == nil || !slices.Equal(told.Recipients, []string{"owner@example.org"}) || !strings.Contains(told.Message, "mark it done") {
		t.Errorf("notification to the manual project's owners: %+v", told)
	}
	// Nothing but task-done ends the wait: the driver and the migration still run.
	for _, wid := range []string{driverID, id} {
		d, err := tc.DescribeWorkflowExecution(ctx, wid, "")
		if err != nil {
			t.Fatal(err)
		}
		if s := d.GetWorkflowExecutionInfo().GetStatus(); s != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			t.Fatalf("%s is %s before task-done, want running", wid, s)
		}
	}

	update := func(wid, name string, arg any) error {
		h, err := tc.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: wid, UpdateName: name, Args: []any{arg}, WaitForStage: client.WorkflowUpdateStageCompleted})
		if err != nil {
			return err
		}
		return h.Get(ctx, nil)
	}
	if err := update(driverID, migrations.UpdateTaskDone, migrations.TaskCompletion{Task: organic.Name, By: "andrew"}); err == nil ||
		!strings.Contains(err.Error(), "is already done (by conveyor") {
		t.Errorf("task-done for the organic project: %v, want a refusal", err)
	}
	if err := update(driverID, migrations.UpdateTaskDone, migrations.TaskCompletion{Task: manual.Name, By: "andrew", Note: "moved by hand"}); err != nil {
		t.Fatalf("task-done: %v\nworker:\n%s", err, wout.String())
	}
	ss := queryUntil(t, tc, stageID, migrations.QueryStage, 2*time.Minute, "the stage awaiting approval",
		func(s migrations.StageStatus) bool { return s.State == migrations.StageAwaitingApproval })
	if len(ss.Checks) != 2 || !ss.Checks[0].OK || !ss.Checks[1].OK || !strings.Contains(ss.Checks[1].Detail, "vCPUs and") {
		t.Errorf("entry checks %+v, want both passed on the rig", ss.Checks)
	}
	if err := update(stageID, migrations.UpdateApproveStage, migrations.StageApproval{Stage: "migration", By: "bd808"}); err != nil {
		t.Fatal(err)
	}
	var final migrations.MigrationStatus
	if err := run.Get(ctx, &final); err != nil {
		t.Fatalf("migration: %v\nworker:\n%s", err, wout.String())
	}
	stacktest.RecordHistory(t, tc, driverID, "", "projects-organic-manual.json")
	stacktest.RecordHistory(t, tc, stageID, "", "stage-projects-task.json")
	task = final.Stages[0].Tasks[0]
	if task.State != migrations.TaskDone || len(task.Projects) != 2 || task.Projects[1].By != "andrew" || task.Projects[1].Note != "moved by hand" {
		t.Errorf("final task %+v, want done with the manual project done by andrew", task)
	}
	if !strings.Contains(final.Stages[0].Tasks[0].Detail, "2 done") {
		t.Errorf("final detail %q", final.Stages[0].Tasks[0].Detail)
	}
}

// TestBatteryOnTheRig runs the test battery twice against both regions: it
// passes, the image copy's checksums are equal, the runs are recorded in the
// report file, and the second run is compared with the first.
func TestBatteryOnTheRig(t *testing.T) {
	rig := newModesRig(t)
	tc, state, wout := modesWorker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	u, err := url.Parse(rig.cfg.AuthURL)
	if err != nil {
		t.Fatal(err)
	}
	in := migrations.BatteryInput{From: modesFrom, To: modesTo, DNSNames: []string{"localhost"}, Bastion: u.Host}
	var reports []migrations.BatteryReport
	for i := range 2 {
		run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "battery-" + randomHex(t)[:8], TaskQueue: workflows.TaskQueueMigrate}, migrations.TestBattery, in)
		if err != nil {
			t.Fatal(err)
		}
		var rep migrations.BatteryReport
		if err := run.Get(ctx, &rep); err != nil {
			t.Fatalf("battery run %d: %v\nworker:\n%s", i+1, err, wout.String())
		}
		reports = append(reports, rep)
		t.Logf("run %d: %s", i+1, rep.Summary)
		for _, r := range rep.Run.Results {
			t.Logf("  %s ok=%v skipped=%v %.1fs: %s", r.Test, r.OK, r.Skipped, r.Seconds, r.Detail)
		}
		if i == 1 {
			stacktest.RecordHistory(t, tc, run.GetID(), run.GetRunID(), "battery-second-run.json")
		}
	}
	first, second := reports[0], reports[1]
	for _, r := range first.Run.Results {
		if !r.OK {
			t.Errorf("test %s: %s", r.Test, r.Detail)
		}
		if r.Test == contract.BatteryImageCopy && (r.SourceChecksum == "" || r.SourceChecksum != r.CopyChecksum) {
			t.Errorf("image copy checksums %q and %q, want equal", r.SourceChecksum, r.CopyChecksum)
		}
	}
	if len(first.Run.Results) != len(contract.BatteryTests) {
		t.Errorf("%d results, want one per test", len(first.Run.Results))
	}
	runs, err := openstack.ReadBatteryRuns(filepath.Join(state, openstack.BatteryReportFile(modesFrom, modesTo)))
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].ID != first.Run.ID || first.File == "" {
		t.Errorf("report file has %d runs, want both, the first first", len(runs))
	}
	if len(second.Previous) != 1 || second.Previous[0].ID != first.Run.ID || len(second.Changes) != 0 || !strings.Contains(second.Summary, "same outcome as the last") {
		t.Errorf("second run compares %+v, changes %q, summary %q; want the first run, unchanged", second.Previous, second.Changes, second.Summary)
	}
	// The battery removes what it created.
	pages, err := glance.List(rig.fromImages, glance.ListOpts{}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := glance.ExtractImages(pages)
	for _, im := range all {
		if strings.HasPrefix(im.Name, "conveyor-battery-") {
			t.Errorf("image %s (%s) left in %s", im.Name, im.ID, modesFrom)
		}
	}

	// A third run whose bastion refuses connections (a loopback port nobody
	// listens on) fails, with the report in its error for the stage's task.
	in.Tests, in.Bastion = []string{contract.BatteryBastion}, fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "battery-" + randomHex(t)[:8], TaskQueue: workflows.TaskQueueMigrate}, migrations.TestBattery, in)
	if err != nil {
		t.Fatal(err)
	}
	err = run.Get(ctx, nil)
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != contract.ErrBatteryFailed {
		t.Fatalf("the battery with a closed bastion: %v, want %s", err, contract.ErrBatteryFailed)
	}
	stacktest.RecordHistory(t, tc, run.GetID(), run.GetRunID(), "battery-failed.json")
	var failed migrations.BatteryReport
	if err := app.Details(&failed); err != nil {
		t.Fatalf("the failure's report: %v", err)
	}
	if failed.Passed || len(failed.Run.Results) != 1 || failed.Run.Results[0].OK || !strings.Contains(failed.Run.Results[0].Detail, "connecting to bastion "+in.Bastion) {
		t.Errorf("failed run's report %+v, want the bastion test failed on %s", failed.Run, in.Bastion)
	}
}

// TestCleanupOnTheRig lists a project's leftovers in eqiad1 (a server and an
// image), deletes nothing before the approval, then deletes them.
func TestCleanupOnTheRig(t *testing.T) {
	rig := newModesRig(t)
	tc, state, wout := modesWorker(t)
	p := rig.project(t, "cleanup", true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	k := rig.bootable(t, p)
	compute, imgs, im := k.compute, k.images, k.image
	fl := k.flavor
	srv, err := servers.Create(ctx, compute, servers.CreateOpts{Name: "leftover-vm", ImageRef: im.ID, FlavorRef: fl.ID, Networks: "none"}, nil).Extract()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = servers.Delete(context.Background(), compute, srv.ID).ExtractErr() })
	stacktest.WaitFor(t, 2*time.Minute, "the leftover server to become ACTIVE", func() error {
		s, err := servers.Get(ctx, compute, srv.ID).Extract()
		if err == nil && s.Status != "ACTIVE" {
			if s.Status == "ERROR" {
				t.Fatalf("server went to ERROR: %s", s.Fault.Message)
			}
			err = errors.New(s.Status)
		}
		return err
	})

	// With a server left in eqiad1, the cleanup stage's entry check fails and
	// draining the old hosts refuses (and so disables nothing).
	a, err := openstack.New(stacktest.OpenStack(t))
	if err != nil {
		t.Fatal(err)
	}
	chk, err := a.MigrationCheck(ctx, contract.MigrationCheckInput{From: modesFrom, To: modesTo, Stage: "cleanup", Checks: []string{openstack.CheckOldDeploymentEmpty}})
	if err != nil {
		t.Fatal(err)
	}
	if r := chk.Results[0]; r.OK || !strings.Contains(r.Detail, "leftover-vm ("+srv.ID+")") {
		t.Errorf("old deployment empty: %+v, want failed naming leftover-vm", r)
	}
	_, err = a.MigrationTask(ctx, contract.MigrationTaskInput{From: modesFrom, To: modesTo, Stage: "cleanup", Task: openstack.TaskOldHostsDrained})
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != contract.ErrMigrationTaskFailed || !strings.Contains(err.Error(), "leftover-vm ("+srv.ID+")") {
		t.Errorf("old hosts drained: %v, want %s naming leftover-vm", err, contract.ErrMigrationTaskFailed)
	}

	id := "cleanup-" + p.Name
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueueMigrate}, migrations.Cleanup,
		// leftover-vm was never migrated: only being named lets the cleanup delete it.
		migrations.CleanupInput{From: modesFrom, To: modesTo, Projects: []string{p.Name}, Servers: []string{"leftover-vm"}})
	if err != nil {
		t.Fatal(err)
	}
	rep := queryUntil(t, tc, id, migrations.QueryCleanup, 2*time.Minute, "the cleanup awaiting approval",
		func(r migrations.CleanupReport) bool { return r.State == migrations.CleanupAwaiting })
	if len(rep.Listed) != 2 || rep.Listed[0].ID != srv.ID || rep.Listed[1].ID != im.ID {
		t.Fatalf("listed %+v, want the server then the image", rep.Listed)
	}
	if _, err := servers.Get(ctx, compute, srv.ID).Extract(); err != nil {
		t.Fatalf("the server is gone before the approval: %v", err)
	}
	found := false
	for _, n := range notificationsOf(t, state) {
		found = found || (n.Kind == contract.NotifyCleanup && slices.ContainsFunc(n.Open, func(o string) bool {
			return strings.HasPrefix(o, rep.Listed[0].String()+" (NOT migrated: ")
		}))
	}
	if !found {
		t.Errorf("no cleanup notification lists %s", rep.Listed[0])
	}
	final := approveCleanup(ctx, t, tc, run, wout)
	stacktest.RecordHistory(t, tc, id, "", "cleanup-approved.json")
	t.Log(final.Summary)
	if len(final.Deleted) != 2 || len(final.Remaining) != 0 || final.ApprovedBy != "bd808" {
		t.Errorf("final report %+v, want both deleted, nothing remaining", final)
	}
	if _, err := servers.Get(ctx, compute, srv.ID).Extract(); !gophercloud.ResponseCodeIs(err, 404) {
		t.Errorf("the server is still there after the cleanup: %v", err)
	}
	if _, err := glance.Get(ctx, imgs, im.ID).Extract(); !gophercloud.ResponseCodeIs(err, 404) {
		t.Errorf("the image is still there after the cleanup: %v", err)
	}
}

// TestAutomaticModeRunsProjectMigration runs the projects driver in automatic
// mode for a project with one server: its ProjectMigration child moves the server
// to eqiad2 and deletes the source after the grace period.
func TestAutomaticModeRunsProjectMigration(t *testing.T) {
	rig := newModesRig(t)
	tc, _, wout := modesWorker(t)
	p := rig.project(t, "automatic", true)
	k := rig.bootable(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	pp := vmProvider(t, rig.cfg, p.Name)
	toCompute, toImages := rig.compute(t, pp, modesTo), rig.images(t, pp, modesTo)
	t.Cleanup(func() {
		ctx := context.Background()
		for _, c := range []*gophercloud.ServiceClient{k.compute, toCompute} {
			if pages, err := servers.List(c, nil).AllPages(ctx); err == nil {
				all, _ := servers.ExtractServers(pages)
				for _, s := range all {
					_ = servers.Delete(ctx, c, s.ID).ExtractErr()
				}
			}
		}
		for _, c := range []*gophercloud.ServiceClient{k.images, toImages} {
			if pages, err := glance.List(c, glance.ListOpts{Owner: p.ID}).AllPages(ctx); err == nil {
				all, _ := glance.ExtractImages(pages)
				for _, im := range all {
					_ = glance.Delete(ctx, c, im.ID).ExtractErr()
				}
			}
		}
		if pages, err := flavors.ListDetail(rig.to, flavors.ListOpts{AccessType: flavors.AllAccess}).AllPages(ctx); err == nil {
			all, _ := flavors.ExtractFlavors(pages)
			for _, f := range all {
				if f.Name == k.flavor.Name {
					_ = flavors.Delete(ctx, rig.to, f.ID).ExtractErr()
				}
			}
		}
	})
	srv, err := servers.Create(ctx, k.compute, servers.CreateOpts{Name: "auto-vm", ImageRef: k.image.ID, FlavorRef: k.flavor.ID, Networks: "none"}, nil).Extract()
	if err != nil {
		t.Fatal(err)
	}
	stacktest.WaitFor(t, 2*time.Minute, "the server to become ACTIVE", func() error {
		s, err := servers.Get(ctx, k.compute, srv.ID).Extract()
		if err == nil && s.Status != "ACTIVE" {
			if s.Status == "ERROR" {
				t.Fatalf("server went to ERROR: %s", s.Fault.Message)
			}
			err = errors.New(s.Status)
		}
		return err
	})

	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "automatic-" + p.Name, TaskQueue: workflows.TaskQueueMigrate}, migrations.ProjectsMigration,
		migrations.ProjectsMigrationInput{From: modesFrom, To: modesTo, GracePeriod: 3 * time.Second,
			Projects: []migrations.ProjectSpec{{Name: p.Name, Mode: migrations.ModeAutomatic}}})
	if err != nil {
		t.Fatal(err)
	}
	// A failed VM waits in ProjectMigration for a retry: fail the test then
	// rather than wait for it.
	child := migrations.ProjectMigrationID(modesFrom, modesTo, p.Name)
	stacktest.WaitFor(t, 5*time.Minute, "the projects driver to finish", func() error {
		d, err := tc.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
		if err != nil {
			return err
		}
		if d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return nil
		}
		if v, err := tc.QueryWorkflow(ctx, child, "", migrations.QueryProgress); err == nil {
			var ps migrations.ProjectStatus
			if v.Get(&ps) == nil && ps.Count(migrations.VMFailed) > 0 {
				t.Fatalf("the automatic migration failed: %+v\nworker:\n%s", ps.VMs, wout.String())
			}
		}
		return errors.New("running")
	})
	var st migrations.ProjectsStatus
	if err := run.Get(ctx, &st); err != nil {
		t.Fatalf("projects driver: %v\nworker:\n%s", err, wout.String())
	}
	stacktest.RecordHistory(t, tc, run.GetID(), run.GetRunID(), "projects-automatic.json")
	pr := st.Projects[0]
	if pr.State != migrations.ProjectDone || pr.Workflow != migrations.ProjectMigrationID(modesFrom, modesTo, p.Name) ||
		!strings.Contains(pr.Detail, "1 of 1 server(s) migrated automatically") {
		t.Errorf("project %+v, want done by its ProjectMigration", pr)
	}
	pages, err := servers.List(toCompute, servers.ListOpts{Name: "^auto-vm$"}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	moved, _ := servers.ExtractServers(pages)
	if len(moved) != 1 || moved[0].Status != "ACTIVE" {
		t.Errorf("servers named auto-vm in %s: %+v, want one ACTIVE", modesTo, moved)
	}
	if _, err := servers.Get(ctx, k.compute, srv.ID).Extract(); !gophercloud.ResponseCodeIs(err, 404) {
		t.Errorf("the source server is still in %s after the grace period: %v", modesFrom, err)
	}
}

// approveCleanup approves the stage-5 cleanup run waits on, as bd808, and
// returns its final report.
func approveCleanup(ctx context.Context, t *testing.T, tc client.Client, run client.WorkflowRun, wout fmt.Stringer) migrations.CleanupReport {
	t.Helper()
	h, err := tc.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: run.GetID(), UpdateName: migrations.UpdateApproveCleanup,
		Args: []any{migrations.CleanupApproval{By: "bd808", Reason: "stage 5"}}, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err == nil {
		err = h.Get(ctx, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	var final migrations.CleanupReport
	if err := run.Get(ctx, &final); err != nil {
		t.Fatalf("cleanup: %v\nworker:\n%s", err, wout.String())
	}
	return final
}
