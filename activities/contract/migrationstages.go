package contract

import "time"

// Activities of the migration's stage workflows: the stage-3 test battery
// (migrations.TestBattery), the stage-4 projects driver (migrations.ProjectsMigration)
// and the stage-5 cleanup (migrations.Cleanup). activities/openstack implements them
// on the migrate pool; each is idempotent.
var (
	// FreezeLegacyQuota sets a project's compute quota (instances, cores, RAM) in
	// the legacy deployment to zero, so that new workloads go to the new one
	// (organic mode). The quota it replaces is kept on the Keystone project, under
	// QuotaMarker(deployment), so ThawLegacyQuota can restore it. Running it twice
	// keeps the first quota it saw.
	FreezeLegacyQuota = Activity[QuotaInput, QuotaOutput]{Name: "FreezeLegacyQuota"}
	// ThawLegacyQuota restores the quota FreezeLegacyQuota saved and forgets it.
	ThawLegacyQuota = Activity[QuotaInput, QuotaOutput]{Name: "ThawLegacyQuota"}
	// ListMigrationProjects lists the projects that have servers in a deployment.
	ListMigrationProjects = Activity[ProjectsInput, ProjectsOutput]{Name: "ListMigrationProjects"}
	// RunBatteryTest runs one test of the stage-3 battery (BatteryKeystone, ...).
	RunBatteryTest = Activity[BatteryTestInput, BatteryResult]{Name: "RunBatteryTest"}
	// RecordBatteryReport appends a battery run to the pair's report file in the
	// worker's state directory, once per run, and returns the runs before it.
	RecordBatteryReport = Activity[RecordBatteryInput, RecordBatteryOutput]{Name: "RecordBatteryReport"}
	// ListLeftovers lists the servers and images left in a deployment.
	ListLeftovers = Activity[LeftoversInput, LeftoversOutput]{Name: "ListLeftovers"}
	// DeleteLeftovers deletes listed leftovers; one already gone counts as deleted.
	// A server not named explicitly (Leftover.Named) is deleted only if it is
	// still verified migrated (Leftover.MigratedTo) when its turn comes.
	DeleteLeftovers = Activity[DeleteLeftoversInput, DeleteLeftoversOutput]{Name: "DeleteLeftovers"}
)

// QuotaMarkerPrefix starts the Keystone project property that keeps a project's
// compute quota in a deployment while FreezeLegacyQuota holds it at zero.
const QuotaMarkerPrefix = "conveyor_saved_quota_"

// QuotaMarker is the project property holding the saved quota of deployment.
func QuotaMarker(deployment string) string { return QuotaMarkerPrefix + deployment }

// Notification kinds of the projects driver, besides those of MigrationNotifyInput.
const (
	// NotifyProjectAssigned tells a project's owners to migrate it by a deadline.
	NotifyProjectAssigned = "project-assigned"
	// NotifyProjectReminder repeats it every reminder interval until done.
	NotifyProjectReminder = "project-reminder"
	// NotifyProjectOverdue says the deadline has passed; sent once.
	NotifyProjectOverdue = "project-overdue"
	// NotifyCleanup says leftovers await approval to be deleted.
	NotifyCleanup = "cleanup"
)

// ComputeQuota is the part of a Nova quota set the organic mode changes.
type ComputeQuota struct {
	Instances int `json:"instances"`
	Cores     int `json:"cores"`
	RAM       int `json:"ram"`
}

// IsZero says every limit is zero.
func (q ComputeQuota) IsZero() bool { return q == ComputeQuota{} }

// QuotaInput names a project (by Keystone name) in a deployment.
type QuotaInput struct {
	Deployment string `json:"deployment"`
	Project    string `json:"project"`
	// DryRun reads the quota and says what would change, changing nothing.
	DryRun bool `json:"dryRun,omitempty"`
}

// QuotaOutput says what the quota was and is.
type QuotaOutput struct {
	Deployment string `json:"deployment"`
	Project    string `json:"project"`
	ProjectID  string `json:"projectId"`
	// Saved is the quota kept on the project (FreezeLegacyQuota) or restored
	// (ThawLegacyQuota).
	Saved ComputeQuota `json:"saved"`
	// Quota is the quota now (or, in a dry run, as it would be).
	Quota ComputeQuota `json:"quota"`
	// Changed says this call changed the quota.
	Changed bool   `json:"changed,omitempty"`
	Detail  string `json:"detail"`
}

// ProjectsInput names a deployment whose projects to list.
type ProjectsInput struct {
	Deployment string `json:"deployment"`
}

// ProjectRef is a project with servers in a deployment.
type ProjectRef struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Servers int    `json:"servers"`
}

// ProjectsOutput lists projects by name.
type ProjectsOutput struct {
	Projects []ProjectRef `json:"projects"`
}

// The tests of the battery, in the order they run.
const (
	// BatteryKeystone authenticates and reads the catalog for both deployments:
	// compute, image and network endpoints in each region, each answering.
	BatteryKeystone = "keystone"
	// BatteryServer creates a server in the new deployment, waits for ACTIVE and
	// deletes it.
	BatteryServer = "server"
	// BatteryImageCopy uploads an image to the legacy deployment, copies its data to
	// the new one and compares checksums, then deletes both.
	BatteryImageCopy = "image-copy"
	// BatteryDNS resolves the configured names; skipped when none are.
	BatteryDNS = "dns"
	// BatteryBastion connects to the configured bastion (host:port); skipped when
	// none is.
	BatteryBastion = "bastion"
)

