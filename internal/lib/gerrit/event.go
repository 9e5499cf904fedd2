// Package gerrit reads Gerrit's events in the three shapes they reach conveyor: the
// JSON the webhooks plugin POSTs, the JSON lines of `gerrit stream-events`, and the
// command-line arguments the hooks plugin gives its scripts. It has no Temporal in
// it: internal/client/triggers decides what an event starts.
//
// Reading is tolerant, because the shapes drift between Gerrit versions and
// between the two JSON serialisers: numbers may be strings ("number":"1234"),
// refName may be "main" or "refs/heads/main", any field may be missing or have an
// unexpected type. A field that cannot be read is left at its zero value; only a
// body that is not a JSON object at all is an error.
package gerrit

import (
	"fmt"
	"strconv"
	"strings"
)

// Event types conveyor acts on or recognises.
const (
	TypePatchsetCreated = "patchset-created"
	TypeChangeMerged    = "change-merged"
	TypeCommentAdded    = "comment-added"
	TypeRefUpdated      = "ref-updated"
	// TypeDroppedOutput says stream-events dropped events for a slow reader.
	TypeDroppedOutput = "dropped-output"
)

// Account is a Gerrit user as events carry it.
type Account struct {
	Name     string `json:"name,omitempty"`
	Email    string `json:"email,omitempty"`
	Username string `json:"username,omitempty"`
}

// Change is the change an event is about.
type Change struct {
	Project string `json:"project,omitempty"`
	// Branch is the target branch as Gerrit spells it ("main" or, in some
	// versions, "refs/heads/main"); see Event.Branch for the short name.
	Branch string `json:"branch,omitempty"`
	Topic  string `json:"topic,omitempty"`
	// ID is the Change-Id, I followed by 40 hex digits.
	ID      string  `json:"id,omitempty"`
	Number  int     `json:"number,omitempty"`
	Subject string  `json:"subject,omitempty"`
	Owner   Account `json:"owner,omitzero"`
	URL     string  `json:"url,omitempty"`
	Status  string  `json:"status,omitempty"`
	WIP     bool    `json:"wip,omitempty"`
	Private bool    `json:"private,omitempty"`
}

// PatchSet is one revision of a change.
type PatchSet struct {
	Number int `json:"number,omitempty"`
	// Revision is the commit hash.
	Revision string   `json:"revision,omitempty"`
	Parents  []string `json:"parents,omitempty"`
	// Ref is refs/changes/NN/NNNN/P.
	Ref      string  `json:"ref,omitempty"`
	Uploader Account `json:"uploader,omitzero"`
	Author   Account `json:"author,omitzero"`
	// Kind is e.g. REWORK, TRIVIAL_REBASE, NO_CODE_CHANGE.
	Kind string `json:"kind,omitempty"`
}

// RefUpdate is the ref a ref-updated event is about.
type RefUpdate struct {
	OldRev  string `json:"oldRev,omitempty"`
	NewRev  string `json:"newRev,omitempty"`
	RefName string `json:"refName,omitempty"`
	Project string `json:"project,omitempty"`
}

// Approval is one label vote of a comment-added event (or a hook's --Label score).
type Approval struct {
	Type     string `json:"type,omitempty"`
	Value    int    `json:"value"`
	OldValue *int   `json:"oldValue,omitempty"`
}

// Event is one Gerrit event, whichever shape it came in.
type Event struct {
	Type string `json:"type"`
	// CreatedOn is eventCreatedOn, seconds since the epoch; 0 when missing.
	CreatedOn int64     `json:"eventCreatedOn,omitempty"`
	Change    Change    `json:"change,omitzero"`
	PatchSet  PatchSet  `json:"patchSet,omitzero"`
	RefUpdate RefUpdate `json:"refUpdate,omitzero"`
	// Account is who caused the event: uploader, submitter or author.
	Account Account `json:"account,omitzero"`
	// Comment is comment-added's comment, as Gerrit sends it ("Patch Set 2:\n\nrecheck").
	Comment   string     `json:"comment,omitempty"`
	Approvals []Approval `json:"approvals,omitempty"`
	// NewRev is change-merged's resulting commit on the branch.
	NewRev string `json:"newRev,omitempty"`
	// Project and RefName are the top-level fields, read only as fallbacks.
	Project string `json:"project,omitempty"`
	RefName string `json:"refName,omitempty"`
	// fingerprint identifies the exact body (or hook arguments) the event was read
	// from, for Key when the event carries no creation time.
	fingerprint string
}

