package integration

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	gos "github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/keypairs"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/services"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/projects"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/roles"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/users"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/imagedata"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"golang.org/x/crypto/ssh"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/openstack"
	"github.com/wikimedia/conveyor/internal/config"
	"github.com/wikimedia/conveyor/internal/stacktest"
	"github.com/wikimedia/conveyor/internal/temporalclient"
	"github.com/wikimedia/conveyor/workflows"
)

// The VM migration's tests move servers from the rig's eqiad1 to eqiad2. Each test
// makes a project of its own with servers, a flavor, a keypair and a security
// group in eqiad1, and serves the migrate pool with a real conveyor-worker in a
// Temporal namespace of its own, so no other worker takes its tasks.
const (
	vmFrom = "eqiad1"
	vmTo   = "eqiad2"
	vmNS   = "conveyor-test-vm-migration"
)

// vmRig is the two-region rig as the tests see it: admin clients of both regions.
type vmRig struct {
	cfg      config.OpenStack
	admin    *gophercloud.ProviderClient
	identity *gophercloud.ServiceClient
}

// openStackRig returns the rig, bringing it up if needed (stacktest.OpenStack fails
// the test naming `conveyor dev up --with openstack` when it cannot).
func openStackRig(t *testing.T) *vmRig {
	t.Helper()
	c := stacktest.OpenStack(t).OpenStack
	for _, d := range []string{vmFrom, vmTo} {
		if _, ok := c.Deployments[d]; !ok {
			t.Fatalf("openstack.deployments has no %s: the rig of `conveyor dev up --with openstack` has eqiad1 and eqiad2", d)
		}
	}
	p := vmProvider(t, c, c.ProjectName)
	id, err := gos.NewIdentityV3(p, gophercloud.EndpointOpts{Availability: gophercloud.AvailabilityPublic})
	if err != nil {
		t.Fatal(err)
	}
	return &vmRig{cfg: c, admin: p, identity: id}
}

func vmProvider(t *testing.T, c config.OpenStack, project string) *gophercloud.ProviderClient {
	t.Helper()
	pw := c.Password
	if pw == "" && c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			t.Fatal(err)
		}
		pw = strings.TrimSpace(string(b))
	}
	domain := c.Domain
	if domain == "" {
		domain = "Default"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := gos.AuthenticatedClient(ctx, gophercloud.AuthOptions{IdentityEndpoint: c.AuthURL, Username: c.Username, Password: pw,
		DomainName: domain, AllowReauth: true, Scope: &gophercloud.AuthScope{ProjectName: project, DomainName: domain}})
	if err != nil {
		t.Fatalf("authenticating to the rig's Keystone %s (conveyor dev up --with openstack): %v", c.AuthURL, err)
	}
	return p
}

// vmRegion is one region's clients scoped to the test's project.
type vmRegion struct {
	name                    string
	compute, image, network *gophercloud.ServiceClient
}

func (r *vmRig) region(t *testing.T, p *gophercloud.ProviderClient, deployment string) vmRegion {
	t.Helper()
	region := r.cfg.Deployments[deployment].Region
	eo := gophercloud.EndpointOpts{Region: region, Availability: gophercloud.AvailabilityPublic}
	out := vmRegion{name: region}
	var err error
	if out.compute, err = gos.NewComputeV2(p, eo); err != nil {
		t.Fatal(err)
	}
	out.compute.Microversion = "2.79"
	if out.image, err = gos.NewImageV2(p, eo); err != nil {
		t.Fatal(err)
	}
	if out.network, err = gos.NewNetworkV2(p, eo); err != nil {
		t.Fatal(err)
	}
	return out
}

// vmProject is a project made for one test, with servers in the source region.
type vmProject struct {
	name, id string
	flavor   string
	keypair  string
	group    string
	src, dst vmRegion
	// servers are the source servers by name.
	servers map[string]servers.Server
}

