package migrations

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wikimedia/conveyor/workflows"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/wikimedia/conveyor/activities/contract"
)

// Update and query of the stage-5 cleanup.
const (
	// UpdateApproveCleanup lets Cleanup delete the leftovers it listed; it takes a
	// CleanupApproval.
	UpdateApproveCleanup = "approve-cleanup"
	// QueryCleanup returns Cleanup's CleanupReport so far.
	QueryCleanup = "cleanup"
)

// Cleanup states.
const (
	CleanupListing  = "listing"
	CleanupAwaiting = "awaiting-approval"
	CleanupDeleting = "deleting"
	CleanupDone     = "done"
)

// CleanupInput is the stage-5 cleanup of the legacy deployment.
type CleanupInput struct {
	// From is the legacy deployment, whose leftovers go; To is the new one.
	From string `json:"from"`
	To   string `json:"to"`
	// Projects limits the cleanup to these Keystone projects; empty means every
	// project but the migration account's own and "service".
	Projects []string `json:"projects,omitempty"`
	// ReminderEvery is how often the approval is asked for again; zero means
	// DefaultMigrationReminderEvery.
	ReminderEvery time.Duration `json:"reminderEvery,omitempty"`
	// DryRun lists the leftovers and says they would be deleted; nothing is.
	DryRun bool `json:"dryRun,omitempty"`
	// Servers names (by id, or by name when only one server in scope has it)
	// servers to delete although they are not verified migrated. Without it a
	// server is deleted only when its migrated-to marker names an ACTIVE server
	// of To that agrees (contract.Leftover.MigratedTo); the others are skipped.
	Servers []string `json:"servers,omitempty"`
}

// CleanupApproval is UpdateApproveCleanup's argument.
type CleanupApproval struct {
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"`
	// Keep lists ids of listed leftovers not to delete.
	Keep []string `json:"keep,omitempty"`
}

// CleanupReport is QueryCleanup's answer and Cleanup's result: the final report.
type CleanupReport struct {
	From   string `json:"from"`
	State  string `json:"state"`
	DryRun bool   `json:"dryRun,omitempty"`
	// Listed is what was found; Kept what the approval kept.
	Listed []contract.Leftover `json:"listed"`
	Kept   []contract.Leftover `json:"kept,omitempty"`
	// Deleted were deleted, Gone had gone already.
	Deleted []contract.Leftover `json:"deleted,omitempty"`
	Gone    []contract.Leftover `json:"gone,omitempty"`
	// Skipped are the servers not deleted because they are not verified
	// migrated and the input does not name them, each with its Unverified reason
	// (at the listing, or when DeleteLeftovers verified it again).
	Skipped []contract.Leftover `json:"skipped,omitempty"`
	// Remaining is what the deployment still holds after the deletion (the kept
	// leftovers and anything created since the listing).
	Remaining  []contract.Leftover `json:"remaining,omitempty"`
	ApprovedBy string              `json:"approvedBy,omitempty"`
	Reason     string              `json:"reason,omitempty"`
	Approved   time.Time           `json:"approved,omitzero"`
	Reminders  int                 `json:"reminders,omitempty"`
	Summary    string              `json:"summary"`
}

// versionCleanupVerified marks Cleanup runs that end without asking for an
// approval when every leftover is skipped (a server not verified migrated and
// not named). Runs from before still ask, and delete nothing they skip.
const versionCleanupVerified = "cleanup-verified-migrated"

var cleanupDeleteOptions = workflow.ActivityOptions{
	TaskQueue:           workflows.TaskQueueMigrate,
	StartToCloseTimeout: 2 * time.Hour,
	HeartbeatTimeout:    5 * time.Minute,
	RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 10 * time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute, MaximumAttempts: 10},
}

