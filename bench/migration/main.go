// Command migration is the cloud migration's scale benchmark: it runs -vms servers
// in -projects projects through the real ProjectMigration and VMMigration workflows
// on a Temporal dev server (by default one of its own, in memory: the pinned
// `temporal server start-dev` of the local stack), in a namespace of its own, with the
// OpenStack activities replaced by stubs that return at once (registered under the
// contract's names, in this process's worker). It reports the wall time, the peak
// RSS of this process (the worker, plus the client that starts the projects) and
// the largest history of any workflow run, against the targets of issue 7:
// < 10 minutes, < 500 MB, < 10,000 events.
//
//	make tools && go run ./bench/migration               # 10,000 VMs in 1,000 projects
//	go run ./bench/migration -vms 1000 -projects 100     # a smaller run
//	go run ./bench/migration -server stack               # on the local stack's dev server
//	go run ./bench/migration -server postgres            # on the stack's production Temporal (PostgreSQL)
//
// With its own dev server, BENCH_DYNAMIC_CONFIG ("key=json-value ...") adds
// dynamic configuration to the stack's (devstack.TemporalDynamicConfig) and
// BENCH_SERVER_GOGC sets the server's GOGC, for experiments.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"text/tabwriter"
	"time"

	"go.temporal.io/sdk/worker"

	"github.com/wikimedia/conveyor/bench/internal/procstat"
	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/internal/client/temporalsetup"
	"github.com/wikimedia/conveyor/internal/dev/devstack"
	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/workflows"
)

// Targets of issue 7.
const (
	targetWall   = 10 * time.Minute
	targetRSS    = 500 << 20
	targetEvents = 10000
)

type options struct {
	vms, projects int
	namespace     string
	server        string
	stateDir      string
	// perProject is ProjectMigration's bound on VMs migrated at once.
	perProject int
	// cache is the worker's sticky workflow cache size.
	cache    int
	parallel int
	timeout  time.Duration
	// driver runs the projects through ProjectsMigration, atOnce at a time.
	driver bool
	atOnce int
}

func main() {
	var o options
	flag.IntVar(&o.vms, "vms", 10000, "servers to migrate, spread evenly over the projects")
	flag.IntVar(&o.projects, "projects", 1000, "projects, one ProjectMigration each")
	flag.StringVar(&o.namespace, "namespace", "conveyor-bench-migration", "Temporal namespace of the run (created if missing)")
	flag.StringVar(&o.server, "server", "own", "Temporal to run on: own (a dev server of its own, in memory), stack (the local stack's, from -state-dir), postgres (the stack's production Temporal: `conveyor dev up --with temporal-postgres`), or `HOST:PORT`")
	flag.StringVar(&o.stateDir, "state-dir", config.DefaultStateDir, "the local stack's state directory (`conveyor dev up`)")
	flag.IntVar(&o.perProject, "per-project", 5, "VMs of one project migrated at once")
	flag.IntVar(&o.cache, "cache", 2000, "the worker's sticky workflow cache size (workflows kept in memory)")
	flag.IntVar(&o.parallel, "parallel", 16, "projects started at once, and histories read at once")
	flag.BoolVar(&o.driver, "driver", true, "run the projects through stage 4's driver (ProjectsMigration); false starts one ProjectMigration per project directly")
	flag.IntVar(&o.atOnce, "at-once", 200, "with -driver, projects migrated at once")
	flag.DurationVar(&o.timeout, "timeout", 60*time.Minute, "give up after this long")
	flag.Parse()
	log.SetFlags(0)
	if o.vms < o.projects || o.projects <= 0 {
		log.Fatalf("bench: -vms %d -projects %d: give at least one project and at least one VM per project", o.vms, o.projects)
	}
	if err := run(o); err != nil {
		log.Fatalf("bench: %v", err)
	}
}

