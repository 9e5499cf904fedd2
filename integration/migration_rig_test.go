package integration

// The rig side of the VM migration's tests: a project of its own per test with
// servers in eqiad1, gophercloud clients of both regions, and a real migrate-pool
// worker in the tests' Temporal namespace.

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
	"strings"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/workflows/migrations"

	"github.com/gophercloud/gophercloud/v2"
	gos "github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/keypairs"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
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

	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/workflows"
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
		t.Fatalf("authenticating to the rig's Keystone %s as %s in %s (conveyor dev up --with openstack): %v", c.AuthURL, c.Username, project, err)
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

// grantAdmin gives user the admin role on a project, so that the test can create
// resources in it.
func grantAdmin(ctx context.Context, t *testing.T, identity *gophercloud.ServiceClient, user, projectID, projectName string) {
	t.Helper()
	rp, err := roles.List(identity, roles.ListOpts{Name: "admin"}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := roles.ExtractRoles(rp)
	up, err := users.List(identity, users.ListOpts{Name: user}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	us, _ := users.ExtractUsers(up)
	if len(rs) == 0 || len(us) == 0 {
		t.Fatalf("the rig has no admin role or no user %s", user)
	}
	if err := roles.Assign(ctx, identity, rs[0].ID, roles.AssignOpts{UserID: us[0].ID, ProjectID: projectID}).ExtractErr(); err != nil {
		t.Fatalf("giving %s the admin role on %s: %v", user, projectName, err)
	}
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
	grantAdmin(ctx, t, r.identity, r.cfg.Username, proj.ID, pr.name)
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
	stacktest.WaitFor(t, 5*time.Minute, "server "+id+" in "+r.name+" to be "+status, func() error {
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
	return startProjectMigrationInput(t, c, migrations.ProjectMigrationInput{Project: pr.name, From: vmFrom, To: vmTo, MaxParallel: parallel, GracePeriod: 5 * time.Second})
}

// startProjectMigrationInput starts the migration in (of a project of vmFrom).
func startProjectMigrationInput(t *testing.T, c client.Client, in migrations.ProjectMigrationInput) client.WorkflowRun {
	t.Helper()
	run, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: migrations.ProjectMigrationID(vmFrom, vmTo, in.Project), TaskQueue: workflows.TaskQueueMigrate,
	}, migrations.ProjectMigration, in)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func vmProgress(c client.Client, run client.WorkflowRun) (migrations.ProjectStatus, error) {
	var st migrations.ProjectStatus
	v, err := c.QueryWorkflow(context.Background(), run.GetID(), run.GetRunID(), migrations.QueryProgress)
	if err != nil {
		return st, err
	}
	return st, v.Get(&st)
}

// waitProjectMigration waits for the migration's result.
func waitProjectMigration(t *testing.T, run client.WorkflowRun, wout *syncBuffer) migrations.ProjectStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var st migrations.ProjectStatus
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
