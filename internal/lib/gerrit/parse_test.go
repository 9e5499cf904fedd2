package gerrit

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// streamLines are testdata/stream/events.jsonl, one event a line.
func streamLines(t testing.TB) [][]byte {
	t.Helper()
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(readSample(t, "stream/events.jsonl")))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, append([]byte(nil), sc.Bytes()...))
	}
	return lines
}

// summary is what the triggers read of an event.
type summary struct {
	typ, project, branch, changeRef, changeID, revision, key string
	recheck                                                  bool
}

func summarize(e Event) summary {
	return summary{e.Type, e.ProjectName(), e.Branch(), e.ChangeRef(), e.Change.ID, e.PatchSet.Revision, e.Key(), e.IsRecheck()}
}

const (
	changeID = "I8473b95934b5732ac55d26311a706c9c2bde9940"
	ps2      = "3f1c2a9d8e7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d"
	ps3      = "4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e"
	project  = "mediawiki/services/hello"
)

func TestParseWebhookBodies(t *testing.T) {
	for _, tc := range []struct {
		file string
		want summary
	}{
		{"webhook/patchset-created.json", summary{TypePatchsetCreated, project, "main", "refs/changes/34/1234/2", changeID, ps2, "t1767225601", false}},
		{"webhook/change-merged.json", summary{TypeChangeMerged, project, "main", "refs/changes/34/1234/3", changeID, ps3, "t1767232800", false}},
		{"webhook/comment-added-recheck.json", summary{TypeCommentAdded, project, "main", "refs/changes/34/1234/2", changeID, ps2, "t1767226000", true}},
		{"webhook/ref-updated.json", summary{TypeRefUpdated, project, "", "", "", "", "t1767240000", false}},
		{"webhook/reviewer-added.json", summary{"reviewer-added", project, "main", "refs/changes/34/1234/2", changeID, ps2, "t1767226100", false}},
	} {
		e, err := ParseEvent(readSample(t, tc.file))
		if err != nil {
			t.Errorf("%s: %v", tc.file, err)
			continue
		}
		if got := summarize(e); got != tc.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.file, got, tc.want)
		}
	}
}

func TestParseWebhookDetails(t *testing.T) {
	e, err := ParseEvent(readSample(t, "webhook/comment-added-recheck.json"))
	if err != nil {
		t.Fatal(err)
	}
	if e.Account.Username != "grace" || len(e.Approvals) != 2 || e.Approvals[1].Type != "Verified" ||
		e.Approvals[1].Value != -1 || e.Approvals[1].OldValue == nil || *e.Approvals[1].OldValue != 0 {
		t.Errorf("author %+v approvals %+v", e.Account, e.Approvals)
	}
	m, err := ParseEvent(readSample(t, "webhook/change-merged.json"))
	if err != nil {
		t.Fatal(err)
	}
	if m.NewRev != "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f" || m.Account.Username != "grace" || m.PatchSet.Kind != "TRIVIAL_REBASE" {
		t.Errorf("merged: newRev %q submitter %+v kind %q", m.NewRev, m.Account, m.PatchSet.Kind)
	}
	r, err := ParseEvent(readSample(t, "webhook/ref-updated.json"))
	if err != nil {
		t.Fatal(err)
	}
	if r.RefUpdate.RefName != "refs/tags/v1.4.0" || r.RefUpdate.OldRev != strings.Repeat("0", 40) {
		t.Errorf("ref-updated: %+v", r.RefUpdate)
	}
}

func TestParseStreamEvents(t *testing.T) {
	lines := streamLines(t)
	want := []summary{
		{TypePatchsetCreated, project, "main", "refs/changes/34/1234/2", changeID, ps2, "t1767225601", false},
		// Numbers as strings, refName without refs/heads/.
		{TypeCommentAdded, project, "main", "refs/changes/34/1234/2", changeID, ps2, "t1767226000", true},
		{TypeDroppedOutput, "", "", "", "", "", "t1767226500", false},
		{TypeChangeMerged, project, "master", "refs/changes/34/1234/3", changeID, ps3, "t1767232800", false},
		{TypeRefUpdated, project, "", "", "", "", "t1767232801", false},
		// No eventCreatedOn: the key is a fingerprint of the line; "recheck" inside
		// a sentence is not a recheck.
		{TypeCommentAdded, project, "", "refs/changes/34/1234/2", "", "", "", false},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d", len(lines), len(want))
	}
	for i, line := range lines {
		e, err := ParseEvent(line)
		if err != nil {
			t.Errorf("line %d: %v", i+1, err)
			continue
		}
		got := summarize(e)
		if want[i].key == "" {
			if !strings.HasPrefix(got.key, "h") || len(got.key) != 17 {
				t.Errorf("line %d: key %q, want a fingerprint", i+1, got.key)
			}
			got.key = ""
		}
		if got != want[i] {
			t.Errorf("line %d:\n got %+v\nwant %+v", i+1, got, want[i])
		}
	}
	r, _ := ParseEvent(lines[4])
	if FullRef(r.RefUpdate.RefName) != "refs/heads/master" {
		t.Errorf("FullRef(%q) = %q", r.RefUpdate.RefName, FullRef(r.RefUpdate.RefName))
	}
}

