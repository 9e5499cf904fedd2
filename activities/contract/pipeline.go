// Package contract is the vocabulary shared by the workflows and the activities: a
// typed handle (Activity) for every activity, their inputs and outputs, and the
// stable error types of their non-retryable failures. It imports only the standard
// library (a test checks it), so workflows/, the libraries under internal/lib and the
// command line can depend on it while the activity implementations depend on
// BuildKit, Helm, client-go, gophercloud and the registry client.
package contract

import "time"

// The pipeline's activities.
var (
	// PrepareSource fetches a ref and reads the repository's pipeline settings.
	PrepareSource = Activity[PrepareSourceInput, PrepareSourceOutput]{Name: "PrepareSource"}
	// BuildVariant builds one Blubber variant on buildkitd, optionally pushing it.
	BuildVariant = Activity[BuildVariantInput, BuildVariantOutput]{Name: "BuildVariant"}
	// RunTests runs a variant's entrypoint as a build step.
	RunTests = Activity[RunTestsInput, RunTestsOutput]{Name: "RunTests"}
	// DeployCandidate installs a candidate image with Helm into a fresh namespace and
	// waits for it to be ready.
	DeployCandidate = Activity[DeployCandidateInput, DeployCandidateOutput]{Name: "DeployCandidate"}
	// HelmTest runs the release's `helm test` hooks.
	HelmTest = Activity[HelmTestInput, Nothing]{Name: "HelmTest"}
	// RunE2E runs the repository's smoke checks against the release's Service from
	// outside the pod.
	RunE2E = Activity[RunE2EInput, RunE2EOutput]{Name: "RunE2E"}
	// Teardown uninstalls a release and deletes its namespace.
	Teardown = Activity[TeardownInput, Nothing]{Name: "Teardown"}
	// PublishImage tags a tested digest into the public repository.
	PublishImage = Activity[PublishImageInput, PublishImageOutput]{Name: "PublishImage"}
)

// Source is one commit of one repository.
type Source struct {
	// Repo is a git URL or a local path.
	Repo string `json:"repo"`
	// Commit is the full commit hash that Ref resolved to.
	Commit string `json:"commit"`
	// Branch is the branch Ref resolved through (main for refs/heads/main); empty
	// for a change ref, a tag or a commit: code that no branch's review let in.
	// Builds keep their caches per repository and branch (or "unreviewed").
	Branch string `json:"branch,omitempty"`
}

// PrepareSourceInput asks for a ref of a repository.
type PrepareSourceInput struct {
	Repo string `json:"repo"`
	// Ref is a branch, tag, commit or Gerrit change ref (refs/changes/34/1234/2).
	Ref string `json:"ref"`
	// Commit, when set, is the full commit hash to build: Ref's, as long as Ref
	// still points at it (a branch's commit is then reviewed code,
	// Source.Branch); once Ref has moved on or is gone, the commit alone, as
	// code of no branch.
	Commit string `json:"commit,omitempty"`
}

// PrepareSourceOutput is the resolved commit and the repository's settings.
type PrepareSourceOutput struct {
	Source   Source   `json:"source"`
	Settings Settings `json:"settings"`
	// Variants are the Blubber config's variant names, checked to include the test
	// and production variants.
	Variants []string `json:"variants"`
}

// Settings are a repository's pipeline settings (.pipeline/config.yaml), defaults
// filled in.
type Settings struct {
	// Blubber is the Blubber config's path in the repository.
	Blubber string `json:"blubber"`
	// TestVariant is built and its entrypoint run as the tests. Empty: no tests.
	TestVariant string `json:"testVariant"`
	// ProductionVariant is built, deployed, tested and published.
	ProductionVariant string `json:"productionVariant"`
	// Image is the published image's name under the registry, e.g. "hello".
	Image string `json:"image"`
	// Chart is a chart directory in the repository; empty means conveyor's
	// charts/service.
	Chart string `json:"chart"`
	// Values are Helm values for the isolated deploy, as JSON-compatible maps.
	Values map[string]any `json:"values,omitempty"`
	// ServicePort is the Service port the e2e checks call.
	ServicePort int `json:"servicePort"`
	// E2E are the smoke checks.
	E2E []Check `json:"e2e,omitempty"`
}

// Check is one smoke check: an HTTP request and what the answer must be.
type Check struct {
	Name               string `json:"name"`
	Method             string `json:"method,omitempty"`
	Path               string `json:"path"`
	ExpectStatus       int    `json:"expectStatus,omitempty"`
	ExpectBodyContains string `json:"expectBodyContains,omitempty"`
}

// BuildVariantInput builds one variant of a source.
type BuildVariantInput struct {
	Source  Source `json:"source"`
	Blubber string `json:"blubber"`
	Variant string `json:"variant"`
	// Push, when set, is where to push the image: repository:tag relative to the
	// configured registry (e.g. "candidates/hello:pipeline-1234-2-ab12cd"); empty
	// builds into buildkitd's cache only.
	Push string `json:"push,omitempty"`
}

// BuildVariantOutput is the built image.
type BuildVariantOutput struct {
	// Digest is the pushed manifest's digest; empty when not pushed.
	Digest string `json:"digest,omitempty"`
	// Ref is the pushed image by digest, registry included:
	// localhost:5000/candidates/hello@sha256:....
	Ref string `json:"ref,omitempty"`
	// Duration is how long the solve took.
	Duration time.Duration `json:"duration"`
}

// RunTestsInput runs a variant's entrypoint.
type RunTestsInput struct {
	Source  Source `json:"source"`
	Blubber string `json:"blubber"`
	Variant string `json:"variant"`
}

// RunTestsOutput is the tests' output tail.
type RunTestsOutput struct {
	Output string `json:"output"`
}

// Release names one isolated deploy.
type Release struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// DeployCandidateInput installs Image (by digest) as Release.
type DeployCandidateInput struct {
	Release  Release  `json:"release"`
	Source   Source   `json:"source"`
	Settings Settings `json:"settings"`
	// Image is repository@sha256:... of the candidate.
	Image string `json:"image"`
	// Labels mark the namespace (workflow id, project) so leftovers can be found.
	Labels map[string]string `json:"labels,omitempty"`
}

// DeployCandidateOutput says where the release answers.
type DeployCandidateOutput struct {
	// ServiceURL is http://ClusterIP:port of the release's Service.
	ServiceURL string `json:"serviceURL"`
	// Revision is the Helm release revision.
	Revision int `json:"revision"`
}

// HelmTestInput runs the release's test hooks.
type HelmTestInput struct {
	Release Release `json:"release"`
}

// RunE2EInput runs checks against a base URL.
type RunE2EInput struct {
	BaseURL string  `json:"baseURL"`
	Checks  []Check `json:"checks"`
}

// RunE2EOutput reports each check.
type RunE2EOutput struct {
	Results []CheckResult `json:"results"`
}

// CheckResult is one check's outcome.
type CheckResult struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// TeardownInput removes a release and its namespace.
type TeardownInput struct {
	Release Release `json:"release"`
}

// PublishImageInput copies a tested digest into the public repository under tags.
type PublishImageInput struct {
	// From is the candidate by digest, registry included (BuildVariantOutput.Ref).
	From string `json:"from"`
	// Repository is the public repository relative to the configured registry,
	// e.g. "hello".
	Repository string `json:"repository"`
	// Tags are applied in order; each points at the same digest.
	Tags []string `json:"tags"`
}

// PublishImageOutput lists the published references.
type PublishImageOutput struct {
	Digest string   `json:"digest"`
	Refs   []string `json:"refs"`
}
