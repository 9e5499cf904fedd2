package gerrit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// ParseEvent reads one event as the webhooks plugin POSTs it or as one line of
// `gerrit stream-events`. It fails only when data is not one JSON object; every
// field is read tolerantly (see the package comment), so an event of an unknown
// type, or one missing its type, parses with whatever it carries.
func ParseEvent(data []byte) (Event, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return Event{}, fmt.Errorf("reading the event: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Event{}, errors.New("reading the event: more than one JSON value")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return Event{}, fmt.Errorf("reading the event: want a JSON object, got %s", jsonKind(v))
	}
	sum := sha256.Sum256(data)
	e := Event{
		Type:        str(m, "type"),
		CreatedOn:   timestamp(m, "eventCreatedOn"),
		Change:      change(obj(m, "change")),
		PatchSet:    patchSet(obj(m, "patchSet")),
		Comment:     str(m, "comment"),
		Tag:         str(m, "tag"),
		NewRev:      str(m, "newRev"),
		Project:     projectName(m["project"]),
		RefName:     str(m, "refName"),
		fingerprint: hex.EncodeToString(sum[:8]),
	}
	if ru := obj(m, "refUpdate"); ru != nil {
		e.RefUpdate = RefUpdate{OldRev: str(ru, "oldRev"), NewRev: str(ru, "newRev"), RefName: str(ru, "refName"), Project: str(ru, "project")}
	}
	for _, who := range []string{"uploader", "submitter", "author", "account"} {
		if a := obj(m, who); a != nil {
			e.Account = account(a)
			break
		}
	}
	for _, a := range arr(m, "approvals") {
		if am, ok := a.(map[string]any); ok {
			ap := Approval{Type: str(am, "type"), Value: signed(am, "value")}
			if _, ok := am["oldValue"]; ok {
				old := signed(am, "oldValue")
				ap.OldValue = &old
			}
			e.Approvals = append(e.Approvals, ap)
		}
	}
	return e, nil
}

func change(m map[string]any) Change {
	if m == nil {
		return Change{}
	}
	return Change{
		Project: projectName(m["project"]),
		Branch:  str(m, "branch"),
		Topic:   str(m, "topic"),
		ID:      str(m, "id"),
		Number:  num(m, "number"),
		Subject: str(m, "subject"),
		Owner:   account(obj(m, "owner")),
		URL:     str(m, "url"),
		Status:  str(m, "status"),
		WIP:     boolean(m, "wip"),
		Private: boolean(m, "private"),
	}
}

func patchSet(m map[string]any) PatchSet {
	if m == nil {
		return PatchSet{}
	}
	ps := PatchSet{
		Number:   num(m, "number"),
		Revision: str(m, "revision"),
		Ref:      str(m, "ref"),
		Uploader: account(obj(m, "uploader")),
		Author:   account(obj(m, "author")),
		Kind:     str(m, "kind"),
	}
	for _, p := range arr(m, "parents") {
		if s, ok := p.(string); ok {
			ps.Parents = append(ps.Parents, s)
		}
	}
	return ps
}

func account(m map[string]any) Account {
	if m == nil {
		return Account{}
	}
	return Account{Name: str(m, "name"), Email: str(m, "email"), Username: str(m, "username")}
}

// projectName reads a project that is a string or, in some serialisations of
// the top-level field, an object {"name": ...}.
func projectName(v any) string {
	switch p := v.(type) {
	case string:
		return p
	case map[string]any:
		return str(p, "name")
	}
	return ""
}

// str reads a string; a number is read as its decimal text.
func str(m map[string]any, key string) string {
	switch v := m[key].(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	}
	return ""
}

// integer reads an integer from a number or a numeric string; whole floats
// ("3.0", 3e2) count, anything else does not.
func integer(m map[string]any, key string) (int64, bool) {
	var s string
	switch v := m[key].(type) {
	case json.Number:
		s = v.String()
	case string:
		s = strings.TrimSpace(v)
	default:
		return 0, false
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false
	}
	return int64(f), true
}

// num reads a positive count or number (change, patchset): 0 when missing,
// unreadable, negative or beyond int32.
func num(m map[string]any, key string) int {
	n, ok := integer(m, key)
	if !ok || n < 0 || n > math.MaxInt32 {
		return 0
	}
	return int(n)
}

// signed reads a vote (-2..+2 usually): 0 when missing or beyond int32.
func signed(m map[string]any, key string) int {
	n, ok := integer(m, key)
	if !ok || n < math.MinInt32 || n > math.MaxInt32 {
		return 0
	}
	return int(n)
}

// timestamp reads seconds since the epoch: 0 when missing, unreadable or negative.
func timestamp(m map[string]any, key string) int64 {
	n, ok := integer(m, key)
	if !ok || n < 0 {
		return 0
	}
	return n
}

func boolean(m map[string]any, key string) bool {
	switch v := m[key].(type) {
	case bool:
		return v
	case string:
		b, _ := strconv.ParseBool(v)
		return b
	}
	return false
}

func obj(m map[string]any, key string) map[string]any {
	o, _ := m[key].(map[string]any)
	return o
}

func arr(m map[string]any, key string) []any {
	a, _ := m[key].([]any)
	return a
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}
