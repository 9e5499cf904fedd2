package contract

// PostReview posts a pipeline's result on a Gerrit patchset: a Verified vote and a
// message with the failed step, its output tail and a link to the workflow.
var PostReview = Activity[ReviewInput, ReviewOutput]{Name: "PostReview"}

// Outcomes of a verification, as ReviewInput.Outcome says them.
const (
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
	OutcomeCancelled = "cancelled"
)

// ReviewInput says what to post on which patchset. Credentials and the server's
// address come from the worker's configuration, never from here.
type ReviewInput struct {
	// Project, Change and ChangeID name the change: project~number when the
	// number is known, else the Change-Id.
	Project  string `json:"project"`
	Change   int    `json:"change,omitempty"`
	ChangeID string `json:"changeId,omitempty"`
	// Branch completes a project~branch~Change-Id triplet when the number is
	// unknown.
	Branch string `json:"branch,omitempty"`
	// Revision is the patchset's commit; Patchset its number, used when the
	// commit is unknown.
	Revision string `json:"revision,omitempty"`
	Patchset int    `json:"patchset,omitempty"`
	// BuiltCommit is the commit the pipeline built (its source's commit): the
	// review is posted at it, and refused (ErrRevisionNotBuilt) when Revision
	// names another commit. Empty when nothing was built (the source could not
	// be fetched, or a workflow from before the field): the message is posted
	// without a vote.
	BuiltCommit string `json:"builtCommit,omitempty"`
	// Verified is the vote: +1, -1, or 0 for a message without a vote.
	Verified int `json:"verified"`
	// Outcome is OutcomeSucceeded, OutcomeFailed or OutcomeCancelled.
	Outcome string `json:"outcome"`
	// FailedStep names the step that failed, if one did; Output is its output
	// tail or error.
	FailedStep string `json:"failedStep,omitempty"`
	Output     string `json:"output,omitempty"`
	// Summary is one line on what was verified (the candidate image, the checks).
	Summary string `json:"summary,omitempty"`
	// WorkflowID and RunID are the pipeline run the message links to.
	WorkflowID string `json:"workflowId"`
	RunID      string `json:"runId,omitempty"`
}

// ReviewOutput is what Gerrit answered.
type ReviewOutput struct {
	// Labels are the labels Gerrit says it applied.
	Labels map[string]int `json:"labels,omitempty"`
	// URL is where the review was posted.
	URL string `json:"url"`
}