// newVMProject makes a project with n servers in eqiad1 (each with metadata, the
// project's keypair and a flavor of its own that eqiad2 lacks) and a security
// group, and removes all of it, in both regions, when the test ends.
func newVMProject(t *testing.T, r *vmRig, n int) *vmProject {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	tag := randomHex(t)[:8]
	pr := &vmProject{name: "vmmig-" + tag, flavor: "vmmig-" + tag, keypair: "vmmig-" + tag, group: "vmmig-web-" + tag, servers: map[string]servers.Server{}}
	proj, err := projects.Create(ctx, r.identity, projects.CreateOpts{Name: pr.name, DomainID: "default", Description: "conveyor VM migration test"}).Extract()
	if err != nil {
		t.Fatalf("creating project %s: %v", pr.name, err)
	}
	pr.id = proj.ID
	t.Cleanup(func() { _ = projects.Delete(context.Background(), r.identity, proj.ID).ExtractErr() })
	rp, err := roles.List(r.identity, roles.ListOpts{Name: "admin"}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := roles.ExtractRoles(rp)
	up, err := users.List(r.identity, users.ListOpts{Name: r.cfg.Username}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	us, _ := users.ExtractUsers(up)
	if len(rs) == 0 || len(us) == 0 {
		t.Fatalf("the rig has no admin role or no user %s", r.cfg.Username)
	}
	if err := roles.Assign(ctx, r.identity, rs[0].ID, roles.AssignOpts{UserID: us[0].ID, ProjectID: proj.ID}).ExtractErr(); err != nil {
		t.Fatalf("giving %s the admin role on %s: %v", r.cfg.Username, pr.name, err)
	}
	p := vmProvider(t, r.cfg, pr.name)
	pr.src, pr.dst = r.region(t, p, vmFrom), r.region(t, p, vmTo)
	t.Cleanup(func() { pr.cleanup(t) })

	disk := 1
	fl, err := flavors.Create(ctx, pr.src.compute, flavors.CreateOpts{Name: pr.flavor, RAM: 64, VCPUs: 1, Disk: &disk}).Extract()
	if err != nil {
		t.Fatalf("creating flavor %s in %s: %v", pr.flavor, vmFrom, err)
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keypairs.Create(ctx, pr.src.compute, keypairs.CreateOpts{Name: pr.keypair, PublicKey: string(ssh.MarshalAuthorizedKey(sshPub))}).Extract(); err != nil {
		t.Fatalf("creating keypair in %s: %v", vmFrom, err)
	}
	g, err := groups.Create(ctx, pr.src.network, groups.CreateOpts{Name: pr.group, ProjectID: proj.ID, Description: "ssh"}).Extract()
	if err != nil {
		t.Fatalf("creating security group: %v", err)
	}
	if _, err := rules.Create(ctx, pr.src.network, rules.CreateOpts{Direction: rules.DirIngress, EtherType: rules.EtherType4, SecGroupID: g.ID,
		Protocol: rules.ProtocolTCP, PortRangeMin: 22, PortRangeMax: 22, RemoteIPPrefix: "0.0.0.0/0"}).Extract(); err != nil {
		t.Fatalf("creating security group rule: %v", err)
	}
	im, err := images.Create(ctx, pr.src.image, images.CreateOpts{Name: "vmmig-base-" + tag, ContainerFormat: "bare", DiskFormat: "raw"}).Extract()
	if err != nil {
		t.Fatalf("creating the base image: %v", err)
	}
	base := make([]byte, 4096)
	_, _ = rand.Read(base)
	if err := imagedata.Upload(ctx, pr.src.image, im.ID, bytes.NewReader(base)).ExtractErr(); err != nil {
		t.Fatalf("uploading the base image: %v", err)
	}
	for i := range n {
		name := fmt.Sprintf("vm%d-%s", i+1, tag)
		s, err := servers.Create(ctx, pr.src.compute, keypairs.CreateOptsExt{KeyName: pr.keypair, CreateOptsBuilder: servers.CreateOpts{
			Name: name, ImageRef: im.ID, FlavorRef: fl.ID, Networks: "none",
			Metadata: map[string]string{"role": "web", "index": fmt.Sprint(i + 1)},
		}}, nil).Extract()
		if err != nil {
			t.Fatalf("creating server %s in %s: %v", name, vmFrom, err)
		}
		pr.servers[name] = *s
	}
	for name, s := range pr.servers {
		pr.servers[name] = vmWaitStatus(t, pr.src, s.ID, "ACTIVE")
	}
	return pr
}

// cleanup deletes what the test and the migration made, in both regions.
func (pr *vmProject) cleanup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, r := range []vmRegion{pr.src, pr.dst} {
		if pages, err := servers.List(r.compute, nil).AllPages(ctx); err == nil {
			all, _ := servers.ExtractServers(pages)
			for _, s := range all {
				_ = servers.Delete(ctx, r.compute, s.ID).ExtractErr()
			}
		}
		if pages, err := images.List(r.image, images.ListOpts{Owner: pr.id}).AllPages(ctx); err == nil {
			all, _ := images.ExtractImages(pages)
			for _, im := range all {
				_ = images.Delete(ctx, r.image, im.ID).ExtractErr()
			}
		}
		_ = keypairs.Delete(ctx, r.compute, pr.keypair, nil).ExtractErr()
		if pages, err := flavors.ListDetail(r.compute, flavors.ListOpts{AccessType: flavors.AllAccess}).AllPages(ctx); err == nil {
			all, _ := flavors.ExtractFlavors(pages)
			for _, f := range all {
				if f.Name == pr.flavor {
					_ = flavors.Delete(ctx, r.compute, f.ID).ExtractErr()
				}
			}
		}
	}
	if pages, err := groups.List(pr.src.network, groups.ListOpts{ProjectID: pr.id}).AllPages(ctx); err == nil {
		all, _ := groups.ExtractGroups(pages)
		for _, g := range all {
			_ = groups.Delete(ctx, pr.src.network, g.ID).ExtractErr()
		}
	}
}

// vmWaitStatus waits until a server has status, failing at once on ERROR.
func vmWaitStatus(t *testing.T, r vmRegion, id, status string) servers.Server {
	t.Helper()
	var s *servers.Server
	waitFor(t, 5*time.Minute, "server "+id+" in "+r.name+" to be "+status, func() error {
		var err error
		s, err = servers.Get(context.Background(), r.compute, id).Extract()
		if err != nil {
			return err
		}
		if s.Status == "ERROR" && status != "ERROR" {
			t.Fatalf("server %s in %s went to ERROR: %s", id, r.name, s.Fault.Message)
		}
		if s.Status != status {
			return fmt.Errorf("status %s", s.Status)
		}
		return nil
	})
	return *s
}

// startMigrateWorker runs a real conveyor-worker for the migrate pool in the
// tests' namespace, with env added to its environment.
func startMigrateWorker(t *testing.T, env ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	out := &syncBuffer{}
	cmd := exec.Command(filepath.Join(binDir, "conveyor-worker"), "--config", stackConfigPath(), "--namespace", vmNS, "--pools", "migrate")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_, _ = cmd.Process.Wait()
		}
	})
	return cmd, out
}

