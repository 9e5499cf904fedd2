package contract

// Error types: the types of the non-retryable application errors
// (temporal.NewNonRetryableApplicationError) that the activities return for a
// failure that retrying cannot fix. Workflows, retry policies, the CLI and the UI
// match on them, and recorded histories carry them, so their values never change:
// add a new type rather than reword an old one. Every other failure is retried by
// the activity's retry policy.
//
// Each type says which activities raise it, what it means, and what the user
// does about it. The error's message names the file, field or object.

// Error types of the change pipeline (changes.Pipeline): PrepareSource,
// BuildVariant, RunTests, DeployCandidate, HelmTest, RunE2E, PublishImage.
const (
	// ErrInvalidConfig: the repository's pipeline settings (.pipeline/config.yaml)
	// or a workflow's or activity's input are invalid: PrepareSource (the
	// settings), BuildVariant and RunTests (a variant the Blubber config lacks),
	// DeployCandidate (an image not by digest, a bad release name, a servicePort
	// no Service has, a namespace without conveyor's sandbox label), RunE2E
	// (checks that cannot run), Teardown (a namespace without conveyor's sandbox
	// label, which it leaves alone), PostReview (the worker's Gerrit
	// configuration). Fix the field the message names and push again.
	ErrInvalidConfig = "InvalidPipelineConfig"
	// ErrInvalidBlubber: the Blubber config does not parse or validate
	// (PrepareSource, BuildVariant, RunTests). Fix the config at the path the
	// message names.
	ErrInvalidBlubber = "InvalidBlubberConfig"
	// ErrTestsFailed: the test variant's entrypoint failed (RunTests); the
	// message carries the output's last lines. Fix the tests or the code.
	ErrTestsFailed = "TestsFailed"
	// ErrBuildFailed: a build step of a variant failed (BuildVariant); the
	// message carries the step's output. Fix the step in the Blubber config or
	// what it runs.
	ErrBuildFailed = "BuildStepFailed"
	// ErrE2EFailed: smoke checks of the deployed candidate failed (RunE2E); the
	// error's details hold the RunE2EOutput. Fix the service or the checks (e2e
	// in .pipeline/config.yaml).
	ErrE2EFailed = "E2EFailed"
	// ErrHelmTest: a `helm test` hook of the release failed or did not finish in
	// time (HelmTest); the message holds the pod's state and log tail. Fix the
	// chart's tests or the service.
	ErrHelmTest = "HelmTestFailed"
	// ErrChart: the chart does not load, render or fit the cluster, or the
	// Kubernetes API refused an object it rendered, or the release has no
	// Service for the e2e checks (DeployCandidate). Fix the chart or
	// chart.values in .pipeline/config.yaml.
	ErrChart = "InvalidChart"
	// ErrUntrustedChart: a chart from the repository (pipeline.chart.path) on a
	// run of an unreviewed patchset renders something a sandbox must not hold: a
	// cluster-scoped or unknown kind, an object in another namespace, a kind on
	// conveyor's deny-list, a pod that breaks the PodSecurity restricted profile,
	// or templates that call `lookup` (DeployCandidate). Nothing was installed.
	// The message names each template and object and what is wrong: change the
	// chart, or use conveyor's chart (chart.path ""). docs/security.md lists
	// the rules.
	ErrUntrustedChart = "UntrustedChart"
	// ErrSource: the repository or ref does not exist (PrepareSource, and
	// DeployCandidate fetching a repository's chart). Check the repository's URL
	// and that the ref was pushed.
	ErrSource = "SourceUnavailable"
	// ErrCandidateNotReady: the candidate's pods fail in a way that waiting
	// cannot fix: a container that keeps crashing, an image that does not exist,
	// a container the kubelet cannot create (DeployCandidate); the message lists
	// the pods' reasons, events and log tails. Fix the image or its
	// configuration.
	ErrCandidateNotReady = "CandidateNotReady"
	// ErrTagConflict: a tag PublishImage was asked to write already points at
	// another digest; nothing was written. Published tags are never moved:
	// publish under new tags, or delete the old ones first if they are wrong.
	ErrTagConflict = "TagConflict"
	// ErrCandidateMissing: the candidate PublishImage was asked to publish is not
	// in the registry (never pushed, or deleted since). Build and push it again.
	ErrCandidateMissing = "CandidateMissing"
	// ErrInvalidPublish: PublishImage's input names no valid candidate
	// (repository@sha256:<digest>), repository or tag. Fix the caller's input.
	ErrInvalidPublish = "InvalidPublishInput"
)

