package contract

// Activities of the automatic per-project VM migration (migrations.ProjectMigration
// and migrations.VMMigration), implemented by activities/openstack on the migrate
// pool. Each is idempotent: it finds its own earlier work by the markers below and
// reuses it, so a retry after a worker crash never creates a second image or server.
var (
	// MigratePreflight lists a project's servers in the source deployment and makes
	// sure the flavors, keypairs and security groups they use exist by name in the
	// destination, creating the missing ones (or, in a dry run, only saying so).
	MigratePreflight = Activity[PreflightInput, ProjectPlan]{Name: "MigratePreflight"}
	// MigrateStopSource marks the source server as being migrated and stops it.
	MigrateStopSource = Activity[VMRef, StopSourceOutput]{Name: "MigrateStopSource"}
	// MigrateSnapshot makes an image of the stopped source server (createImage) and
	// waits until it is active.
	MigrateSnapshot = Activity[VMRef, ImageOutput]{Name: "MigrateSnapshot"}
	// MigrateCopyImage streams the snapshot's data from the source's Glance to the
	// destination's, checksumming it on the way.
	MigrateCopyImage = Activity[CopyImageInput, ImageOutput]{Name: "MigrateCopyImage"}
	// MigrateCreateServer creates the destination server from the copied image, with
	// the source's name, flavor (by name) and metadata.
	MigrateCreateServer = Activity[CreateServerInput, ServerOutput]{Name: "MigrateCreateServer"}
	// MigrateWaitActive waits until the destination server is ACTIVE; ERROR fails it
	// (non-retryable, ErrServerError) with the server's fault.
	MigrateWaitActive = Activity[DestinationInput, ServerOutput]{Name: "MigrateWaitActive"}
	// MigrateVerify checks the destination server against the source.
	MigrateVerify = Activity[DestinationInput, VerifyOutput]{Name: "MigrateVerify"}
	// MigrateSwitchDNS points the server's DNS name at the destination; a no-op when
	// no zone is configured (the local rig has no Designate).
	MigrateSwitchDNS = Activity[DestinationInput, StepOutput]{Name: "MigrateSwitchDNS"}
	// MigrateMark leaves the "migrated" markers on both servers.
	MigrateMark = Activity[DestinationInput, StepOutput]{Name: "MigrateMark"}
	// MigrateDeleteSource deletes the source server; it refuses unless the
	// destination carries the verified marker.
	MigrateDeleteSource = Activity[DestinationInput, StepOutput]{Name: "MigrateDeleteSource"}
)

// Metadata markers the migration leaves on servers and images. Their values name
// the migration and the other side, so a retried step finds its earlier work.
const (
	// MarkerMigration is source server metadata: the migration key (VMRef.Key)
	// that stopped it.
	MarkerMigration = "conveyor.migration"
	// MarkerMigratedTo is source server metadata: "<region>/<server id>" of the
	// verified destination server.
	MarkerMigratedTo = "conveyor.migrated-to"
	// MarkerSourceServer is a snapshot image property: the source server's id.
	MarkerSourceServer = "conveyor.source-server"
	// MarkerSourceImage is a destination image property: "<region>/<image id>" of
	// the snapshot it was copied from.
	MarkerSourceImage = "conveyor.source-image"
	// MarkerSourceChecksum is a destination image property: the source image's
	// os_hash_algo:os_hash_value, written once the copy's checksum matched.
	MarkerSourceChecksum = "conveyor.source-checksum"
	// MarkerMigratedFrom is destination server metadata: "<region>/<server id>" of
	// the source server.
	MarkerMigratedFrom = "conveyor.migrated-from"
	// MarkerVerified is destination server metadata: set by MigrateMark after
	// verification; MigrateDeleteSource requires it.
	MarkerVerified = "conveyor.verified"
	// MarkerStopped is source server metadata, for operators only: the time and
	// request id of the Nova stop action MigrateStopSource saw last. conveyor
	// never trusts it (the project can edit metadata): MigrateSnapshot reads
	// Nova's own instance actions.
	MarkerStopped = "conveyor.stopped"
	// MarkerStaleSnapshot is a snapshot image property set instead of
	// MarkerSourceServer when MigrateSnapshot found the snapshot older than the
	// source's latest stop (or the source touched since): the source server's id
	// and why, so that no retry reuses it and an operator can see what it was.
	MarkerStaleSnapshot = "conveyor.stale-snapshot-of"
	// MarkerSnapshotRequest is a snapshot image property: the Nova request id of
	// the createImage that made it. MigrateSnapshot and MigrateVerify find that
	// action among the source's instance actions to order the snapshot against
	// the source's stops and starts; a snapshot without it is never reused.
	MarkerSnapshotRequest = "conveyor.snapshot-request"
)

