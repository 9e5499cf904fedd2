package gerrit

import (
	"fmt"
	"strings"

	"github.com/wikimedia/conveyor/activities/contract"
	libgerrit "github.com/wikimedia/conveyor/internal/lib/gerrit"
)

// Limits of the output tail quoted in a review message.
const (
	tailLines = 30
	tailBytes = 3000
)

// Message is the review message for in: the outcome, the failed step and its
// output tail, and link, the workflow's page, when there is one. It starts with
// gerrit.MessagePrefix, by which the triggers know it for conveyor's own.
//
// Every line of the output is quoted ("> line", Gerrit's block quote), so that no
// line a test or a build prints can read as a command such as "recheck" to
// conveyor (gerrit.IsRecheckComment) or to another bot reading the change.
func Message(in contract.ReviewInput, link string) string {
	var b strings.Builder
	b.WriteString(libgerrit.MessagePrefix)
	switch in.Outcome {
	case contract.OutcomeSucceeded:
		b.WriteString("verification succeeded.")
	case contract.OutcomeCancelled:
		b.WriteString("verification was cancelled before it finished; no vote.")
	default:
		if in.FailedStep != "" {
			fmt.Fprintf(&b, "verification failed at step %s.", in.FailedStep)
		} else {
			b.WriteString("verification failed.")
		}
	}
	if in.BuiltCommit == "" && in.Outcome != contract.OutcomeCancelled {
		b.WriteString(" No vote: no commit was built.")
	}
	if in.Summary != "" {
		b.WriteString("\n\n" + strings.TrimSpace(in.Summary))
	}
	if out := Tail(in.Output, tailLines, tailBytes); out != "" {
		b.WriteString("\n\nOutput (last lines):\n\n")
		b.WriteString(Quote(out))
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

// lineBreaks are the characters that end a line for Gerrit or for a reader of
// the message (an editor, a bot splitting on Unicode line breaks).
var lineBreaks = strings.NewReplacer("\r\n", "\n", "\r", "\n", "\v", "\n", "\f", "\n",
	"\u0085", "\n", "\u2028", "\n", "\u2029", "\n")

// Quote makes every line of s a line of Gerrit's block quote, "> line" (">"
// for an empty one), each ending in a newline.
func Quote(s string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(lineBreaks.Replace(s), "\n") {
		if line = strings.TrimRight(line, " \t"); line == "" {
			b.WriteString(">\n")
			continue
		}
		b.WriteString("> " + line + "\n")
	}
	return b.String()
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