// Error types of the Gerrit reviews (PostReview).
const (
	// ErrGerritRejected: Gerrit refused the review (no such change or revision,
	// no permission to vote, bad credentials). Retrying does not help; fixing the
	// worker's gerrit configuration or the account's permissions does.
	ErrGerritRejected = "GerritReviewRejected"
	// ErrRevisionNotBuilt: the review's revision (the event's) is not the
	// commit the pipeline built, so conveyor will not vote on it. Running the
	// pipeline of that patchset again (a recheck) votes on what it builds.
	ErrRevisionNotBuilt = "RevisionNotBuilt"
)

// Error types of the staged promotion (promotions.Promotion): PromotionConfig,
// PromotionDeploy, PromotionSmoke, CanarySet, CanaryAnalyze, CanaryRemove.
const (
	// ErrPromotionConfig: the configuration registry has no valid plan for the
	// service, or the plan names a cluster the worker does not have
	// (PromotionConfig and every activity that picks a cluster). Fix the file
	// and field the message names, or the worker's promotion.clusters.
	ErrPromotionConfig = "InvalidPromotionConfig"
	// ErrPromotionInput: a promotion activity's input is invalid (an image not by
	// digest, a service or namespace that is not a DNS label, negative
	// replicas): the workflow that sent it has a bug. Fix the caller.
	ErrPromotionInput = "InvalidPromotionInput"
	// ErrSmokeFailed: the release answered its smoke check with an error, or has
	// no Service to check (PromotionSmoke). Fix the service, or deploy it first.
	ErrSmokeFailed = "SmokeCheckFailed"
	// ErrReleaseNotReady: a release's or canary's pods fail in a way that waiting
	// cannot fix (crash loop, missing image), or the stable Deployment a canary
	// needs does not exist (PromotionDeploy, CanarySet, CanaryRemove); the
	// message lists the pods' reasons. Fix the image or roll back.
	ErrReleaseNotReady = "ReleaseNotReady"
)

// Error types of the OpenStack parallel-cloud migration (migrations.CloudMigration,
// migrations.MigrationStage, migrations.ProjectMigration, migrations.VMMigration).
const (
	// ErrMigrationTaskFailed: an automated task of a stage cannot succeed without
	// a person fixing something first (a quota, a missing host), or is not one
	// conveyor automates (MigrationTask). The stage then waits for a person to do
	// the task and mark it done.
	ErrMigrationTaskFailed = "MigrationTaskFailed"
	// ErrServerError: the destination server went to ERROR or vanished
	// (MigrateWaitActive); the message holds its fault. The source is kept: fix
	// the cause and retry the VM.
	ErrServerError = "DestinationServerError"
	// ErrVerifyFailed: the destination does not match the source (MigrateVerify),
	// or the source is not safe to delete (MigrateDeleteSource). Look at the
	// destination server before retrying the VM.
	ErrVerifyFailed = "MigrationVerifyFailed"
	// ErrMigrationInput: the input names something that does not exist (a
	// deployment, a project, a server) or is inconsistent, or the source server
	// is in ERROR (the Migrate* activities, MigrationCheck, the cleanup and the
	// test battery). Fix the input or the source server.
	ErrMigrationInput = "InvalidMigrationInput"
)

// Error types the workflows fail with themselves (not an activity's): a caller of
// the workflow, the CLI or a parent workflow tells these failures apart by them.
const (
	// ErrInvalidPool: Ping's input names a pool that does not exist.
	ErrInvalidPool = "InvalidPool"
	// ErrPoolUnavailable: no worker of a pool answered Ping in time.
	ErrPoolUnavailable = "PoolUnavailable"
	// ErrPromotionRejected: an approver rejected the promotion at its gate.
	ErrPromotionRejected = "PromotionRejected"
	// ErrPromotionTimedOut: nobody decided before the plan's pause timeout.
	ErrPromotionTimedOut = "PromotionTimedOut"
	// ErrPromotionRolledBack: a canary failed its analysis, or someone asked for a
	// rollback; the canary was removed and the stable release left as it was.
	ErrPromotionRolledBack = "PromotionRolledBack"
	// ErrBatteryFailed: a test of TestBattery failed; the details hold the
	// BatteryReport.
	ErrBatteryFailed = "BatteryFailed"
	// ErrVMStepFailed: a step of VMMigration failed; the details hold the
	// VMProgress of the step, the cause the step's error.
	ErrVMStepFailed = "VMMigrationStepFailed"
)
