package triggers

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"sync"
	"time"

	"github.com/wikimedia/conveyor/internal/lib/gerrit"
)

// ErrSourceDone is what a Source returns when it has no more connections to give
// (stdin, read once): Stream then ends without error.
var ErrSourceDone = errors.New("the event source is exhausted")

// Source opens one connection to stream-events: a reader of JSON lines.
type Source func(ctx context.Context) (io.ReadCloser, error)

// ReaderSource reads r once (e.g. stdin); the next connection is ErrSourceDone.
func ReaderSource(r io.Reader) Source {
	var once sync.Once
	return func(context.Context) (io.ReadCloser, error) {
		var rc io.ReadCloser
		once.Do(func() { rc = io.NopCloser(r) })
		if rc == nil {
			return nil, ErrSourceDone
		}
		return rc, nil
	}
}

// CommandSource runs argv for each connection, e.g.
// ssh -p 29418 bot@gerrit.example.org gerrit stream-events, and reads its
// standard output; its standard error goes to stderr. Closing the connection
// stops the command.
func CommandSource(argv []string, stderr io.Writer) Source {
	return func(ctx context.Context) (io.ReadCloser, error) {
		if len(argv) == 0 {
			return nil, errors.New("no stream command: set stream.command in the triggers file, or give --command")
		}
		cctx, cancel := context.WithCancel(ctx)
		cmd := exec.CommandContext(cctx, argv[0], argv[1:]...)
		cmd.Stderr = stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			cancel()
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			cancel()
			return nil, fmt.Errorf("running %s: %w", argv[0], err)
		}
		return &commandConn{ReadCloser: out, cmd: cmd, cancel: cancel}, nil
	}
}

type commandConn struct {
	io.ReadCloser
	cmd    *exec.Cmd
	cancel context.CancelFunc
}

func (c *commandConn) Close() error {
	c.cancel()
	_ = c.ReadCloser.Close()
	return c.cmd.Wait()
}

// StreamOption configures Stream.
type StreamOption func(*streamer) error

// WithBackoff waits min after a lost connection, doubling up to max while
// connections keep failing. Default: 1s to 1m.
func WithBackoff(min, max time.Duration) StreamOption {
	return func(s *streamer) error {
		if min <= 0 || max < min {
			return fmt.Errorf("triggers.WithBackoff: want 0 < min <= max, got %s and %s", min, max)
		}
		s.minBackoff, s.maxBackoff = min, max
		return nil
	}
}

// WithMaxReconnects gives up after n reconnections in a row that delivered no
// event. Default: 0, never give up.
func WithMaxReconnects(n int) StreamOption {
	return func(s *streamer) error {
		if n < 0 {
			return fmt.Errorf("triggers.WithMaxReconnects: want n >= 0, got %d", n)
		}
		s.maxReconnects = n
		return nil
	}
}

// WithStreamLogger logs connections and events to l. Default: slog.Default().
func WithStreamLogger(l *slog.Logger) StreamOption {
	return func(s *streamer) error {
		if l == nil {
			return errors.New("triggers.WithStreamLogger: nil logger")
		}
		s.logger = l
		return nil
	}
}

// StreamStats counts what a Stream did.
type StreamStats struct {
	Connections int
	Lines       int
	Malformed   int
	Acted       int
	Ignored     int
	// Failed are events that could not be acted on after the retries.
	Failed int
}

type streamer struct {
	h             EventHandler
	minBackoff    time.Duration
	maxBackoff    time.Duration
	maxReconnects int
	maxLine       int
	handleTries   int
	logger        *slog.Logger
	stats         StreamStats
}