// Cleanup lists the servers and images left in the legacy deployment
// (ListLeftovers), asks for approval (MigrationNotify, again every ReminderEvery)
// and waits for UpdateApproveCleanup, deletes the approved leftovers
// (DeleteLeftovers), lists again and returns the final report. Nothing is deleted
// without approval; a dry run only lists. A server is a leftover to delete only
// when it is verified migrated to To (its migrated-to marker names an ACTIVE
// server there that agrees), or when the input's Servers names it; every other
// server is skipped and reported with why, and DeleteLeftovers verifies each
// unnamed server again before it deletes it.
func Cleanup(ctx workflow.Context, in CleanupInput) (CleanupReport, error) {
	rep := CleanupReport{From: in.From, State: CleanupListing, DryRun: in.DryRun}
	switch {
	case in.From == "" || in.To == "":
		return rep, temporal.NewNonRetryableApplicationError("from and to must name the deployments, e.g. from eqiad1 to eqiad2", contract.ErrInvalidConfig, nil)
	case in.ReminderEvery < 0:
		return rep, temporal.NewNonRetryableApplicationError("reminderEvery must not be negative", contract.ErrInvalidConfig, nil)
	}
	verifiedVersion := workflow.GetVersion(ctx, versionCleanupVerified, workflow.DefaultVersion, 1)
	every := in.ReminderEvery
	if every == 0 {
		every = DefaultMigrationReminderEvery
	}
	approved := false
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryCleanup, func() (CleanupReport, error) { return rep, nil },
		workflow.QueryHandlerOptions{Description: "The leftovers listed, kept, deleted and remaining"}); err != nil {
		return rep, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateApproveCleanup, func(ctx workflow.Context, a CleanupApproval) (CleanupReport, error) {
		rep.ApprovedBy, rep.Reason, rep.Approved = a.By, a.Reason, workflow.Now(ctx)
		for _, l := range rep.Listed {
			if slices.Contains(a.Keep, l.ID) {
				rep.Kept = append(rep.Kept, l)
			}
		}
		approved = true
		return rep, nil
	}, workflow.UpdateHandlerOptions{Validator: func(a CleanupApproval) error {
		switch {
		case strings.TrimSpace(a.By) == "":
			return errors.New("by is empty: say who approves the deletion")
		case rep.State != CleanupAwaiting || approved:
			return fmt.Errorf("the cleanup is %s: it takes an approval only while awaiting one", rep.State)
		}
		for _, id := range a.Keep {
			if !slices.ContainsFunc(rep.Listed, func(l contract.Leftover) bool { return l.ID == id }) {
				return fmt.Errorf("keep names %q, which is not a listed leftover: query %s for the list", id, QueryCleanup)
			}
		}
		return nil
	}, Description: "Let the cleanup delete the leftovers it listed: {by, reason, keep: [ids not to delete]}"}); err != nil {
		return rep, err
	}

	list := func() ([]contract.Leftover, error) {
		var out contract.LeftoversOutput
		err := workflows.Execute(workflow.WithActivityOptions(ctx, migrationCheckOptions), contract.ListLeftovers,
			contract.LeftoversInput{Deployment: in.From, Projects: in.Projects, Destination: in.To}).Get(ctx, &out)
		return out.Resources, err
	}
	var err error
	if rep.Listed, err = list(); err != nil {
		return rep, fmt.Errorf("listing the leftovers of %s: %w", in.From, err)
	}
	if len(rep.Listed) == 0 {
		rep.State, rep.Summary = CleanupDone, fmt.Sprintf("%s has no leftovers%s", in.From, projectsScope(in.Projects))
		return rep, nil
	}
	if err := nameServers(rep.Listed, in.Servers); err != nil {
		return rep, err
	}
	var todo []contract.Leftover
	todo, rep.Skipped = splitLeftovers(rep.Listed)
	names := leftoverNames(todo)
	skipped := skippedText(rep.Skipped)
	switch {
	case in.DryRun:
		rep.State = CleanupDone
		rep.Summary = fmt.Sprintf("dry run: would delete %d leftover(s) of %s after approval: %s%s", len(todo), in.From, cmp.Or(strings.Join(names, "; "), "none"), skipped)
		return rep, nil
	case len(todo) == 0 && verifiedVersion != workflow.DefaultVersion:
		rep.State = CleanupDone
		rep.Summary = fmt.Sprintf("nothing of %s to delete%s", in.From, skipped)
		return rep, nil
	}
	rep.State = CleanupAwaiting
	rep.Summary = fmt.Sprintf("%d leftover(s) of %s await approval (%s): %s%s", len(todo), in.From, UpdateApproveCleanup, strings.Join(names, "; "), skipped)
	notify := func(kind, msg string) {
		err := workflows.Execute(workflow.WithActivityOptions(ctx, projectNotifyOptions), contract.MigrationNotify,
			contract.MigrationNotifyInput{From: in.From, To: in.To, Stage: "cleanup", Kind: kind, Open: names, Message: msg}).Get(ctx, nil)
		if err != nil {
			workflow.GetLogger(ctx).Error("Sending a cleanup notification failed", "error", err)
		}
	}
	reportCleanup(ctx, rep.Summary)
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("**Cleanup of %s**: %s\n\nWaiting for a person: approve the deletion with update `%s` and `{\"by\": \"<your name>\", \"reason\": \"...\"}` (optionally `\"keep\"`: ids of leftovers not to delete). Nothing is deleted before.\n",
		in.From, rep.Summary, UpdateApproveCleanup))
	notify(contract.NotifyCleanup, rep.Summary)
	for !approved {
		ok, err := workflow.AwaitWithTimeout(ctx, every, func() bool { return approved })
		if err != nil {
			return rep, err
		}
		if !ok {
			rep.Reminders++
			notify(contract.NotifyReminder, "reminder: "+rep.Summary)
		}
	}
	rep.State = CleanupDeleting
	var del []contract.Leftover
	for _, l := range todo {
		if !slices.Contains(rep.Kept, l) {
			del = append(del, l)
		}
	}
	reportCleanup(ctx, fmt.Sprintf("deleting %d leftover(s) of %s, approved by %s", len(del), in.From, rep.ApprovedBy))
	var out contract.DeleteLeftoversOutput
	if err := workflows.Execute(workflow.WithActivityOptions(ctx, cleanupDeleteOptions), contract.DeleteLeftovers,
		contract.DeleteLeftoversInput{Deployment: in.From, Resources: del, Destination: in.To}).Get(ctx, &out); err != nil {
		return rep, fmt.Errorf("deleting the leftovers of %s: %w", in.From, err)
	}
	rep.Deleted, rep.Gone = out.Deleted, out.Gone
	rep.Skipped = append(rep.Skipped, out.Skipped...)
	if rep.Remaining, err = list(); err != nil {
		return rep, fmt.Errorf("listing the leftovers of %s again: %w", in.From, err)
	}
	rep.State = CleanupDone
	rep.Summary = fmt.Sprintf("cleanup of %s approved by %s: %d deleted, %d already gone, %d kept, %d skipped, %d remaining%s", in.From, rep.ApprovedBy,
		len(rep.Deleted), len(rep.Gone), len(rep.Kept), len(rep.Skipped), len(rep.Remaining), skippedText(rep.Skipped))
	return rep, workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
}

