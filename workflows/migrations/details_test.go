package migrations

import (
	"strings"
	"testing"

	"github.com/wikimedia/conveyor/workflows/internal/wftest"
)

// TestStageDetailsSayWhatMovesItOn: an open stage names each task a person must
// do and the command for it; a stage awaiting approval names the update.
func TestStageDetailsSayWhatMovesItOn(t *testing.T) {
	st := StageStatus{Name: "procure", Index: 0, State: StageOpen,
		Tasks: []TaskStatus{{Name: "hardware ordered", State: TaskOpen}, {Name: "racks", State: TaskDone}, {Name: "dns", Automated: true, State: TaskOpen}}}
	got := stageDetails(st, "codfw1dev", "codfw2dev", "dns")
	wftest.WantContains(t, "open stage's details", got,
		"**Stage 1, procure**, of the migration from codfw1dev to codfw2dev: **open**",
		"Running the automated task **dns**.",
		"- to do by a person: **hardware ordered**",
		"`conveyor migrate task-done --from codfw1dev --to codfw2dev --task \"hardware ordered\" --by NAME`")
	if strings.Contains(got, "racks") {
		t.Errorf("a done task is listed as to do:\n%s", got)
	}
	st.State = StageAwaitingApproval
	wftest.WantContains(t, "awaiting approval's details", stageDetails(st, "codfw1dev", "codfw2dev", ""),
		"update `approve-stage` with `{\"stage\": \"procure\"",
		"conveyor migrate approve --from codfw1dev --to codfw2dev --approver NAME")
}
