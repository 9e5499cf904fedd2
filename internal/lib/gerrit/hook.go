package gerrit

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// changeIDRE is a Change-Id: I and 40 hex digits.
var changeIDRE = regexp.MustCompile(`^I[0-9a-fA-F]{40}$`)

// ParseHookArgs reads the arguments the hooks plugin gives the script of event,
// e.g. for patchset-created:
//
//	--change <id> --kind <kind> --change-url <url> --change-owner <owner>
//	--change-owner-username <u> --project <p> --branch <b> --topic <t>
//	--uploader <u> --uploader-username <u> --commit <sha1> --patchset <n>
//
// Every option takes one value, as "--name value" or "--name=value"; options it
// does not know are ignored, except that on comment-added "--<Label> <score>"
// becomes an approval (with "--<Label>-oldValue <score>" its old value). The
// change number comes from --change when it is a number, else from the last
// number in --change-url; the Change-Id from --change when it is one (or ends a
// project~branch~Change-Id triplet). Hooks carry no creation time: Event.CreatedOn
// is 0 and Key falls back to a fingerprint of the arguments.
func ParseHookArgs(event string, args []string) (Event, error) {
	event = strings.TrimSpace(event)
	if event == "" {
		return Event{}, fmt.Errorf("hook arguments: no event name (e.g. %s)", TypePatchsetCreated)
	}
	opts := map[string]string{}
	var order []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, ok := strings.CutPrefix(a, "--")
		if !ok || name == "" {
			return Event{}, fmt.Errorf("hook arguments: %q at position %d is not an option (want --name value)", a, i+1)
		}
		value, inline := "", false
		if n, v, found := strings.Cut(name, "="); found {
			name, value, inline = n, v, true
		}
		if !inline {
			if i+1 >= len(args) {
				return Event{}, fmt.Errorf("hook arguments: --%s has no value", name)
			}
			i++
			value = args[i]
		}
		if _, seen := opts[name]; !seen {
			order = append(order, name)
		}
		opts[name] = value
	}

	sum := sha256.Sum256([]byte(event + "\x00" + strings.Join(args, "\x00")))
	e := Event{Type: event, fingerprint: hex.EncodeToString(sum[:8])}
	e.Change = Change{
		Project: opts["project"],
		Branch:  opts["branch"],
		Topic:   opts["topic"],
		URL:     opts["change-url"],
		Owner:   Account{Name: opts["change-owner"], Username: opts["change-owner-username"]},
	}
	e.Change.Number, e.Change.ID = hookChange(opts["change"], opts["change-url"])
	if e.Change.Project == "" || e.Change.Branch == "" {
		// A project~branch~Change-Id triplet names both.
		if parts := strings.Split(opts["change"], "~"); len(parts) == 3 {
			if e.Change.Project == "" {
				e.Change.Project, _ = url.PathUnescape(parts[0])
			}
			if e.Change.Branch == "" {
				e.Change.Branch, _ = url.PathUnescape(parts[1])
			}
		}
	}
	e.PatchSet = PatchSet{Revision: opts["commit"], Kind: opts["kind"]}
	if n, err := strconv.Atoi(strings.TrimSpace(opts["patchset"])); err == nil && n > 0 {
		e.PatchSet.Number = n
	}

	switch event {
	case TypePatchsetCreated:
		e.Account = Account{Name: opts["uploader"], Username: opts["uploader-username"]}
		e.PatchSet.Uploader = e.Account
	case TypeChangeMerged:
		e.Account = Account{Name: opts["submitter"], Username: opts["submitter-username"]}
		e.NewRev = opts["newrev"]
	case TypeCommentAdded:
		e.Account = Account{Name: opts["author"], Username: opts["author-username"]}
		e.Comment = opts["comment"]
		e.Approvals = hookApprovals(opts, order)
	case TypeRefUpdated:
		e.Account = Account{Name: opts["submitter"], Username: opts["submitter-username"]}
		e.RefUpdate = RefUpdate{OldRev: opts["oldrev"], NewRev: opts["newrev"], RefName: opts["refname"], Project: opts["project"]}
		e.Change = Change{}
		e.Project = opts["project"]
	}
	return e, nil
}

// hookOptions are the options of the hooks plugin that are not labels.
var hookOptions = map[string]bool{
	"change": true, "kind": true, "change-url": true, "change-owner": true, "change-owner-username": true,
	"project": true, "branch": true, "topic": true, "uploader": true, "uploader-username": true,
	"commit": true, "patchset": true, "submitter": true, "submitter-username": true, "newrev": true,
	"oldrev": true, "refname": true, "author": true, "author-username": true, "comment": true,
	"reviewer": true, "reviewer-username": true, "abandoner": true, "abandoner-username": true,
	"restorer": true, "restorer-username": true, "reason": true, "old-topic": true, "changer": true,
	"changer-username": true, "new-topic": true, "cmdref": true,
}

// hookApprovals reads "--<Label> <score>" and "--<Label>-oldValue <score>" pairs,
// in the order the labels came.
func hookApprovals(opts map[string]string, order []string) []Approval {
	var out []Approval
	for _, name := range order {
		if hookOptions[name] || strings.HasSuffix(name, "-oldValue") {
			continue
		}
		v, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(opts[name]), "+"))
		if err != nil {
			continue
		}
		a := Approval{Type: name, Value: v}
		if old, ok := opts[name+"-oldValue"]; ok {
			if o, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(old), "+")); err == nil {
				a.OldValue = &o
			}
		}
		out = append(out, a)
	}
	return out
}

// hookChange reads --change (a number, a Change-Id or a triplet) and --change-url
// (…/c/project/+/1234 or …/1234/).
func hookChange(change, changeURL string) (number int, id string) {
	change = strings.TrimSpace(change)
	if n, err := strconv.Atoi(change); err == nil && n > 0 {
		number = n
	}
	parts := strings.Split(change, "~")
	last := parts[len(parts)-1]
	if changeIDRE.MatchString(last) {
		id = last
	} else if n, err := strconv.Atoi(last); err == nil && n > 0 && number == 0 {
		number = n
	}
	if number == 0 && changeURL != "" {
		if u, err := url.Parse(changeURL); err == nil {
			segs := strings.Split(strings.Trim(u.Path, "/"), "/")
			for i := len(segs) - 1; i >= 0; i-- {
				if n, err := strconv.Atoi(segs[i]); err == nil && n > 0 {
					number = n
					break
				}
			}
		}
	}
	return number, id
}