func run(o options) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	// Only -server stack needs the stack's configuration file.
	cfg, err := config.Load(filepath.Join(o.stateDir, config.FileName), o.server == "stack")
	if err != nil {
		return fmt.Errorf("%v (run `make up` first, or use -server own)", err)
	}
	// serverCPU, when the benchmark knows the server's processes, is the CPU each
	// has used so far.
	var serverCPU func() (map[string]time.Duration, error)
	serverName := "the dev server"
	switch o.server {
	case "stack":
	case "postgres":
		cfg.Temporal.Address = devstack.ProdTemporal().Address
		serverName = "Temporal's services and PostgreSQL"
		serverCPU = func() (map[string]time.Duration, error) { return prodServerCPU(o.stateDir) }
		fmt.Printf("on the stack's production Temporal at %s (PostgreSQL)\n", cfg.Temporal.Address)
	case "own":
		srv, err := startDevServer(ctx)
		if err != nil {
			return err
		}
		defer srv.Stop() //nolint:errcheck
		serverCPU = func() (map[string]time.Duration, error) {
			d, err := procstat.CPUTime(srv.Pid())
			return map[string]time.Duration{"temporal server start-dev": d}, err
		}
		cfg.Temporal.Address = srv.Address
		fmt.Printf("started a Temporal dev server of its own at %s (in memory; log %s)\n", srv.Address, srv.LogPath)
	default:
		cfg.Temporal.Address = o.server
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	admin, err := temporalclient.Dial(ctx, cfg.Temporal, logger)
	if err != nil {
		return err
	}
	if err := temporalsetup.Register(ctx, admin, temporalsetup.RegisterOptions{Namespace: o.namespace, Description: "conveyor migration scale benchmark", Retention: 24 * time.Hour}); err != nil {
		admin.Close()
		return err
	}
	admin.Close()
	cfg.Temporal.Namespace = o.namespace
	cl, err := temporalclient.Dial(ctx, cfg.Temporal, logger)
	if err != nil {
		return err
	}
	defer cl.Close()

	st := &stubs{vmsPerProject: map[string]int{}}
	runID := time.Now().UTC().Format("150405")
	var projects []string
	for i := range o.projects {
		p := fmt.Sprintf("bench%s-p%04d", runID, i)
		projects = append(projects, p)
		st.vmsPerProject[p] = o.vms / o.projects
		if i < o.vms%o.projects {
			st.vmsPerProject[p]++
		}
	}

	worker.SetStickyWorkflowCacheSize(o.cache)
	w := worker.New(cl, workflows.TaskQueueMigrate, worker.Options{
		MaxConcurrentWorkflowTaskPollers: 8,
		MaxConcurrentActivityTaskPollers: 8,
	})
	registerWorkflows(w)
	st.register(w)
	if err := w.Start(); err != nil {
		return fmt.Errorf("starting the worker: %w", err)
	}
	defer w.Stop()

	mode := fmt.Sprintf("stage 4's driver ProjectsMigration (automatic mode, %d projects at once)", o.atOnce)
	if !o.driver {
		mode = "one ProjectMigration per project, all started at once"
	}
	fmt.Printf("migrating %d VMs in %d projects: %s, %d VMs at once per project; namespace %s\n",
		o.vms, o.projects, mode, o.perProject, o.namespace)
	start := time.Now()
	cpu0, _ := procstat.CPUTime(0)
	var srvCPU0, srvCPU1 map[string]time.Duration
	var srvErr error
	if serverCPU != nil {
		srvCPU0, srvErr = serverCPU()
	}
	type result struct {
		notDone []string
		err     error
	}
	finished := make(chan result, 1)
	go func() {
		var r result
		if o.driver {
			r.notDone, r.err = runDriver(ctx, cl, o, "bench-driver-"+runID, projects)
		} else {
			r.notDone, r.err = runDirect(ctx, cl, o, projects, st.vmsPerProject)
		}
		finished <- r
	}()
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	var res result
wait:
	for {
		select {
		case res = <-finished:
			break wait
		case <-tick.C:
			rss, _ := procstat.PeakRSS(0)
			fmt.Printf("  %6s  %5d/%d VMs migrated, %d activities, peak RSS %d MB\n", time.Since(start).Round(time.Second),
				st.deleted.Load(), o.vms, st.calls.Load(), rss>>20)
		case <-ctx.Done():
			return fmt.Errorf("not finished after %s: %d/%d VMs migrated", o.timeout, st.deleted.Load(), o.vms)
		}
	}
	wall := time.Since(start)
	cpu1, _ := procstat.CPUTime(0)
	if serverCPU != nil && srvErr == nil {
		srvCPU1, srvErr = serverCPU()
	}
	rss, err := procstat.PeakRSS(0)
	if err != nil {
		return err
	}
	w.Stop()
	if res.err != nil {
		return res.err
	}
	for _, p := range res.notDone {
		fmt.Println("  NOT DONE", p)
	}
	fmt.Printf("all projects closed after %s; reading every run's history...\n", wall.Round(time.Millisecond))
	if err := settle(ctx, cl, start); err != nil {
		return err
	}
	runs, err := listRuns(ctx, cl, start)
	if err != nil {
		return err
	}
	if err := countEvents(ctx, cl, runs, o.parallel); err != nil {
		return err
	}
	sums := summarize(runs)
	largest := 0
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nWORKFLOW\tRUNS\tCOMPLETED\tLARGEST HISTORY\tRUN")
	for _, s := range sums {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", s.Type, s.Runs, s.Completed, s.MaxEvents, s.MaxID)
		largest = max(largest, s.MaxEvents)
	}
	fmt.Fprintf(tw, "\nMEASURE\tRESULT\tTARGET\tMET\n")
	fmt.Fprintf(tw, "wall time (%d VMs, %d projects)\t%s\t< %s\t%s\n", o.vms, o.projects, wall.Round(time.Second), targetWall, yes(wall < targetWall))
	fmt.Fprintf(tw, "worker peak RSS (VmHWM)\t%d MB\t< %d MB\t%s\n", rss>>20, targetRSS>>20, yes(rss < targetRSS))
	fmt.Fprintf(tw, "largest history (events)\t%d\t< %d\t%s\n", largest, targetEvents, yes(largest < targetEvents))
	fmt.Fprintf(tw, "activities run (stubs)\t%d\t\t\n", st.calls.Load())
	if p50, p99, most, n := timerLateness(runs); n > 0 {
		fmt.Fprintf(tw, "timers fired late by (%d timers)\tp50 %s, p99 %s, max %s\t\t\n", n, p50.Round(time.Millisecond), p99.Round(time.Millisecond), most.Round(time.Millisecond))
	}
	fmt.Fprintf(tw, "CPU used by the worker process\t%s (%.1f ms per VM)\t\t\n", (cpu1 - cpu0).Round(time.Second), float64((cpu1-cpu0).Milliseconds())/float64(o.vms))
	if srvCPU1 != nil && srvErr == nil {
		used := total(srvCPU1) - total(srvCPU0)
		fmt.Fprintf(tw, "CPU used by %s\t%s (%.1f ms per VM)\t\t\n", serverName, used.Round(time.Second), float64(used.Milliseconds())/float64(o.vms))
		fmt.Fprintf(tw, "share of the %d cores they got\t%.0f%%\t\t\n", runtime.NumCPU(), 100*(cpu1-cpu0+used).Seconds()/wall.Seconds()/float64(runtime.NumCPU()))
		if len(srvCPU1) > 1 {
			for _, name := range prodServices {
				d := srvCPU1[name] - srvCPU0[name]
				fmt.Fprintf(tw, "  of which %s\t%s (%.1f ms per VM)\t\t\n", name, d.Round(time.Second), float64(d.Milliseconds())/float64(o.vms))
			}
		}
	}
	fmt.Fprintf(tw, "VMs migrated (sources deleted)\t%d\t%d\t%s\n", st.deleted.Load(), o.vms, yes(st.deleted.Load() == int64(o.vms)))
	fmt.Fprintf(tw, "projects not done\t%d\t0\t%s\n", len(res.notDone), yes(len(res.notDone) == 0))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(res.notDone) > 0 {
		return fmt.Errorf("%d projects did not finish", len(res.notDone))
	}
	return nil
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}
