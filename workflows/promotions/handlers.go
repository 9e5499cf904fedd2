package promotions

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/wikimedia/conveyor/workflows"

	"go.temporal.io/sdk/workflow"
)

// The human side of a promotion: the status query, and each verb as a signal
// (fire and forget: the Web UI's dialog) and as an update (validated first: a
// refusal reaches the sender and nothing is recorded). A signal that would be
// refused is ignored and noted in the status' decisions.

// unnamed is the approver recorded for a pause or rollback signal sent without
// a name.
const unnamed = "(unnamed)"

// promotionDescriptions are what the Web UI lists beside each signal and update.
var promotionDescriptions = map[string]string{
	PromoteApprove:  `Pass the gate before production. {"approver": "<name in the plan>", "reason": "..."}`,
	PromoteReject:   `Stop at the gate; production stays as it is. {"approver": "<name in the plan>", "reason": "..."}`,
	PromotePause:    `Hold production at its current canary step. {"approver": "<your name>", "reason": "..."}`,
	PromoteResume:   `Go on after a pause or an indefinite step. {"approver": "<name in the plan>", "reason": "..."}`,
	PromoteFull:     `Skip the remaining canary steps in every cluster left. {"approver": "<name in the plan>", "reason": "..."}`,
	PromoteRollback: `Remove the canary, keep the stable release, fail the promotion. {"approver": "<your name>", "reason": "..."}`,
}

// approverOnly lists the verbs only the plan's approvers may send: those that
// move production forward, and reject. Anyone may stop: pause, rollback.
var approverOnly = []string{PromoteApprove, PromoteReject, PromoteResume, PromoteFull}

// handlers registers the status query, the verbs' updates and their signal
// channels (read once the plan is known, by listen).
func (r *promotionRun) handlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandlerWithOptions(ctx, workflows.QueryStatus, func() (PromotionStatus, error) { return r.s.Status, nil },
		workflow.QueryHandlerOptions{Description: "Stage, environment, cluster, canary step and weights, last analysis, approvals with who/when/why, configuration commit, events"}); err != nil {
		return err
	}
	for _, verb := range PromotionVerbs {
		err := workflow.SetUpdateHandlerWithOptions(ctx, verb, func(ctx workflow.Context, d PromotionDecision) (PromotionStatus, error) {
			r.accept(ctx, verb, d, "update")
			return r.s.Status, nil
		}, workflow.UpdateHandlerOptions{
			Validator:   func(d PromotionDecision) error { return r.check(verb, d, "update") },
			Description: promotionDescriptions[verb],
		})
		if err != nil {
			return err
		}
		r.channels = append(r.channels, workflow.GetSignalChannelWithOptions(ctx, verb,
			workflow.SignalChannelOptions{Description: promotionDescriptions[verb]}))
	}
	return nil
}

// listen handles the verbs' signals in the background.
func (r *promotionRun) listen(ctx workflow.Context) {
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			sel := workflow.NewSelector(ctx)
			for i, ch := range r.channels {
				sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) {
					var raw json.RawMessage
					c.Receive(ctx, &raw)
					r.signal(ctx, PromotionVerbs[i], raw)
				})
			}
			sel.Select(ctx)
		}
	})
}

// drainSignals handles the signals already delivered, before continue-as-new.
func (r *promotionRun) drainSignals(ctx workflow.Context) {
	for i, ch := range r.channels {
		for {
			var raw json.RawMessage
			if !ch.ReceiveAsync(&raw) {
				break
			}
			r.signal(ctx, PromotionVerbs[i], raw)
		}
	}
}

// signal handles one verb sent as a signal: accepted if the update would be,
// otherwise noted and ignored.
func (r *promotionRun) signal(ctx workflow.Context, verb string, raw json.RawMessage) {
	var d PromotionDecision
	var note string
	if s := strings.TrimSpace(string(raw)); s != "" && s != "null" {
		if err := json.Unmarshal(raw, &d); err != nil {
			// A bare JSON string is taken as the approver's name.
			var name string
			if json.Unmarshal(raw, &name) != nil {
				if len(s) > 80 {
					s = s[:77] + "..."
				}
				note = fmt.Sprintf(`the signal's input %s is not {"approver": "<name>", "reason": "..."}`, s)
			}
			d = PromotionDecision{Approver: name}
		}
	}
	if note == "" {
		if err := r.check(verb, d, "signal"); err != nil {
			note = err.Error()
		}
	}
	if note == "" {
		r.accept(ctx, verb, d, "signal")
		return
	}
	r.record(DecisionRecord{Verb: verb, Approver: strings.TrimSpace(d.Approver), Reason: d.Reason, At: workflow.Now(ctx),
		Via: "signal", Note: note})
	r.event(ctx, fmt.Sprintf("ignored the %s signal from %q: %s", verb, d.Approver, note))
}