// Stream reads stream-events lines from src and hands each event to h, until ctx
// ends or src is exhausted. A lost connection is opened again after a backoff; a
// malformed line is logged and skipped; an event h fails on is retried a few
// times with the same backoff, then logged and skipped (stream-events cannot
// deliver it again).
func Stream(ctx context.Context, src Source, h EventHandler, opts ...StreamOption) (StreamStats, error) {
	s := &streamer{h: h, minBackoff: time.Second, maxBackoff: time.Minute, maxLine: 4 << 20, handleTries: 5, logger: slog.Default()}
	for _, o := range opts {
		if err := o(s); err != nil {
			return StreamStats{}, err
		}
	}
	backoff := s.minBackoff
	failures := 0
	for {
		if ctx.Err() != nil {
			return s.stats, nil
		}
		conn, err := src(ctx)
		if errors.Is(err, ErrSourceDone) {
			return s.stats, nil
		}
		delivered := 0
		if err != nil {
			s.logger.Warn("Could not connect to stream-events", "error", err, "retryIn", backoff)
		} else {
			s.stats.Connections++
			s.logger.Info("Reading Gerrit's events", "connection", s.stats.Connections)
			delivered, err = s.read(ctx, conn)
			cerr := conn.Close()
			if ctx.Err() != nil {
				return s.stats, nil
			}
			s.logger.Warn("The event stream ended", "events", delivered, "error", errors.Join(err, cerr), "retryIn", backoff)
		}
		if delivered > 0 {
			backoff, failures = s.minBackoff, 0
		} else {
			failures++
			if s.maxReconnects > 0 && failures > s.maxReconnects {
				return s.stats, fmt.Errorf("giving up on the event stream after %d attempts without an event: %w", failures, errors.Join(err, errors.New("no events")))
			}
		}
		if !sleep(ctx, backoff) {
			return s.stats, nil
		}
		backoff = min(2*backoff, s.maxBackoff)
	}
}

// read hands each line of one connection to the handler and returns how many
// lines were events.
func (s *streamer) read(ctx context.Context, conn io.Reader) (int, error) {
	r := bufio.NewReaderSize(conn, 64<<10)
	n := 0
	for {
		line, tooLong, err := readLine(r, s.maxLine)
		if tooLong {
			s.stats.Malformed++
			s.logger.Warn("Skipping a line over the size limit", "limit", s.maxLine)
		}
		if len(bytes.TrimSpace(line)) > 0 {
			s.stats.Lines++
			if s.handleLine(ctx, line) {
				n++
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
		if ctx.Err() != nil {
			return n, nil
		}
	}
}

// readLine reads up to and including a newline. A line over max bytes is read
// to its end and dropped: tooLong is set and line is nil.
func readLine(r *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	for {
		chunk, err := r.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(chunk) > max {
				tooLong, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return line, tooLong, err
	}
}

// handleLine parses and hands over one line; it says whether the line was an
// event.
func (s *streamer) handleLine(ctx context.Context, line []byte) bool {
	ev, err := gerrit.ParseEvent(line)
	if err != nil {
		s.stats.Malformed++
		s.logger.Warn("Skipping a line that is not an event", "error", err, "bytes", len(line))
		return false
	}
	backoff := s.minBackoff
	for try := 1; ; try++ {
		res, err := s.h.Handle(ctx, ev)
		if err == nil {
			if res.Action == ActionIgnore {
				s.stats.Ignored++
			} else {
				s.stats.Acted++
				s.logger.Info("Acted on an event", "type", ev.Type, "action", res.Action, "workflow", res.WorkflowID, "duplicate", res.Duplicate)
			}
			return true
		}
		if try >= s.handleTries || ctx.Err() != nil {
			s.stats.Failed++
			s.logger.Error("Could not act on an event: skipping it (a recheck comment runs the change again)",
				"type", ev.Type, "project", ev.ProjectName(), "key", ev.Key(), "error", err)
			return true
		}
		s.logger.Warn("Could not act on an event: retrying", "type", ev.Type, "try", try, "error", err)
		if !sleep(ctx, backoff) {
			return true
		}
		backoff = min(2*backoff, s.maxBackoff)
	}
}

// sleep waits d or until ctx ends; it says whether the wait was complete.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
