package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/internal/client/launch"
	"github.com/wikimedia/conveyor/internal/lib/gerrit"
	"github.com/wikimedia/conveyor/workflows"
	"github.com/wikimedia/conveyor/workflows/changes"
)

// workload is one kind of workflow the benchmark starts n of: start starts the
// i-th through launch, as the command line and the triggers would, and check
// waits for its result and says what is wrong with it.
type workload struct {
	name  string
	start func(ctx context.Context, i int) (client.WorkflowRun, error)
	check func(ctx context.Context, i int, run client.WorkflowRun) error
}

// pipelines are changes.Pipeline for change i+1, patchset 1, of one project per
// benchmark run (tag), every step run, publish included unless !publish.
func pipelines(cl client.Client, tag string, publish bool) workload {
	project := "bench/p5-" + tag
	input := func(i int) changes.PipelineInput {
		return changes.PipelineInput{Project: project, Repo: "https://gerrit.example.org/r/" + project,
			Ref: gerrit.MakeChangeRef(i+1, 1), Publish: publish}
	}
	return workload{
		name: "Pipeline",
		start: func(ctx context.Context, i int) (client.WorkflowRun, error) {
			return launch.Pipeline(ctx, cl, input(i))
		},
		check: func(ctx context.Context, i int, run client.WorkflowRun) error {
			var st changes.PipelineStatus
			if err := run.Get(ctx, &st); err != nil {
				return err
			}
			return checkPipeline(input(i), st)
		},
	}
}

// checkPipeline says how st, the result of the pipeline for in, differs from
// what the stubs make every pipeline return.
func checkPipeline(in changes.PipelineInput, st changes.PipelineStatus) error {
	image := stubImage(in.Repo)
	commit := stubCommit(in.Repo, in.Ref)
	change, _, _ := gerrit.ParseChangeRef(in.Ref)
	var bad []string
	if st.Error != "" {
		bad = append(bad, "error "+st.Error)
	}
	for _, name := range changes.PipelineSteps {
		want := changes.StepSucceeded
		if name == changes.StepPublish && !in.Publish {
			want = changes.StepSkipped
		}
		if s := st.Step(name); s == nil || s.State != want {
			bad = append(bad, fmt.Sprintf("step %s not %s: %+v", name, want, s))
		}
	}
	if st.Commit != commit {
		bad = append(bad, fmt.Sprintf("commit %q, want %q", st.Commit, commit))
	}
	if !strings.HasPrefix(st.Candidate, stubRegistry+"/candidates/"+image+"@sha256:") {
		bad = append(bad, fmt.Sprintf("candidate %q, want %s/candidates/%s@sha256:...", st.Candidate, stubRegistry, image))
	}
	if !strings.HasPrefix(st.Namespace, "ci-") || !strings.Contains(st.Namespace, fmt.Sprintf("-%d-1-", change)) {
		bad = append(bad, fmt.Sprintf("namespace %q, want ci-<image>-%d-1-<run>", st.Namespace, change))
	}
	wantRef := fmt.Sprintf("%s/%s:change-%d-1", stubRegistry, image, change)
	if in.Publish && (len(st.Published) != 2 || st.Published[1] != wantRef) {
		bad = append(bad, fmt.Sprintf("published %q, want a timestamp tag and %s", st.Published, wantRef))
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

// trivial is conveyor's Ping workflow on the build pool: one activity, the real
// health Ping, which touches nothing outside the worker and returns at once.
func trivial(cl client.Client, tag string, timeout time.Duration) workload {
	in := func(i int) workflows.PingInput {
		return workflows.PingInput{Pools: []string{workflows.PoolBuild}, Message: fmt.Sprintf("bench %s %d", tag, i)}
	}
	return workload{
		name: "Ping",
		start: func(ctx context.Context, i int) (client.WorkflowRun, error) {
			return launch.Ping(ctx, cl, fmt.Sprintf("bench-ping-%s-%d", tag, i), timeout, in(i))
		},
		check: func(ctx context.Context, i int, run client.WorkflowRun) error {
			var res workflows.PingResult
			if err := run.Get(ctx, &res); err != nil {
				return err
			}
			want := in(i).Message
			if len(res.Answers) != 1 || res.Answers[0].Pool != workflows.PoolBuild || res.Answers[0].Message != want ||
				res.Answers[0].TaskQueue != workflows.TaskQueueBuild {
				return fmt.Errorf("answers %+v, want one from pool %s on %s echoing %q", res.Answers, workflows.PoolBuild, workflows.TaskQueueBuild, want)
			}
			return nil
		},
	}
}

// measurement is one load of one workload on one server.
type measurement struct {
	n int
	// starts is from the first start to the last start's return, wall from the
	// first start to the last completion.
	starts, wall time.Duration
	// peakInFlight is the most workflows started and not yet completed at once.
	peakInFlight int64
	// sample is every (n/sampleSize)-th run, for scheduleToStart.
	sample []client.WorkflowRun
	// activityWait and workflowTaskWait are the sample's schedule-to-start
	// latencies.
	activityWait, workflowTaskWait latencies
}

// rate is the completions per second.
func (m measurement) rate() float64 { return float64(m.n) / m.wall.Seconds() }

// load starts n workflows of wl, concurrency starts at a time, all of them as
// fast as Temporal takes them, and waits for every one to complete with the
// result wl expects. Any failure fails the load.
func load(ctx context.Context, wl workload, n, concurrency int) (measurement, error) {
	var (
		mu             sync.Mutex // guards the five below
		inFlight, peak int64
		last           time.Time
		failed         []string
		sample         []client.WorkflowRun

		next               atomic.Int64
		startErr           error
		startErrOnce       sync.Once
		startsWG, checksWG sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	first := time.Now()
	for range concurrency {
		startsWG.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				run, err := wl.start(ctx, i)
				if err != nil {
					startErrOnce.Do(func() { startErr = err; cancel() })
					return
				}
				mu.Lock()
				inFlight++
				peak = max(peak, inFlight)
				if i%max(1, n/sampleSize) == 0 {
					sample = append(sample, run)
				}
				mu.Unlock()
				checksWG.Go(func() {
					err := wl.check(ctx, i, run)
					now := time.Now()
					mu.Lock()
					defer mu.Unlock()
					inFlight--
					if now.After(last) {
						last = now
					}
					if err != nil {
						failed = append(failed, fmt.Sprintf("%s #%d %s: %v", wl.name, i, run.GetID(), err))
					}
				})
			}
		})
	}
	startsWG.Wait()
	starts := time.Since(first)
	checksWG.Wait()
	if startErr != nil {
		return measurement{}, fmt.Errorf("starting %s workflows: %w", wl.name, startErr)
	}
	if len(failed) > 0 {
		return measurement{}, fmt.Errorf("%d of %d %s workflows did not complete as expected; the first: %s", len(failed), n, wl.name, failed[0])
	}
	return measurement{n: n, starts: starts, wall: last.Sub(first), peakInFlight: peak, sample: sample}, nil
}