func TestParseIsTolerant(t *testing.T) {
	for _, tc := range []struct {
		body string
		want summary
	}{
		{`{}`, summary{}},
		{`{"type":"patchset-created"}`, summary{typ: TypePatchsetCreated}},
		// Wrong types are skipped, not errors.
		{`{"type":"patchset-created","change":"oops","patchSet":[1,2],"eventCreatedOn":"soon"}`, summary{typ: TypePatchsetCreated}},
		{`{"type":"patchset-created","change":{"project":"p","number":"12","branch":"refs/heads/stable"},"patchSet":{"number":3.0},"eventCreatedOn":"1700000000"}`,
			summary{TypePatchsetCreated, "p", "stable", "refs/changes/12/12/3", "", "", "t1700000000", false}},
		// Only the patchset ref: the numbers come from it.
		{`{"type":"patchset-created","project":"p","patchSet":{"ref":"refs/changes/05/105/7"}}`,
			summary{TypePatchsetCreated, "p", "", "refs/changes/05/105/7", "", "", "", false}},
		// Negative or fractional numbers are not numbers.
		{`{"type":"patchset-created","change":{"number":-4},"patchSet":{"number":1.5}}`, summary{typ: TypePatchsetCreated}},
		{`{"type":"comment-added","comment":"RECHECK  "}`, summary{typ: TypeCommentAdded, recheck: true}},
	} {
		e, err := ParseEvent([]byte(tc.body))
		if err != nil {
			t.Errorf("%s: %v", tc.body, err)
			continue
		}
		got := summarize(e)
		if tc.want.key == "" {
			got.key = ""
		}
		if got != tc.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.body, got, tc.want)
		}
	}
}

func TestParseRefusesWhatIsNotAnObject(t *testing.T) {
	for _, body := range []string{``, `{`, `[]`, `"x"`, `null`, `42`, `{"type":"a"} {"type":"b"}`, `{"type":"a"}x`, "\xff"} {
		if _, err := ParseEvent([]byte(body)); err == nil {
			t.Errorf("ParseEvent(%q) succeeded", body)
		}
	}
	if _, err := ParseEvent([]byte(" {\"type\":\"a\"}\n")); err != nil {
		t.Errorf("surrounding whitespace refused: %v", err)
	}
}

func TestKeyIdentifiesOneDelivery(t *testing.T) {
	body := []byte(`{"type":"comment-added","comment":"recheck","change":{"number":1},"patchSet":{"number":1}}`)
	a, _ := ParseEvent(body)
	b, _ := ParseEvent(body)
	c, _ := ParseEvent([]byte(`{"type":"comment-added","comment":"recheck ","change":{"number":1},"patchSet":{"number":1}}`))
	if a.Key() == "" || a.Key() != b.Key() || a.Key() == c.Key() {
		t.Errorf("keys %q %q %q: want the same body to give the same key and another body another", a.Key(), b.Key(), c.Key())
	}
}

// TestQuotedOrIndentedRecheckIsNotACommand: a "recheck" that Gerrit shows as a
// quote or as preformatted text (test output in a review message) does not
// trigger; one the reviewer typed on a line of its own does.
func TestQuotedOrIndentedRecheckIsNotACommand(t *testing.T) {
	for comment, want := range map[string]bool{
		"Patch Set 2:\n\nrecheck":                      true,
		"Patch Set 2:\n\nRecheck \t":                   true,
		"Patch Set 2:\n\nlooks flaky\nrecheck\nthanks": true,
		"Patch Set 2: Verified-1\n\n> recheck":         false,
		"Patch Set 2: Verified-1\n\n>recheck":          false,
		"Patch Set 2: Verified-1\n\n  recheck":         false,
		"Patch Set 2: Verified-1\n\n\trecheck":         false,
		"Patch Set 2:\n\nplease recheck":               false,
	} {
		if got := IsRecheckComment(comment); got != want {
			t.Errorf("IsRecheckComment(%q) = %v, want %v", comment, got, want)
		}
	}
}

// TestOwnComments: conveyor's review messages are recognised by their tag or by
// their text, whatever their lines say.
func TestOwnComments(t *testing.T) {
	own := Event{Type: TypeCommentAdded, Comment: "Patch Set 2: Verified-1\n\n" + MessagePrefix + "verification failed at step run-tests.\n\nrecheck"}
	tagged := Event{Type: TypeCommentAdded, Tag: Tag, Comment: "Patch Set 2:\n\nrecheck"}
	human := Event{Type: TypeCommentAdded, Comment: "Patch Set 2:\n\nrecheck"}
	if !own.IsOwnComment() || !tagged.IsOwnComment() || human.IsOwnComment() {
		t.Errorf("own %v, tagged %v, human %v: want true, true, false", own.IsOwnComment(), tagged.IsOwnComment(), human.IsOwnComment())
	}
	e, err := ParseEvent([]byte(`{"type":"comment-added","tag":"autogenerated:conveyor","comment":"Patch Set 1:\n\nrecheck"}`))
	if err != nil || e.Tag != Tag || !e.IsOwnComment() {
		t.Errorf("parsed %+v, %v: want the tag read", e, err)
	}
}