func vmTemporal(t *testing.T) client.Client {
	t.Helper()
	c := stacktest.Namespace(t, vmNS)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tc, err := temporalclient.Dial(ctx, c.Temporal, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatalf("Temporal (make up): %v", err)
	}
	t.Cleanup(tc.Close)
	return tc
}

// startProjectMigration starts the migration of pr with a grace period of
// seconds.
func startProjectMigration(t *testing.T, c client.Client, pr *vmProject, parallel int) client.WorkflowRun {
	t.Helper()
	in := workflows.ProjectMigrationInput{Project: pr.name, From: vmFrom, To: vmTo, MaxParallel: parallel, GracePeriod: 5 * time.Second}
	run, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: workflows.ProjectMigrationID(vmFrom, vmTo, pr.name), TaskQueue: workflows.TaskQueueMigrate,
	}, workflows.ProjectMigration, in)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func vmProgress(c client.Client, run client.WorkflowRun) (workflows.ProjectStatus, error) {
	var st workflows.ProjectStatus
	v, err := c.QueryWorkflow(context.Background(), run.GetID(), run.GetRunID(), workflows.QueryProgress)
	if err != nil {
		return st, err
	}
	return st, v.Get(&st)
}

// waitProjectMigration waits for the migration's result.
func waitProjectMigration(t *testing.T, run client.WorkflowRun, wout *syncBuffer) workflows.ProjectStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var st workflows.ProjectStatus
	if err := run.Get(ctx, &st); err != nil {
		t.Fatalf("the project migration failed: %v\nworker:\n%s", err, wout.String())
	}
	return st
}