// check says whether verb from d may be accepted now. It changes nothing: it
// is the updates' validator.
func (r *promotionRun) check(verb string, d PromotionDecision, via string) error {
	st := &r.s.Status
	name := strings.TrimSpace(d.Approver)
	needsApprover := slices.Contains(approverOnly, verb)
	switch {
	case !r.planned():
		return fmt.Errorf("the promotion is still reading its configuration: send %s again in a moment", verb)
	case isTerminalStage(st.Stage):
		return fmt.Errorf("the promotion is over (%s): nothing to %s", st.Stage, verb)
	case name == "" && (needsApprover || via == "update"):
		return fmt.Errorf(`approver is empty: send {"approver": "<your name>", "reason": "..."}%s`, r.approverHint(needsApprover))
	case needsApprover && !slices.Contains(r.s.Plan.Approvers, name):
		return fmt.Errorf("%q is not an approver of %s: the plan at configuration commit %s lists %s", name, r.in.Service,
			workflows.ShortID(st.ConfigCommit), strings.Join(r.s.Plan.Approvers, ", "))
	}
	switch verb {
	case PromoteApprove, PromoteReject:
		switch {
		case st.ApprovedBy != "":
			return fmt.Errorf("the gate was already passed: approved by %s", st.ApprovedBy)
		case r.rejected != nil:
			return fmt.Errorf("the promotion was already rejected by %s", r.rejected.Approver)
		}
	case PromotePause:
		if st.Paused {
			return errors.New("the promotion is already paused: resume it to go on")
		}
	case PromoteResume:
		if !st.Paused && !r.s.Hold {
			return fmt.Errorf("nothing to resume: the promotion is neither paused nor at an indefinite step (stage %s)", st.Stage)
		}
	case PromoteFull:
		switch {
		case st.ApprovedBy == "":
			return errors.New("the promotion has not passed its gate: approve it first")
		case st.PromoteFull:
			return errors.New("the promotion already skips its remaining steps")
		}
	case PromoteRollback:
		switch {
		case st.Stage != PromotionStageProduction:
			return fmt.Errorf("nothing to roll back: no canary runs yet (stage %s); reject the promotion at its gate instead", st.Stage)
		case r.finalizing:
			return fmt.Errorf("too late for a canary rollback: the stable release in %s is taking the new image; revert it with helm rollback once the promotion ends", st.Cluster)
		case r.rollback != nil:
			return fmt.Errorf("a rollback is already under way, asked by %s", r.rollback.Approver)
		}
	}
	return nil
}

func (r *promotionRun) approverHint(needsApprover bool) string {
	if !needsApprover {
		return ""
	}
	return "; approvers: " + strings.Join(r.s.Plan.Approvers, ", ")
}

// accept applies a verb that check allowed.
func (r *promotionRun) accept(ctx workflow.Context, verb string, d PromotionDecision, via string) {
	st := &r.s.Status
	rec := DecisionRecord{Verb: verb, Approver: strings.TrimSpace(d.Approver), Reason: d.Reason, At: workflow.Now(ctx), Via: via, Accepted: true}
	if rec.Approver == "" {
		rec.Approver = unnamed
	}
	r.record(rec)
	switch verb {
	case PromoteApprove:
		st.ApprovedBy = rec.Approver
	case PromoteReject:
		r.rejected = &rec
	case PromotePause:
		st.Paused = true
	case PromoteResume:
		st.Paused, r.s.Hold = false, false
	case PromoteFull:
		st.PromoteFull, st.Paused, r.s.Hold = true, false, false
	case PromoteRollback:
		r.rollback = &rec
		if r.cancelStep != nil {
			r.cancelStep()
		}
	}
	if slices.Contains(approverOnly, verb) && verb != PromoteReject && !slices.Contains(r.s.Approved, rec.Approver) {
		r.s.Approved = append(r.s.Approved, rec.Approver)
		if err := workflow.UpsertTypedSearchAttributes(ctx, workflows.ApproverKey.ValueSet(r.s.Approved)); err != nil {
			workflow.GetLogger(ctx).Warn("Setting the approver search attribute failed", "error", err)
		}
	}
	r.changed = true
	r.event(ctx, fmt.Sprintf("%s by %s (%s): %s", verb, rec.Approver, via, orNoReason(rec.Reason)))
}

// record appends a decision, dropping the oldest beyond maxDecisions.
func (r *promotionRun) record(rec DecisionRecord) {
	ds := &r.s.Status.Decisions
	*ds = append(*ds, rec)
	if len(*ds) > maxDecisions {
		*ds = slices.Clone((*ds)[len(*ds)-maxDecisions:])
	}
}

func isTerminalStage(stage string) bool {
	switch stage {
	case PromotionStagePromoted, PromotionStageRejected, PromotionStageTimedOut, PromotionStageRolledBack,
		PromotionStageFailed, PromotionStageCancelled:
		return true
	}
	return false
}