// BatteryTests lists every test, in order.
var BatteryTests = []string{BatteryKeystone, BatteryServer, BatteryImageCopy, BatteryDNS, BatteryBastion}

// BatteryTestInput is one test of one battery run.
type BatteryTestInput struct {
	From string `json:"from"`
	To   string `json:"to"`
	Test string `json:"test"`
	// Key names what the test creates (servers, images), so a retried test finds
	// and reuses or removes its own earlier resources.
	Key string `json:"key"`
	// DNSNames and Bastion configure the reachability tests.
	DNSNames []string `json:"dnsNames,omitempty"`
	Bastion  string   `json:"bastion,omitempty"`
}

// BatteryResult is one test's outcome. A failed test is a result, not an error.
type BatteryResult struct {
	Test string `json:"test"`
	OK   bool   `json:"ok"`
	// Skipped says the test had nothing to test (no DNS names, no bastion).
	Skipped bool   `json:"skipped,omitempty"`
	Detail  string `json:"detail"`
	// Seconds is how long the test took.
	Seconds float64 `json:"seconds"`
	// SourceChecksum and CopyChecksum are the image copy's sha512 on both sides.
	SourceChecksum string `json:"sourceChecksum,omitempty"`
	CopyChecksum   string `json:"copyChecksum,omitempty"`
}

// BatteryRun is one run of the battery, as recorded.
type BatteryRun struct {
	From string `json:"from"`
	To   string `json:"to"`
	// ID is the run's key (its workflow id and run id).
	ID      string          `json:"id"`
	Started time.Time       `json:"started"`
	Results []BatteryResult `json:"results"`
}

// Passed says every test passed or was skipped.
func (r BatteryRun) Passed() bool {
	for _, t := range r.Results {
		if !t.OK && !t.Skipped {
			return false
		}
	}
	return true
}

// RecordBatteryInput is a finished run to record.
type RecordBatteryInput struct {
	Run BatteryRun `json:"run"`
	// Keep is how many earlier runs to return; zero means 10.
	Keep int `json:"keep,omitempty"`
}

// RecordBatteryOutput says where the run was recorded and what came before it.
type RecordBatteryOutput struct {
	// File is the report file on the worker's host.
	File string `json:"file"`
	// Previous are the earlier runs of the pair, newest first.
	Previous []BatteryRun `json:"previous,omitempty"`
}

// Kinds of Leftover.
const (
	LeftoverServer = "server"
	LeftoverImage  = "image"
)

// LeftoversInput names a deployment and the projects to look in.
type LeftoversInput struct {
	Deployment string `json:"deployment"`
	// Projects are Keystone project names; empty means every project but the
	// migration account's own and "service".
	Projects []string `json:"projects,omitempty"`
	// Destination is the deployment the servers were migrated to; each server's
	// migrated-to marker is verified against it (Leftover.MigratedTo or
	// Leftover.Unverified). Empty verifies nothing: every server is unverified.
	Destination string `json:"destination,omitempty"`
}

// Leftover is one resource left in a deployment.
type Leftover struct {
	Kind    string `json:"kind"`
	ID      string `json:"id"`
	Name    string `json:"name"`
	Project string `json:"project"`
	Status  string `json:"status,omitempty"`
	// MigratedTo is, for a server, "<region>/<id>" of its verified destination:
	// the source's MarkerMigratedTo names a server of the destination deployment
	// that exists, is ACTIVE, in the same project, and carries MarkerMigratedFrom
	// naming the source and MarkerVerified with the source's migration key.
	MigratedTo string `json:"migratedTo,omitempty"`
	// Unverified says, for a server without MigratedTo, why it is not verified
	// migrated (no marker, destination gone or not ACTIVE, markers that disagree).
	Unverified string `json:"unverified,omitempty"`
	// Named says the cleanup's input named this server explicitly, so it is
	// deleted (after approval) although it is not verified migrated.
	Named bool `json:"named,omitempty"`
}

// String is the way reports and notifications name a leftover.
func (l Leftover) String() string {
	return l.Kind + " " + l.Name + " (" + l.ID + ") in project " + l.Project
}

// LeftoversOutput lists leftovers, servers first, each kind by project and name.
type LeftoversOutput struct {
	Resources []Leftover `json:"resources"`
}

// DeleteLeftoversInput lists what to delete from a deployment.
type DeleteLeftoversInput struct {
	Deployment string     `json:"deployment"`
	Resources  []Leftover `json:"resources"`
	// Destination is the deployment against which a server that is not Named is
	// verified again before it is deleted (see LeftoversInput.Destination).
	Destination string `json:"destination,omitempty"`
}

// DeleteLeftoversOutput says what was deleted, what had already gone, and which
// servers were not deleted because they were no longer (or never) verified
// migrated, each with Unverified saying why.
type DeleteLeftoversOutput struct {
	Deleted []Leftover `json:"deleted"`
	Gone    []Leftover `json:"gone,omitempty"`
	Skipped []Leftover `json:"skipped,omitempty"`
}