// download returns an image's data.
func download(t *testing.T, r vmRegion, id string) []byte {
	t.Helper()
	body, err := imagedata.Download(context.Background(), r.image, id).Extract()
	if err != nil {
		t.Fatalf("downloading image %s from %s: %v", id, r.name, err)
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// imagesMarked lists a region's images of the project whose property key is value.
func imagesMarked(t *testing.T, r vmRegion, key, value string) []images.Image {
	t.Helper()
	pages, err := images.List(r.image, images.ListOpts{}).AllPages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	all, _ := images.ExtractImages(pages)
	var out []images.Image
	for _, im := range all {
		if fmt.Sprint(im.Properties[key]) == value {
			out = append(out, im)
		}
	}
	return out
}

// checkMigrated checks the end state: each source server is gone, and exactly one
// server of its name runs in the destination, ACTIVE, with its flavor and
// metadata, booted from exactly one copy whose data equals the one snapshot's.
func checkMigrated(t *testing.T, pr *vmProject, st workflows.ProjectStatus) {
	t.Helper()
	ctx := context.Background()
	if st.Count(workflows.VMDone) != len(pr.servers) {
		t.Errorf("VMs %+v, want all %d done", st.VMs, len(pr.servers))
	}
	pages, err := servers.List(pr.dst.compute, nil).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dst, _ := servers.ExtractServers(pages)
	for name, src := range pr.servers {
		if _, err := servers.Get(ctx, pr.src.compute, src.ID).Extract(); !gophercloud.ResponseCodeIs(err, 404) {
			t.Errorf("source server %s still exists in %s (err %v), want it deleted after the grace period", name, vmFrom, err)
		}
		var same []servers.Server
		for _, d := range dst {
			if d.Name == name {
				same = append(same, d)
			}
		}
		if len(same) != 1 {
			t.Errorf("%d servers named %s in %s, want exactly one", len(same), name, vmTo)
			continue
		}
		d := same[0]
		if d.Status != "ACTIVE" || d.Flavor["original_name"] != pr.flavor || d.KeyName != pr.keypair ||
			d.Metadata["role"] != "web" || d.Metadata["index"] != src.Metadata["index"] ||
			d.Metadata[contract.MarkerMigratedFrom] != vmFrom+"/"+src.ID || d.Metadata[contract.MarkerVerified] == "" {
			t.Errorf("destination server %s: status %s flavor %v key %q metadata %v", name, d.Status, d.Flavor["original_name"], d.KeyName, d.Metadata)
		}
		snaps := imagesMarked(t, pr.src, contract.MarkerSourceServer, src.ID)
		if len(snaps) != 1 {
			t.Errorf("%d snapshots of %s in %s, want exactly one", len(snaps), name, vmFrom)
			continue
		}
		copies := imagesMarked(t, pr.dst, contract.MarkerSourceImage, vmFrom+"/"+snaps[0].ID)
		if len(copies) != 1 {
			t.Errorf("%d copies of %s's snapshot in %s, want exactly one", len(copies), name, vmTo)
			continue
		}
		if d.Image["id"] != copies[0].ID {
			t.Errorf("destination server %s booted from %v, not the copy %s", name, d.Image["id"], copies[0].ID)
		}
		a, b := download(t, pr.src, snaps[0].ID), download(t, pr.dst, copies[0].ID)
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("the copy of %s's snapshot differs: %d bytes %q, source %d bytes %q", name, len(b), b, len(a), a)
		}
		if copies[0].Checksum != snaps[0].Checksum || fmt.Sprint(copies[0].Properties["os_hash_value"]) != fmt.Sprint(snaps[0].Properties["os_hash_value"]) {
			t.Errorf("checksums differ: copy %s, snapshot %s", copies[0].Checksum, snaps[0].Checksum)
		}
	}
}

// TestProjectMigrationEndToEnd plans (dry run: nothing changes) and then migrates
// a project of three servers, two at a time, and checks the destination.
func TestProjectMigrationEndToEnd(t *testing.T) {
	r := openStackRig(t)
	c := vmTemporal(t)
	_, wout := startMigrateWorker(t)
	pr := newVMProject(t, r, 3)

	ctx := context.Background()
	plan, err := openstack.PlanProject(ctx, r.cfg, contract.PreflightInput{Project: pr.name, From: vmFrom, To: vmTo})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Servers) != 3 || plan.Servers[0].State != contract.ServerToMigrate || len(plan.Servers[0].Steps) == 0 {
		t.Errorf("plan servers %+v, want 3 to migrate", plan.Servers)
	}
	wantRes := map[string]string{"flavor/" + pr.flavor: contract.ResourceWillCreate, "keypair/" + pr.keypair: contract.ResourceWillCreate}
	for _, res := range plan.Resources {
		if w, ok := wantRes[res.Kind+"/"+res.Name]; ok && res.Action != w {
			t.Errorf("plan resource %+v, want %s", res, w)
		}
		delete(wantRes, res.Kind+"/"+res.Name)
	}
	if len(wantRes) != 0 {
		t.Errorf("the plan %+v lacks %v", plan.Resources, wantRes)
	}
	if !slices.ContainsFunc(plan.Resources, func(res contract.ResourceAction) bool { return res.Kind == "security-group" && res.Name == pr.group }) {
		t.Errorf("the plan %+v does not mention security group %s", plan.Resources, pr.group)
	}
	if _, err := keypairs.Get(ctx, pr.dst.compute, pr.keypair, nil).Extract(); !gophercloud.ResponseCodeIs(err, 404) {
		t.Errorf("after the dry run keypair %s exists in %s (err %v): a dry run must change nothing", pr.keypair, vmTo, err)
	}

	run := startProjectMigration(t, c, pr, 2)
	st := waitProjectMigration(t, run, wout)
	stacktest.RecordHistory(t, c, run.GetID(), run.GetRunID(), "projectmigration-three-servers.json")
	if len(st.VMs) > 0 {
		stacktest.RecordHistory(t, c, st.VMs[0].WorkflowID, "", "vmmigration-success.json")
	}
	checkMigrated(t, pr, st)
	for _, res := range st.Plan.Resources {
		if (res.Kind == "flavor" || res.Kind == "keypair") && res.Action != contract.ResourceCreated {
			t.Errorf("preflight resource %+v, want created", res)
		}
	}
}

