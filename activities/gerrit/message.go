package gerrit

import (
	"fmt"
	"strings"

	"github.com/wikimedia/conveyor/activities/contract"
)

// Limits of the output tail quoted in a review message.
const (
	tailLines = 30
	tailBytes = 3000
)

// Message is the review message for in: the outcome, the failed step and its
// output tail (indented, which Gerrit shows preformatted), and link, the
// workflow's page, when there is one.
func Message(in contract.ReviewInput, link string) string {
	var b strings.Builder
	switch in.Outcome {
	case contract.OutcomeSucceeded:
		b.WriteString("conveyor: verification succeeded.")
	case contract.OutcomeCancelled:
		b.WriteString("conveyor: verification was cancelled before it finished; no vote.")
	default:
		if in.FailedStep != "" {
			fmt.Fprintf(&b, "conveyor: verification failed at step %s.", in.FailedStep)
		} else {
			b.WriteString("conveyor: verification failed.")
		}
	}
	if in.Summary != "" {
		b.WriteString("\n\n" + strings.TrimSpace(in.Summary))
	}
	if out := Tail(in.Output, tailLines, tailBytes); out != "" {
		b.WriteString("\n\nOutput (last lines):\n\n")
		for line := range strings.SplitSeq(out, "\n") {
			b.WriteString("  " + line + "\n")
		}
	}
	if link != "" {
		if !strings.HasSuffix(b.String(), "\n") {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "\nWorkflow: %s\n", link)
	}
	if in.Outcome == contract.OutcomeFailed || in.Outcome == "" {
		b.WriteString("\nComment \"recheck\" to run it again.\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

// Tail returns at most the last lines lines and maxBytes bytes of s, trimmed of
// surrounding blank lines, cut at a line boundary when it can be.
func Tail(s string, lines, maxBytes int) string {
	s = strings.Trim(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	if s == "" {
		return ""
	}
	all := strings.Split(s, "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	out := strings.Join(all, "\n")
	if len(out) > maxBytes {
		out = out[len(out)-maxBytes:]
		if i := strings.IndexByte(out, '\n'); i >= 0 && i < len(out)-1 {
			out = out[i+1:]
		}
		out = strings.ToValidUTF8(out, "")
	}
	return out
}