// PreflightInput names a project to migrate between two deployments (names from
// the configuration's openstack.deployments).
type PreflightInput struct {
	// Project is the Keystone project's name; it is the same in both deployments
	// (they share one Keystone).
	Project string `json:"project"`
	From    string `json:"from"`
	To      string `json:"to"`
	// Servers limits the migration to these server names or ids; empty means all.
	Servers []string `json:"servers,omitempty"`
	// DryRun changes nothing: it only reports what would be created.
	DryRun bool `json:"dryRun,omitempty"`
}

// Server states in a plan.
const (
	// ServerToMigrate has not been migrated yet.
	ServerToMigrate = "migrate"
	// ServerInProgress carries a migration marker but no migrated-to marker: an
	// earlier run started it; migrating again resumes that work.
	ServerInProgress = "in-progress"
	// ServerMigrated carries the migrated-to marker: only the source's deletion may
	// remain.
	ServerMigrated = "migrated"
)

// ServerPlan is one source server and what its migration would do.
type ServerPlan struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
	// Flavor is the flavor's name, KeyName the keypair's (may be empty).
	Flavor         string            `json:"flavor"`
	KeyName        string            `json:"keyName,omitempty"`
	SecurityGroups []string          `json:"securityGroups,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	// State is ServerToMigrate, ServerInProgress or ServerMigrated.
	State string `json:"state"`
	// Steps says, in order, what migrating this server does.
	Steps []string `json:"steps,omitempty"`
}

// Resource actions in a plan.
const (
	ResourceExists     = "exists"
	ResourceWillCreate = "would create"
	ResourceCreated    = "created"
)

// ResourceAction is one flavor, keypair or security group the destination needs.
type ResourceAction struct {
	// Kind is "flavor", "keypair" or "security-group".
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Action is ResourceExists, ResourceWillCreate (dry run) or ResourceCreated.
	Action string `json:"action"`
	// Detail says what it is or why it could not be created.
	Detail string `json:"detail,omitempty"`
}

// ProjectPlan is MigratePreflight's answer: the project's servers and the
// destination resources they need, sorted by name.
type ProjectPlan struct {
	Project   string           `json:"project"`
	From      string           `json:"from"`
	To        string           `json:"to"`
	DryRun    bool             `json:"dryRun,omitempty"`
	Servers   []ServerPlan     `json:"servers"`
	Resources []ResourceAction `json:"resources"`
}

// VMRef names one server's migration; every VM step takes it.
type VMRef struct {
	Project string `json:"project"`
	From    string `json:"from"`
	To      string `json:"to"`
	// ServerID and ServerName are the source server's.
	ServerID   string `json:"serverId"`
	ServerName string `json:"serverName"`
	// Key identifies the migration (the VMMigration workflow's id); it is the value
	// of MarkerMigration, so a retried or restarted migration finds its work.
	Key string `json:"key"`
}

// StopSourceOutput is the source server's status after MigrateStopSource.
type StopSourceOutput struct {
	Status string `json:"status"`
}

// ImageOutput describes an image (a snapshot or its copy).
type ImageOutput struct {
	ImageID string `json:"imageId"`
	// Checksum is Glance's MD5 checksum; HashAlgo and HashValue its os_hash_*.
	Checksum  string `json:"checksum,omitempty"`
	HashAlgo  string `json:"hashAlgo,omitempty"`
	HashValue string `json:"hashValue,omitempty"`
	Size      int64  `json:"size"`
	// Reused says an earlier attempt's image was found by its marker and reused.
	Reused bool `json:"reused,omitempty"`
	// Stale lists earlier snapshots MigrateSnapshot found and did not reuse,
	// each "<image id>: <why>" (marked with MarkerStaleSnapshot, not deleted).
	Stale []string `json:"stale,omitempty"`
}

// CopyImageInput says which snapshot to copy.
type CopyImageInput struct {
	VM     VMRef       `json:"vm"`
	Source ImageOutput `json:"source"`
}

// CreateServerInput says from which destination image to create the server.
type CreateServerInput struct {
	VM      VMRef  `json:"vm"`
	ImageID string `json:"imageId"`
}

// ServerOutput is a destination server.
type ServerOutput struct {
	ServerID string `json:"serverId"`
	Status   string `json:"status,omitempty"`
	// Reused says an earlier attempt's server was found by its marker and reused.
	Reused bool `json:"reused,omitempty"`
}

// DestinationInput names a VM's destination server (and image, for verification).
type DestinationInput struct {
	VM       VMRef  `json:"vm"`
	ServerID string `json:"serverId"`
	ImageID  string `json:"imageId,omitempty"`
	// SourceImage is the snapshot the destination image was copied from.
	SourceImage ImageOutput `json:"sourceImage,omitempty"`
	// DNSZone is the zone to switch, for MigrateSwitchDNS; empty means none.
	DNSZone string `json:"dnsZone,omitempty"`
}

// VerifyOutput lists what does not match; empty Problems means verified.
type VerifyOutput struct {
	Problems []string `json:"problems,omitempty"`
}

// StepOutput says what a step did, in one line.
type StepOutput struct {
	Detail string `json:"detail"`
}