// TestProjectMigrationSurvivesWorkerKill kills the worker (SIGKILL) while an image
// copy is in flight and while the destination server is being created, starts a
// new worker, and expects the migration to finish with no second image or server.
func TestProjectMigrationSurvivesWorkerKill(t *testing.T) {
	r := openStackRig(t)
	for _, step := range []string{workflows.VMStepCopy, workflows.VMStepCreate} {
		t.Run(step, func(t *testing.T) {
			c := vmTemporal(t)
			// A slow copy (the rig's snapshots are ~70 bytes) so that the kill lands
			// inside it.
			env := []string{openstack.CopyRateEnv + "=4"}
			worker, wout := startMigrateWorker(t, env...)
			pr := newVMProject(t, r, 1)
			run := startProjectMigration(t, c, pr, 1)
			// The kill lands while the step's activity runs on the worker.
			want := map[string][]string{
				workflows.VMStepCopy:   {contract.MigrateCopyImage},
				workflows.VMStepCreate: {contract.MigrateCreateServer, contract.MigrateWaitActive},
			}[step]
			waitFor(t, 5*time.Minute, "the VM migration running "+strings.Join(want, " or "), func() error {
				st, err := vmProgress(c, run)
				if err != nil {
					return err
				}
				if len(st.VMs) != 1 || st.VMs[0].WorkflowID == "" {
					return fmt.Errorf("VMs %+v", st.VMs)
				}
				d, err := c.DescribeWorkflowExecution(context.Background(), st.VMs[0].WorkflowID, "")
				if err != nil {
					return err
				}
				for _, a := range d.GetPendingActivities() {
					if slices.Contains(want, a.GetActivityType().GetName()) && a.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED {
						return nil
					}
				}
				return fmt.Errorf("pending activities %v", d.GetPendingActivities())
			})
			if err := worker.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_, _ = worker.Process.Wait()
			_, wout2 := startMigrateWorker(t, env...)
			st := waitProjectMigration(t, run, wout2)
			stacktest.RecordHistory(t, c, st.VMs[0].WorkflowID, "", "vmmigration-worker-killed-in-"+step+".json")
			checkMigrated(t, pr, st)
			// The kill must have cut an attempt short: a step ran again on the new
			// worker (the copy itself, or the creation or its wait for ACTIVE).
			again := retriedActivities(t, c, st.VMs[0].WorkflowID)
			t.Logf("started again after the kill: %v", again)
			if !slices.ContainsFunc(want, func(a string) bool { return slices.Contains(again, a) }) {
				t.Errorf("activities started more than once: %v; want one of %v (the kill missed the step)\nfirst worker:\n%s", again, want, wout.String())
			}
		})
	}
}

