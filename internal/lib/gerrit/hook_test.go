package gerrit

import (
	"strings"
	"testing"
)

func TestParseHookArgsPatchsetCreated(t *testing.T) {
	args := []string{
		"--change", changeID, "--kind", "REWORK",
		"--change-url", "https://gerrit.example.org/r/c/mediawiki/services/hello/+/1234",
		"--change-owner", "Ada Lovelace (ada@example.org)", "--change-owner-username", "ada",
		"--project", project, "--branch", "main", "--topic", "greetings",
		"--uploader", "Ada Lovelace (ada@example.org)", "--uploader-username", "ada",
		"--commit", ps2, "--patchset", "2",
	}
	e, err := ParseHookArgs(TypePatchsetCreated, args)
	if err != nil {
		t.Fatal(err)
	}
	want := summary{TypePatchsetCreated, project, "main", "refs/changes/34/1234/2", changeID, ps2, "", false}
	got := summarize(e)
	if !strings.HasPrefix(got.key, "h") {
		t.Errorf("key %q, want a fingerprint of the arguments", got.key)
	}
	got.key = ""
	if got != want {
		t.Errorf("\n got %+v\nwant %+v", got, want)
	}
	if e.Account.Username != "ada" || e.PatchSet.Kind != "REWORK" || e.Change.Topic != "greetings" {
		t.Errorf("event %+v", e)
	}
}

func TestParseHookArgsOtherEvents(t *testing.T) {
	merged, err := ParseHookArgs(TypeChangeMerged, []string{
		"--change", "1234", "--change-url", "https://gerrit.example.org/r/1234", "--project", project,
		"--branch", "refs/heads/main", "--submitter", "Grace", "--submitter-username", "grace",
		"--commit", ps3, "--newrev", "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f",
	})
	if err != nil {
		t.Fatal(err)
	}
	if merged.Change.Number != 1234 || merged.Branch() != "main" || merged.NewRev == "" || merged.Account.Username != "grace" {
		t.Errorf("change-merged: %+v", merged)
	}

	comment, err := ParseHookArgs(TypeCommentAdded, []string{
		"--change", project + "~main~" + changeID, "--change-url", "https://gerrit.example.org/r/c/mediawiki/services/hello/+/1234",
		"--author", "Grace", "--author-username", "grace", "--commit", ps2, "--patchset=2",
		"--comment", "Patch Set 2: Code-Review+2\n\nrecheck",
		"--Code-Review", "+2", "--Code-Review-oldValue", "0", "--Verified", "-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !comment.IsRecheck() || comment.ChangeRef() != "refs/changes/34/1234/2" || comment.Change.ID != changeID ||
		comment.ProjectName() != project || comment.Branch() != "main" {
		t.Errorf("comment-added: %+v", comment)
	}
	if len(comment.Approvals) != 2 || comment.Approvals[0].Type != "Code-Review" || comment.Approvals[0].Value != 2 ||
		comment.Approvals[0].OldValue == nil || comment.Approvals[1].Value != -1 {
		t.Errorf("approvals %+v", comment.Approvals)
	}

	ref, err := ParseHookArgs(TypeRefUpdated, []string{
		"--oldrev", strings.Repeat("0", 40), "--newrev", ps3, "--refname", "refs/tags/v1.4.0",
		"--project", project, "--submitter", "Release Bot", "--submitter-username", "releasebot",
	})
	if err != nil {
		t.Fatal(err)
	}
	if ref.RefUpdate.RefName != "refs/tags/v1.4.0" || ref.ProjectName() != project || ref.RefUpdate.NewRev != ps3 || ref.Branch() != "" {
		t.Errorf("ref-updated: %+v", ref)
	}
}

func TestParseHookArgsErrors(t *testing.T) {
	for _, tc := range []struct {
		event string
		args  []string
		want  string
	}{
		{"", nil, "no event name"},
		{TypePatchsetCreated, []string{"--change"}, "--change has no value"},
		{TypePatchsetCreated, []string{"stray"}, `"stray" at position 1 is not an option`},
		{TypePatchsetCreated, []string{"--"}, "is not an option"},
	} {
		_, err := ParseHookArgs(tc.event, tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseHookArgs(%q, %q) = %v, want an error containing %q", tc.event, tc.args, err, tc.want)
		}
	}
	// Unknown options are ignored, so a newer Gerrit's extra arguments do no harm.
	if _, err := ParseHookArgs(TypePatchsetCreated, []string{"--new-option", "x", "--change", "5"}); err != nil {
		t.Errorf("unknown option refused: %v", err)
	}
}
