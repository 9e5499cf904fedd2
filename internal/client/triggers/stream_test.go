package triggers

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/internal/lib/gerrit"
)

// recordingHandler records the events it gets; it fails the first failures
// calls.
type recordingHandler struct {
	mu       sync.Mutex
	events   []gerrit.Event
	failures int
}

func (r *recordingHandler) Handle(_ context.Context, e gerrit.Event) (Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failures > 0 {
		r.failures--
		return Result{}, errors.New("temporal unavailable")
	}
	r.events = append(r.events, e)
	if e.Type == gerrit.TypePatchsetCreated {
		return Result{Action: ActionVerify}, nil
	}
	return Result{Action: ActionIgnore}, nil
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// flakySource gives the connections in turn: a string is a connection that
// delivers it and then fails, an error a failed connection attempt.
type flakySource struct {
	mu    sync.Mutex
	conns []any
	opens int
}

func (f *flakySource) open(ctx context.Context) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opens++
	if len(f.conns) == 0 {
		return nil, errors.New("connection refused")
	}
	c := f.conns[0]
	f.conns = f.conns[1:]
	if err, ok := c.(error); ok {
		return nil, err
	}
	return io.NopCloser(io.MultiReader(strings.NewReader(c.(string)), &failingReader{})), nil
}

type failingReader struct{}

func (*failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset by peer") }

func TestStreamReconnectsAndReadsEveryEvent(t *testing.T) {
	lines := strings.Split(strings.TrimSpace(string(mustRead(t, gerritTestdata("stream", "events.jsonl")))), "\n")
	src := &flakySource{conns: []any{
		lines[0] + "\n" + "not json\n" + lines[1] + "\n",
		errors.New("ssh: connect to host gerrit.example.org port 29418: Connection refused"),
		lines[2] + "\n" + lines[3] + "\n\n",
		// The last connection cuts a line in half: the half is malformed.
		strings.Join(lines[4:], "\n") + "\n" + lines[0][:40],
	}}
	h := &recordingHandler{failures: 2}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stats, err := Stream(ctx, src.open, h, WithBackoff(time.Millisecond, 4*time.Millisecond), WithMaxReconnects(3), WithStreamLogger(quietLogger()))
	if err == nil || !strings.Contains(err.Error(), "giving up on the event stream after 4 attempts") {
		t.Errorf("error %v, want giving up after the reconnections without events", err)
	}
	if len(h.events) != len(lines) {
		t.Errorf("handled %d events, want %d", len(h.events), len(lines))
	}
	if stats.Connections != 3 || stats.Malformed != 2 || stats.Acted != 1 || stats.Failed != 0 || stats.Lines != len(lines)+2 {
		t.Errorf("stats %+v", stats)
	}
	// 4 connections with events or a refused attempt, then 4 refused in a row.
	if src.opens != 8 {
		t.Errorf("%d connection attempts, want 8", src.opens)
	}
}

func TestStreamFromAReaderEndsWithIt(t *testing.T) {
	h := &recordingHandler{}
	in := string(mustRead(t, gerritTestdata("stream", "events.jsonl")))
	stats, err := Stream(context.Background(), ReaderSource(strings.NewReader(in)), h, WithStreamLogger(quietLogger()))
	if err != nil || stats.Connections != 1 || len(h.events) != 6 {
		t.Errorf("stats %+v, %d events, %v", stats, len(h.events), err)
	}
}

func TestStreamSkipsOverlongLines(t *testing.T) {
	h := &recordingHandler{}
	s := &streamer{h: h, maxLine: 100, minBackoff: time.Millisecond, maxBackoff: time.Millisecond, handleTries: 1, logger: quietLogger()}
	in := `{"type":"x","comment":"` + strings.Repeat("a", 70<<10) + `"}` + "\n" + `{"type":"patchset-created"}` + "\n"
	n, err := s.read(context.Background(), strings.NewReader(in))
	if err != nil || n != 1 || s.stats.Malformed != 1 || len(h.events) != 1 || h.events[0].Type != gerrit.TypePatchsetCreated {
		t.Errorf("read %d events, %v, stats %+v", n, err, s.stats)
	}
}

func TestStreamRunsACommand(t *testing.T) {
	h := &recordingHandler{}
	file := gerritTestdata("stream", "events.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The first run prints the events and exits (a lost connection); the next
	// ones print nothing, so the stream gives up after the second of them.
	marker := filepath.Join(t.TempDir(), "done")
	script := `test -e "$1" || { cat "$2"; touch "$1"; }`
	stats, err := Stream(ctx, CommandSource([]string{"sh", "-c", script, "sh", marker, file}, io.Discard), h,
		WithBackoff(time.Millisecond, time.Millisecond), WithMaxReconnects(1), WithStreamLogger(quietLogger()))
	if stats.Connections != 3 || len(h.events) != 6 || err == nil {
		t.Errorf("stats %+v, %d events, %v; want 3 connections, 6 events, then giving up", stats, len(h.events), err)
	}
	_, err = CommandSource([]string{"/nonexistent/ssh"}, io.Discard)(ctx)
	if err == nil || !strings.Contains(err.Error(), "running /nonexistent/ssh") {
		t.Errorf("error %v", err)
	}
}
