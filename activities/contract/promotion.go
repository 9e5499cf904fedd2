package contract

import "time"

// Activities of the staged promotion (promotions.Promotion). They run on the deploy
// pool: its hosts reach the clusters' API servers and their pods.
var (
	// PromotionConfig reads a service's promotion plan and per-environment Helm
	// values from the configuration registry (a git repository) at a ref, and
	// returns the commit it read, so the history records which configuration a
	// run used.
	PromotionConfig = Activity[PromotionConfigInput, PromotionConfigOutput]{Name: "PromotionConfig"}
	// PromotionDeploy installs or upgrades a service's stable release in one
	// cluster and namespace with Helm (keeping HistoryMax revisions) and waits for
	// it to be ready. It is idempotent: a release already at the image and values
	// is left as it is.
	PromotionDeploy = Activity[PromotionDeployInput, PromotionDeployOutput]{Name: "PromotionDeploy"}
	// PromotionSmoke checks a release from outside its pods (GET its Service).
	PromotionSmoke = Activity[PromotionSmokeInput, PromotionSmokeOutput]{Name: "PromotionSmoke"}
	// CanarySet makes the canary Deployment of the new image, beside the stable
	// one behind the same Service, run CanaryReplicas pods and the stable one
	// StableReplicas, and waits until both are ready. Setting it twice to the same
	// numbers changes nothing.
	CanarySet = Activity[CanarySetInput, CanarySetOutput]{Name: "CanarySet"}
	// CanaryAnalyze sends generated traffic to the canary's and the stable
	// release's pods and compares error ratio and latency with the plan's
	// thresholds. A failed analysis is a result (Passed false), not an error.
	CanaryAnalyze = Activity[CanaryAnalyzeInput, Analysis]{Name: "CanaryAnalyze"}
	// CanaryRemove deletes the canary Deployment and restores the stable
	// release's replicas; used both after a promotion (the stable release then
	// already runs the new image) and for a rollback. Removing an absent canary
	// is not an error.
	CanaryRemove = Activity[CanaryRemoveInput, Nothing]{Name: "CanaryRemove"}
	// PromotionNotify tells the approvers about a promotion: it waits for a
	// decision, a reminder, a rollback, the outcome.
	PromotionNotify = Activity[PromotionNotifyInput, Nothing]{Name: "PromotionNotify"}
)

// PromotionConfigInput names the service and the configuration's ref.
type PromotionConfigInput struct {
	Service string `json:"service"`
	// Ref is a branch, tag or commit of the configuration registry; empty means
	// its default branch.
	Ref string `json:"ref,omitempty"`
	// Optional makes a service the registry has no plan for (or no registry
	// configured) a normal result with Absent set, instead of an
	// ErrPromotionConfig error: the merge batcher asks this way before it
	// starts a promotion. An invalid plan is still an error.
	Optional bool `json:"optional,omitempty"`
	// Image, when set, is the image to be promoted: PromotionConfig refuses it
	// (ErrPromotionInput) unless conveyor's pipeline published it for Service, in
	// <registry>/<service> with a *-production tag at its digest.
	Image string `json:"image,omitempty"`
}

// PromotionConfigOutput is the service's configuration at one commit.
type PromotionConfigOutput struct {
	// Commit is the full hash Ref resolved to.
	Commit string        `json:"commit"`
	Plan   PromotionPlan `json:"plan"`
	// Absent is set, for an Optional request only, when the registry has no
	// plan for the service; Commit and Plan are then empty.
	Absent bool `json:"absent,omitempty"`
	// Simulated lists the plan's clusters whose nodes are simulated (the
	// worker's promotion.clusters[].simulated), for ServiceRelease.Simulated.
	Simulated []string `json:"simulated,omitempty"`
}

// PromotionPlan is what the configuration registry says about one service.
type PromotionPlan struct {
	Service string `json:"service"`
	// Staging is deployed first, without a human.
	Staging Target `json:"staging"`
	// Production lists the clusters in the order they are promoted, one per data
	// centre.
	Production []Target `json:"production"`
	// Replicas is the total number of pods of the service in each production
	// cluster; a canary step's weight is the canary's share of them.
	Replicas int `json:"replicas"`
	// Steps are the canary's traffic weights in percent, ending at 100.
	Steps []CanaryStep `json:"steps"`
	// Analysis is what each step's analysis must meet.
	Analysis AnalysisPlan `json:"analysis"`
	// Approvers may approve or reject the gate before production.
	Approvers []string `json:"approvers"`
	// ReminderEvery is how often a waiting gate or indefinite pause reminds the
	// approvers.
	ReminderEvery time.Duration `json:"reminderEvery"`
	// PauseTimeout aborts a promotion whose gate has waited that long; zero
	// means wait for ever.
	PauseTimeout time.Duration `json:"pauseTimeout,omitempty"`
	// HistoryMax is how many Helm revisions a release keeps for rollbacks.
	HistoryMax int `json:"historyMax"`
	// SmokePath is the path PromotionSmoke GETs on the Service ("/" when empty).
	SmokePath string `json:"smokePath,omitempty"`
}