// reportCleanup shows the cleanup's state on its stage's task, if it has one.
func reportCleanup(ctx workflow.Context, summary string) {
	parent := workflow.GetInfo(ctx).ParentWorkflowExecution
	if parent == nil {
		return
	}
	if err := workflow.SignalExternalWorkflow(ctx, parent.ID, "", SignalTaskProgress, TaskProgress{Summary: summary}).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("Reporting progress to the stage failed", "error", err)
	}
}

// leftoverNames names each leftover, and for a server why it may be deleted.
func leftoverNames(ls []contract.Leftover) []string {
	var names []string
	for _, l := range ls {
		switch {
		case l.Kind != contract.LeftoverServer:
			names = append(names, l.String())
		case l.MigratedTo != "":
			names = append(names, l.String()+" (migrated to "+l.MigratedTo+")")
		default:
			names = append(names, l.String()+" (NOT migrated: "+l.Unverified+"; named in the cleanup's servers)")
		}
	}
	return names
}

// skippedText lists the skipped servers with why, for a summary.
func skippedText(ls []contract.Leftover) string {
	if len(ls) == 0 {
		return ""
	}
	var parts []string
	for _, l := range ls {
		parts = append(parts, l.String()+": "+l.Unverified)
	}
	return fmt.Sprintf("; not deleting %d server(s) not verified migrated (name them in the cleanup's servers to delete them): %s", len(ls), strings.Join(parts, "; "))
}

// nameServers sets Named on the listed servers that names (ids, or names that
// only one listed server has) points at; a name that matches no listed server,
// or several, is an invalid input.
func nameServers(listed []contract.Leftover, names []string) error {
	for _, n := range names {
		var hits []int
		for i, l := range listed {
			if l.Kind == contract.LeftoverServer && l.ID == n {
				hits = []int{i}
				break
			}
			if l.Kind == contract.LeftoverServer && l.Name == n {
				hits = append(hits, i)
			}
		}
		switch len(hits) {
		case 0:
			return temporal.NewNonRetryableApplicationError(fmt.Sprintf("servers names %q, which is no server in the cleanup's scope: give the id or name of a listed server (a dry run lists them)", n), contract.ErrInvalidConfig, nil)
		case 1:
			listed[hits[0]].Named = true
		default:
			var ids []string
			for _, i := range hits {
				ids = append(ids, listed[i].ID)
			}
			return temporal.NewNonRetryableApplicationError(fmt.Sprintf("servers names %q, which %d servers in scope are called (%s): give the id", n, len(hits), strings.Join(ids, ", ")), contract.ErrInvalidConfig, nil)
		}
	}
	return nil
}

// splitLeftovers parts the listed leftovers into those to delete (images,
// servers verified migrated, servers named) and the servers to skip.
func splitLeftovers(listed []contract.Leftover) (todo, skip []contract.Leftover) {
	for _, l := range listed {
		if l.Kind == contract.LeftoverServer && l.MigratedTo == "" && !l.Named {
			if l.Unverified == "" {
				l.Unverified = "not verified migrated"
			}
			skip = append(skip, l)
			continue
		}
		todo = append(todo, l)
	}
	return todo, skip
}

func projectsScope(projects []string) string {
	if len(projects) == 0 {
		return ""
	}
	return " in projects " + strings.Join(projects, ", ")
}