// retriedActivities lists the activities of a workflow that started more than
// one attempt.
func retriedActivities(t *testing.T, c client.Client, workflowID string) []string {
	t.Helper()
	var out []string
	scheduled := map[int64]string{}
	it := c.GetWorkflowHistory(context.Background(), workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			scheduled[ev.GetEventId()] = a.GetActivityType().GetName()
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && a.GetAttempt() > 1 {
			out = append(out, scheduled[a.GetScheduledEventId()])
		}
	}
	return out
}

// TestProjectMigrationErrorKeepsSource disables eqiad2's nova-compute so the
// destination server goes to ERROR (no valid host): the VM fails with the fault,
// its source is kept; after the service is enabled again, retry completes it.
func TestProjectMigrationErrorKeepsSource(t *testing.T) {
	r := openStackRig(t)
	c := vmTemporal(t)
	_, wout := startMigrateWorker(t)
	pr := newVMProject(t, r, 1)
	ctx := context.Background()

	admin := r.region(t, r.admin, vmTo)
	sp, err := services.List(admin.compute, services.ListOpts{Binary: "nova-compute"}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	svcs, _ := services.ExtractServices(sp)
	if len(svcs) == 0 {
		t.Fatalf("no nova-compute service in %s", vmTo)
	}
	setCompute := func(status services.ServiceStatus) {
		for _, s := range svcs {
			opts := services.UpdateOpts{Status: status}
			if status == services.ServiceDisabled {
				opts.DisabledReason = "conveyor test: make the destination fail"
			}
			if _, err := services.Update(ctx, admin.compute, s.ID, opts).Extract(); err != nil {
				t.Errorf("setting nova-compute %s in %s %s: %v", s.Host, vmTo, status, err)
			}
		}
	}
	setCompute(services.ServiceDisabled)
	enabled := false
	t.Cleanup(func() {
		if !enabled {
			setCompute(services.ServiceEnabled)
		}
	})

	run := startProjectMigration(t, c, pr, 1)
	var failed workflows.VMStatus
	waitFor(t, 5*time.Minute, "the VM migration failing", func() error {
		st, err := vmProgress(c, run)
		if err != nil {
			return err
		}
		if len(st.VMs) != 1 || st.VMs[0].State != workflows.VMFailed {
			return fmt.Errorf("VMs %+v", st.VMs)
		}
		failed = st.VMs[0]
		return nil
	})
	if !strings.Contains(failed.Error, "ERROR") || !strings.Contains(strings.ToLower(failed.Error), "valid host") {
		t.Errorf("the failure %q does not report the server's ERROR and its fault (no valid host)", failed.Error)
	}
	for name, s := range pr.servers {
		got, err := servers.Get(ctx, pr.src.compute, s.ID).Extract()
		if err != nil || got.Status != "SHUTOFF" {
			t.Fatalf("after the failure source %s is %v (err %v), want it kept (SHUTOFF)", name, got, err)
		}
	}

	setCompute(services.ServiceEnabled)
	enabled = true
	uh, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: run.GetID(), RunID: run.GetRunID(),
		UpdateName: workflows.UpdateRetry, Args: []any{workflows.RetryRequest{By: "integration-test"}}, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err != nil {
		t.Fatal(err)
	}
	var queued []string
	if err := uh.Get(ctx, &queued); err != nil || len(queued) != 1 {
		t.Fatalf("retry queued %v (err %v), want the one VM", queued, err)
	}
	st := waitProjectMigration(t, run, wout)
	stacktest.RecordHistory(t, c, run.GetID(), run.GetRunID(), "projectmigration-error-then-retry.json")
	stacktest.RecordHistory(t, c, st.VMs[0].WorkflowID, "", "vmmigration-after-retry.json")
	checkMigrated(t, pr, st)
	if st.VMs[0].Runs != 2 {
		t.Errorf("the VM ran %d times, want 2", st.VMs[0].Runs)
	}
}

// TestMigrationStepsFindTheirEarlierWork calls the VM migration's activities
// directly, each twice, on the rig: a repeated step finds its earlier work by its
// markers (the same snapshot, copy and server), an unfinished copy left by a
// crash is replaced, and the source is deleted only once the destination is
// verified and marked.
func TestMigrationStepsFindTheirEarlierWork(t *testing.T) {
	r := openStackRig(t)
	pr := newVMProject(t, r, 1)
	a, err := openstack.New(config.Config{OpenStack: r.cfg}, openstack.WithPoll(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var src servers.Server
	for _, s := range pr.servers {
		src = s
	}
	vm := contract.VMRef{Project: pr.name, From: vmFrom, To: vmTo, ServerID: src.ID, ServerName: src.Name, Key: "test/" + src.ID}
	for range 2 {
		if out, err := a.MigrateStopSource(ctx, vm); err != nil || out.Status != "SHUTOFF" {
			t.Fatalf("MigrateStopSource: %+v, %v", out, err)
		}
	}
	snap, err := a.MigrateSnapshot(ctx, vm)
	if err != nil {
		t.Fatal(err)
	}
	again, err := a.MigrateSnapshot(ctx, vm)
	if err != nil || again.ImageID != snap.ImageID || !again.Reused {
		t.Fatalf("second MigrateSnapshot %+v (%v), want the first's %s reused", again, err, snap.ImageID)
	}

	// A crash mid-copy leaves an image with the marker but without the
	// checksum marker: the next attempt replaces it.
	stale, err := images.Create(ctx, pr.dst.image, images.CreateOpts{Name: "stale", ContainerFormat: "bare", DiskFormat: "raw",
		Properties: map[string]string{contract.MarkerSourceImage: vmFrom + "/" + snap.ImageID}}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	cp, err := a.MigrateCopyImage(ctx, contract.CopyImageInput{VM: vm, Source: snap})
	if err != nil || cp.Reused || cp.ImageID == stale.ID || cp.HashValue != snap.HashValue {
		t.Fatalf("MigrateCopyImage after a crash: %+v (%v), want a new copy with hash %s", cp, err, snap.HashValue)
	}
	if _, err := images.Get(ctx, pr.dst.image, stale.ID).Extract(); !gophercloud.ResponseCodeIs(err, 404) {
		t.Errorf("the unfinished copy %s is still there (err %v)", stale.ID, err)
	}
	cp2, err := a.MigrateCopyImage(ctx, contract.CopyImageInput{VM: vm, Source: snap})
	if err != nil || cp2.ImageID != cp.ImageID || !cp2.Reused {
		t.Fatalf("second MigrateCopyImage %+v (%v), want %s reused", cp2, err, cp.ImageID)
	}

	if _, err := a.MigratePreflight(ctx, contract.PreflightInput{Project: pr.name, From: vmFrom, To: vmTo}); err != nil {
		t.Fatal(err)
	}
	srv, err := a.MigrateCreateServer(ctx, contract.CreateServerInput{VM: vm, ImageID: cp.ImageID})
	if err != nil {
		t.Fatal(err)
	}
	srv2, err := a.MigrateCreateServer(ctx, contract.CreateServerInput{VM: vm, ImageID: cp.ImageID})
	if err != nil || srv2.ServerID != srv.ServerID || !srv2.Reused {
		t.Fatalf("second MigrateCreateServer %+v (%v), want %s reused", srv2, err, srv.ServerID)
	}
	dest := contract.DestinationInput{VM: vm, ServerID: srv.ServerID, ImageID: cp.ImageID, SourceImage: snap}
	if _, err := a.MigrateWaitActive(ctx, dest); err != nil {
		t.Fatal(err)
	}
	if v, err := a.MigrateVerify(ctx, dest); err != nil || len(v.Problems) != 0 {
		t.Fatalf("MigrateVerify: %+v, %v", v, err)
	}
	if _, err := a.MigrateDeleteSource(ctx, dest); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("MigrateDeleteSource before the markers: %v, want a refusal", err)
	}
	if _, err := servers.Get(ctx, pr.src.compute, src.ID).Extract(); err != nil {
		t.Fatalf("the refused deletion deleted the source: %v", err)
	}
	if _, err := a.MigrateMark(ctx, dest); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if out, err := a.MigrateDeleteSource(ctx, dest); err != nil {
			t.Fatalf("MigrateDeleteSource #%d: %+v, %v", i+1, out, err)
		}
	}
	if _, err := servers.Get(ctx, pr.src.compute, src.ID).Extract(); !gophercloud.ResponseCodeIs(err, 404) {
		t.Errorf("source still there after MigrateDeleteSource (err %v)", err)
	}
}
