package promote

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/internal/helmkit"
)

// NotificationsFile is where PromotionNotify appends its messages, relative to the
// state directory: one JSON object a line (Notification).
const NotificationsFile = "promotion/notifications.jsonl"

// Notification is one line of NotificationsFile.
type Notification struct {
	// ID identifies the message: the workflow run and the activity that sent it. A
	// retried activity does not append its message twice.
	ID         string    `json:"id"`
	Time       time.Time `json:"time"`
	WorkflowID string    `json:"workflowId,omitempty"`
	RunID      string    `json:"runId,omitempty"`
	Service    string    `json:"service"`
	Kind       string    `json:"kind"`
	Message    string    `json:"message"`
	Approvers  []string  `json:"approvers,omitempty"`
}

// PromotionNotify tells the approvers about a promotion. This implementation logs
// the message and appends it as a JSON line to NotificationsFile in the state
// directory; this is where a real deployment plugs in its notifier (mail, chat,
// paging). The message is written once per workflow run and activity, also when
// the activity is retried.
func (a *Activities) PromotionNotify(ctx context.Context, in contract.PromotionNotifyInput) error {
	n := Notification{Time: time.Now().UTC(), Service: in.Service, Kind: in.Kind, Message: in.Message, Approvers: in.Approvers}
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		n.WorkflowID, n.RunID = info.WorkflowExecution.ID, info.WorkflowExecution.RunID
		n.ID = fmt.Sprintf("%s/%s/%s", info.WorkflowExecution.ID, info.WorkflowExecution.RunID, info.ActivityID)
	} else {
		n.ID = fmt.Sprintf("%s/%s/%d", in.Service, in.Kind, n.Time.UnixNano())
	}
	helmkit.Logger(ctx).Info("Promotion notification", "service", in.Service, "kind", in.Kind, "message", in.Message, "approvers", in.Approvers)
	path := filepath.Join(a.stateDir, filepath.FromSlash(NotificationsFile))
	if err := appendOnce(path, n); err != nil {
		return fmt.Errorf("writing the notification to %s: %w", path, err)
	}
	return nil
}

// appendOnce appends n to the file at path unless a line with its ID is there,
// holding an exclusive lock on the file so that workers on one host do not
// interleave.
func appendOnce(path string, n Notification) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing unlocks too
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var seen struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(sc.Bytes(), &seen) == nil && seen.ID == n.ID {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	b, err := json.Marshal(n)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	return err
}