// ProjectName is the project the event is about: change.project, else the
// top-level project, else refUpdate.project.
func (e Event) ProjectName() string {
	for _, p := range []string{e.Change.Project, e.Project, e.RefUpdate.Project} {
		if p = strings.TrimSpace(p); p != "" {
			return p
		}
	}
	return ""
}

// Branch is the short name of the change's target branch ("main"), from
// change.branch or else the top-level refName; "" when neither names a branch.
func (e Event) Branch() string {
	if b := ShortBranch(e.Change.Branch); b != "" {
		return b
	}
	if e.Type == TypeRefUpdated {
		return ""
	}
	return ShortBranch(e.RefName)
}

// ShortBranch turns "refs/heads/main" or "main" into "main"; another full ref
// (refs/tags/v1, refs/meta/config) is not a branch and gives "".
func ShortBranch(ref string) string {
	ref = strings.TrimSpace(ref)
	if b, ok := strings.CutPrefix(ref, "refs/heads/"); ok {
		return b
	}
	if strings.HasPrefix(ref, "refs/") {
		return ""
	}
	return ref
}

// FullRef turns a short branch name into refs/heads/NAME and leaves full refs
// (refs/...) as they are.
func FullRef(ref string) string {
	ref = strings.TrimSpace(ref)
	if ref == "" || strings.HasPrefix(ref, "refs/") {
		return ref
	}
	return "refs/heads/" + ref
}

// ChangeRef is the patchset's ref, refs/changes/NN/NNNN/P, built from the change
// and patchset numbers (patchSet.ref when the numbers are missing); "" when
// neither is known.
func (e Event) ChangeRef() string {
	if e.Change.Number > 0 && e.PatchSet.Number > 0 {
		return MakeChangeRef(e.Change.Number, e.PatchSet.Number)
	}
	if c, p, ok := ParseChangeRef(e.PatchSet.Ref); ok {
		return MakeChangeRef(c, p)
	}
	return ""
}

// ChangeAndPatchset are the change and patchset numbers, from the numbers or from
// patchSet.ref.
func (e Event) ChangeAndPatchset() (change, patchset int) {
	change, patchset = e.Change.Number, e.PatchSet.Number
	if c, p, ok := ParseChangeRef(e.PatchSet.Ref); ok {
		if change <= 0 {
			change = c
		}
		if patchset <= 0 {
			patchset = p
		}
	}
	return change, patchset
}

// MakeChangeRef is refs/changes/NN/CHANGE/PATCHSET, NN the change's last two digits.
func MakeChangeRef(change, patchset int) string {
	return fmt.Sprintf("refs/changes/%02d/%d/%d", change%100, change, patchset)
}

// ParseChangeRef reads refs/changes/NN/CHANGE/PATCHSET.
func ParseChangeRef(ref string) (change, patchset int, ok bool) {
	parts := strings.Split(ref, "/")
	if len(parts) != 5 || parts[0] != "refs" || parts[1] != "changes" {
		return 0, 0, false
	}
	c, err1 := strconv.Atoi(parts[3])
	p, err2 := strconv.Atoi(parts[4])
	if err1 != nil || err2 != nil || c <= 0 || p <= 0 {
		return 0, 0, false
	}
	return c, p, true
}

// IsCommit says whether rev is a full commit hash (40 hex digits, or 64 for
// SHA-256 repositories), as refUpdate.newRev and patchSet.revision are.
func IsCommit(rev string) bool {
	if len(rev) != 40 && len(rev) != 64 {
		return false
	}
	for _, c := range rev {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// IsRecheck says whether a comment-added event asks for the change to be verified
// again: a line of its comment, after Gerrit's "Patch Set N:" header, is
// "recheck" (any case).
func (e Event) IsRecheck() bool {
	if e.Type != TypeCommentAdded {
		return false
	}
	return IsRecheckComment(e.Comment)
}

// IsRecheckComment says whether comment contains a line that is just "recheck".
func IsRecheckComment(comment string) bool {
	for line := range strings.SplitSeq(comment, "\n") {
		if strings.EqualFold(strings.TrimSpace(line), "recheck") {
			return true
		}
	}
	return false
}

// Key identifies the event for deduplication: deliveries of one event (the
// webhooks plugin's retries, a replayed stream) have the same key, two events
// have different ones. It is eventCreatedOn when the event has one, else a
// fingerprint of the exact body it was read from.
func (e Event) Key() string {
	if e.CreatedOn > 0 {
		return "t" + strconv.FormatInt(e.CreatedOn, 10)
	}
	if e.fingerprint != "" {
		return "h" + e.fingerprint
	}
	return ""
}
