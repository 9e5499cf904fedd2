package blubber

import (
	"strings"

	bkclient "github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

// maxStepOutput is how much of a step's output a StepError keeps: the tail,
// which is where test runners print their summary.
const maxStepOutput = 64 << 10

// statusTracker follows the status updates of a solve: it counts steps for
// progress reports and keeps each step's output so that a failure can carry it.
type statusTracker struct {
	report   func(Progress)
	names    map[digest.Digest]string
	done     map[digest.Digest]bool
	errs     map[digest.Digest]string
	order    []digest.Digest // failed vertices, in the order they failed
	logs     map[digest.Digest][]byte
	current  string
	complete int
}

func newStatusTracker(report func(Progress)) *statusTracker {
	return &statusTracker{
		report: report,
		names:  map[digest.Digest]string{},
		done:   map[digest.Digest]bool{},
		errs:   map[digest.Digest]string{},
		logs:   map[digest.Digest][]byte{},
	}
}

func (t *statusTracker) update(st *bkclient.SolveStatus) {
	for _, v := range st.Vertexes {
		t.names[v.Digest] = v.Name
		if v.Started != nil && v.Completed == nil {
			t.current = v.Name
		}
		if v.Completed != nil && !t.done[v.Digest] {
			t.done[v.Digest] = true
			t.complete++
		}
		if v.Error != "" {
			if _, seen := t.errs[v.Digest]; !seen {
				t.order = append(t.order, v.Digest)
			}
			t.errs[v.Digest] = v.Error
		}
	}
	for _, l := range st.Logs {
		b := append(t.logs[l.Vertex], l.Data...)
		if len(b) > maxStepOutput {
			b = b[len(b)-maxStepOutput:]
		}
		t.logs[l.Vertex] = b
	}
	if t.report != nil {
		t.report(Progress{Completed: t.complete, Total: len(t.names), Current: t.current, Status: st})
	}
}

// failure turns a solve error into a StepError naming the step that failed, or
// returns nil when no step reported an error (e.g. buildkitd was unreachable).
// A cancelled step is not the cause: the first step that failed otherwise is.
func (t *statusTracker) failure(variant string, err error) *StepError {
	var failed digest.Digest
	for _, d := range t.order {
		if !strings.Contains(t.errs[d], "context canceled") {
			failed = d
			break
		}
	}
	if failed == "" {
		return nil
	}
	name := t.names[failed]
	return &StepError{
		Variant: variant,
		Step:    name,
		Test:    strings.HasPrefix(name, TestVertexPrefix),
		Output:  strings.TrimRight(string(t.logs[failed]), "\n"),
		Err:     err,
	}
}