// Target is one environment in one cluster.
type Target struct {
	// Cluster names a cluster of the worker's configuration (promotion.clusters).
	Cluster   string `json:"cluster"`
	Namespace string `json:"namespace"`
	// Values are the environment's Helm values, as YAML.
	Values string `json:"values,omitempty"`
}

// CanaryStep is one step of the canary.
type CanaryStep struct {
	// Weight is the canary's share of the pods, in percent (1–100).
	Weight int `json:"weight"`
	// Pause is how long the step runs before its analysis; zero analyses at once.
	Pause time.Duration `json:"pause,omitempty"`
	// Indefinite waits for a `resume` (or `promote-full`) after the analysis.
	Indefinite bool `json:"indefinite,omitempty"`
}

// AnalysisPlan holds the thresholds of one analysis.
type AnalysisPlan struct {
	// Requests is how many requests to send to each of the canary and stable.
	Requests int `json:"requests"`
	// MaxErrorRatio is the highest acceptable share of failed requests (0–1).
	MaxErrorRatio float64 `json:"maxErrorRatio"`
	// MaxLatencyP95 is the highest acceptable 95th percentile latency.
	MaxLatencyP95 time.Duration `json:"maxLatencyP95"`
	// Path is the path (and query) the generated traffic GETs on each pod ("/"
	// when empty).
	Path string `json:"path,omitempty"`
}

// ServiceRelease names a service's release in one environment.
type ServiceRelease struct {
	Target
	Service string `json:"service"`
	// Simulated is set when the cluster's nodes are simulated: no pod answers
	// traffic there, so only readiness is checked.
	Simulated bool `json:"simulated,omitempty"`
}

// PromotionDeployInput upgrades the stable release to Image.
type PromotionDeployInput struct {
	ServiceRelease
	// Image is repository@digest.
	Image      string `json:"image"`
	Replicas   int    `json:"replicas"`
	HistoryMax int    `json:"historyMax"`
	// OnlyIfAbsent installs Image only when the release does not exist yet. An
	// existing release is left exactly as it is, and the output reports it:
	// Revision is its current revision and Previous its current image. The
	// workflow asks this way before a canary, to find the stable release.
	OnlyIfAbsent bool `json:"onlyIfAbsent,omitempty"`
}

// PromotionDeployOutput is the release's revision after the deploy.
type PromotionDeployOutput struct {
	Revision int `json:"revision"`
	// Previous is the image the release ran before, "" for a first install.
	Previous string `json:"previous,omitempty"`
}

// PromotionSmokeInput asks for a smoke check of a release's Service.
type PromotionSmokeInput struct {
	ServiceRelease
	// Path is what to GET on the Service (the plan's SmokePath; "/" when empty).
	Path string `json:"path,omitempty"`
}

// PromotionSmokeOutput says what the smoke check saw.
type PromotionSmokeOutput struct {
	// URL is the address that was checked; on a simulated cluster, empty.
	URL    string `json:"url,omitempty"`
	Status int    `json:"status,omitempty"`
	// Detail says what was checked (e.g. readiness only on a simulated cluster).
	Detail string `json:"detail"`
}

// CanarySetInput sets the canary's and the stable release's replicas.
type CanarySetInput struct {
	ServiceRelease
	Image          string `json:"image"`
	CanaryReplicas int    `json:"canaryReplicas"`
	StableReplicas int    `json:"stableReplicas"`
}

// CanarySetOutput reports the pods that are ready.
type CanarySetOutput struct {
	CanaryReady int `json:"canaryReady"`
	StableReady int `json:"stableReady"`
}

// CanaryAnalyzeInput asks for one analysis.
type CanaryAnalyzeInput struct {
	ServiceRelease
	Analysis AnalysisPlan `json:"analysis"`
}

// Analysis is one analysis' measurements and verdict.
type Analysis struct {
	Requests   int           `json:"requests"`
	Errors     int           `json:"errors"`
	ErrorRatio float64       `json:"errorRatio"`
	LatencyP95 time.Duration `json:"latencyP95"`
	// StableErrorRatio is the stable pods' error ratio under the same traffic,
	// for comparison.
	StableErrorRatio float64 `json:"stableErrorRatio"`
	Passed           bool    `json:"passed"`
	// Reason says which threshold failed, or what was checked.
	Reason string `json:"reason"`
}

// CanaryRemoveInput removes a release's canary.
type CanaryRemoveInput struct {
	ServiceRelease
	// StableReplicas is what the stable release is scaled back to.
	StableReplicas int `json:"stableReplicas"`
}

// PromotionNotifyInput is one message to the approvers.
type PromotionNotifyInput struct {
	Service   string   `json:"service"`
	Kind      string   `json:"kind"`
	Message   string   `json:"message"`
	Approvers []string `json:"approvers,omitempty"`
}
