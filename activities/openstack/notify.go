package openstack

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/wikimedia/conveyor/activities/contract"
)

// Where the migration's notifications go. conveyor has no mail or IRC client: a
// notification is logged by the worker and appended, as one JSON object per line,
// to NotificationsFile under the worker's state directory. Whoever runs the
// migration reads (or tails) that file, or points a relay at it; a real deployment
// would plug its own sender (e-mail to the project's owners, an IRC bot) in here.

// NotificationsFile is the notifications' file, relative to the state directory.
const NotificationsFile = "migration/notifications.jsonl"

// Notification is one line of NotificationsFile.
type Notification struct {
	contract.MigrationNotifyInput
	// Key identifies the notification: the workflow run and activity that sent
	// it, so a retried activity does not write it twice.
	Key string `json:"key"`
	// Sent is when the worker wrote it.
	Sent time.Time `json:"sent"`
}

// notifyMu serialises writers of the notifications file within one worker.
var notifyMu sync.Mutex

// MigrationNotify logs a notification about a stage (or a project of stage 4) and
// appends it to the notifications file. A retry of the same activity finds its
// line and does not add another.
func (a *Activities) MigrationNotify(ctx context.Context, in contract.MigrationNotifyInput) error {
	key := "local"
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		key = info.WorkflowExecution.ID + "/" + info.WorkflowExecution.RunID + "/" + info.ActivityID
		activity.GetLogger(ctx).Info("Migration notification", "kind", in.Kind, "stage", in.Stage, "project", in.Project,
			"recipients", strings.Join(in.Recipients, ","), "message", in.Message)
	}
	return a.recordNotification(key, in)
}

// recordNotification appends in under key unless a line with key is there.
func (a *Activities) recordNotification(key string, in contract.MigrationNotifyInput) error {
	if a.stateDir == "" {
		return fmt.Errorf("the worker has no state directory to write %s to: set stateDir in the configuration", NotificationsFile)
	}
	path := filepath.Join(a.stateDir, NotificationsFile)
	notifyMu.Lock()
	defer notifyMu.Unlock()
	if key != "local" {
		seen, err := fileHasKey(path, key)
		if err != nil || seen {
			return err
		}
	}
	b, err := json.Marshal(Notification{MigrationNotifyInput: in, Key: key, Sent: time.Now().UTC()})
	if err != nil {
		return err
	}
	return appendLine(path, b)
}

// fileHasKey says whether a JSON-lines file holds a line whose "key" is key.
func fileHasKey(path, key string) (bool, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	needle := `"key":` + jsonString(key)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		if strings.Contains(sc.Text(), needle) {
			return true, nil
		}
	}
	return false, sc.Err()
}

// appendLine appends one line to a file, creating it and its directory.
func appendLine(path string, line []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
