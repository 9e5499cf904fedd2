package main

import (
	"sync"
	"time"

	"github.com/wikimedia/conveyor/bench/internal/procstat"
)

// process is one process whose RSS the benchmark reports.
type process struct {
	label string
	// pid is 0 for this one.
	pid int
}

// processes are the pools' processes and this one, or this one alone when the
// pools run in it.
func processes(ps []*runningPool) []process {
	var out []process
	self := "the benchmark: client (starts, waits for results)"
	for _, p := range ps {
		if p.pid == 0 {
			self = "the benchmark: client and every pool's worker"
			continue
		}
		out = append(out, process{label: p.pool + " pool's worker", pid: p.pid})
	}
	return append(out, process{label: self})
}

// rssNow reads every process's RSS now.
func rssNow(procs []process) ([]int64, error) {
	out := make([]int64, len(procs))
	for i, p := range procs {
		m, err := procstat.ReadMemory(p.pid)
		if err != nil {
			return nil, err
		}
		out[i] = m.RSS
	}
	return out, nil
}

// rssSampler records the largest RSS of each process, read every interval until
// stopped.
type rssSampler struct {
	mu   sync.Mutex
	peak []int64
	stop chan struct{}
	done chan struct{}
}

func sampleRSS(procs []process, every time.Duration) *rssSampler {
	s := &rssSampler{peak: make([]int64, len(procs)), stop: make(chan struct{}), done: make(chan struct{})}
	read := func() {
		rss, err := rssNow(procs)
		if err != nil {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, r := range rss {
			s.peak[i] = max(s.peak[i], r)
		}
	}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			read()
			select {
			case <-s.stop:
				read()
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// Stop stops sampling and returns each process's largest RSS.
func (s *rssSampler) Stop() []int64 {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}
