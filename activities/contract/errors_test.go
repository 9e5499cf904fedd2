package contract

import "testing"

// TestErrorTypesAreStable pins the error types' values: recorded histories,
// retry policies and the UI match on them, so a changed value is a breaking
// change, never a tidy-up.
func TestErrorTypesAreStable(t *testing.T) {
	for got, want := range map[string]string{
		ErrInvalidConfig:       "InvalidPipelineConfig",
		ErrInvalidBlubber:      "InvalidBlubberConfig",
		ErrTestsFailed:         "TestsFailed",
		ErrBuildFailed:         "BuildStepFailed",
		ErrE2EFailed:           "E2EFailed",
		ErrHelmTest:            "HelmTestFailed",
		ErrChart:               "InvalidChart",
		ErrUntrustedChart:      "UntrustedChart",
		ErrSource:              "SourceUnavailable",
		ErrCandidateNotReady:   "CandidateNotReady",
		ErrTagConflict:         "TagConflict",
		ErrCandidateMissing:    "CandidateMissing",
		ErrInvalidPublish:      "InvalidPublishInput",
		ErrGerritRejected:      "GerritReviewRejected",
		ErrPromotionConfig:     "InvalidPromotionConfig",
		ErrPromotionInput:      "InvalidPromotionInput",
		ErrSmokeFailed:         "SmokeCheckFailed",
		ErrReleaseNotReady:     "ReleaseNotReady",
		ErrMigrationTaskFailed: "MigrationTaskFailed",
		ErrServerError:         "DestinationServerError",
		ErrVerifyFailed:        "MigrationVerifyFailed",
		ErrMigrationInput:      "InvalidMigrationInput",
		ErrInvalidPool:         "InvalidPool",
		ErrPoolUnavailable:     "PoolUnavailable",
		ErrPromotionRejected:   "PromotionRejected",
		ErrPromotionTimedOut:   "PromotionTimedOut",
		ErrPromotionRolledBack: "PromotionRolledBack",
		ErrBatteryFailed:       "BatteryFailed",
		ErrVMStepFailed:        "VMMigrationStepFailed",
	} {
		if got != want {
			t.Errorf("error type %q, want %q", got, want)
		}
	}
}
