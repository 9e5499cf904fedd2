package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// report prints the measurements, the RSS of each process and P5's ratios.
func report(out io.Writer, o options, runs []serverRun) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSERVER\tADDRESS\tWORKFLOW\tN\tSTARTED IN\tFIRST START → LAST COMPLETION\tCOMPLETIONS/S\tPEAK IN FLIGHT")
	for _, r := range runs {
		for _, w := range []struct {
			name string
			m    measurement
		}{
			{fmt.Sprintf("Pipeline (%d stubbed activities)", activitiesPerPipeline(o.publish)), r.pipelines},
			{"Ping (trivial: 1 activity)", r.trivial},
		} {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%.1f\t%d\n", r.name, r.address, w.name, w.m.n,
				w.m.starts.Round(time.Millisecond), w.m.wall.Round(time.Millisecond), w.m.rate(), w.m.peakInFlight)
		}
	}
	fmt.Fprintln(tw, "\nSERVER\tWORKFLOW\tACTIVITY SCHEDULE-TO-START\tWORKFLOW TASK SCHEDULE-TO-START")
	for _, r := range runs {
		for _, w := range []struct {
			name string
			m    measurement
		}{{"Pipeline", r.pipelines}, {"Ping", r.trivial}} {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.name, w.name, w.m.activityWait, w.m.workflowTaskWait)
		}
	}
	fmt.Fprintln(tw, "\nSERVER\tPROCESS\tRSS IDLE\tPEAK RSS UNDER PIPELINES\tPEAK RSS UNDER PING")
	for _, r := range runs {
		for i, p := range r.procs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.name, p.label, mb(r.idle[i]), mb(r.underPipelines[i]), mb(r.underTrivial[i]))
		}
	}
	fmt.Fprintln(tw, "\nRATIO (completions/s)\tVALUE\tTARGET\tMET")
	ratio := func(name string, a, b measurement) {
		v := a.rate() / b.rate()
		fmt.Fprintf(tw, "%s\t%.2f\t≥ %.1f\t%s\n", name, v, target, yes(v >= target))
	}
	var prod, dev *serverRun
	for i := range runs {
		switch runs[i].name {
		case "prod":
			prod = &runs[i]
		case "dev":
			dev = &runs[i]
		}
	}
	if prod != nil && dev != nil {
		ratio("pipelines: prod ÷ dev", prod.pipelines, dev.pipelines)
	}
	for _, r := range runs {
		ratio(fmt.Sprintf("pipelines ÷ trivial on %s", r.name), r.pipelines, r.trivial)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nRSS is VmRSS of /proc/PID/status: idle once the workers poll, peak sampled every 100 ms under each load;")
	fmt.Fprintln(out, "the Pings run after the pipelines, in the same processes, so their peak includes what the pipelines left.")
	if o.n < 1000 {
		fmt.Fprintf(out, "-n %d: P5 asks for 1,000 in flight; a smaller -n measures less contention.\n", o.n)
	}
	return nil
}

func mb(b int64) string { return fmt.Sprintf("%d MB", b>>20) }

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}
