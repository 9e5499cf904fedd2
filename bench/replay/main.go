// Command replay times `conveyor history replay --recent N` (issue 17): the CLI
// pulls the N most recent histories of a namespace from the server and replays
// each against the workflows compiled into it. It prints the wall time, the time
// per history, the CPU time and the CLI's peak RSS, and the replay's own summary;
// replays are run -runs times and the median reported.
//
//	make bin && go run ./bench/replay                      # 500 of the stack's default namespace
//	go run ./bench/replay -n 500 -namespace conveyor-bench-pipelines
//
// The namespace should hold at least -n runs of mixed types: after `make test`
// the stack's namespaces do; bench/pipelines leaves thousands of pipelines in its own.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"syscall"
	"time"
)

func main() {
	n := flag.Int("n", 500, "how many recent histories to replay")
	namespace := flag.String("namespace", "", "the Temporal namespace (default: the stack configuration's)")
	typ := flag.String("type", "", "only runs of this workflow type (default: every type)")
	runs := flag.Int("runs", 3, "how many times to replay them")
	conveyor := flag.String("conveyor", "bin/conveyor", "the conveyor binary (make bin)")
	flag.Parse()
	log.SetFlags(0)
	if *n <= 0 || *runs <= 0 {
		log.Fatalf("bench: -n %d -runs %d: both must be at least 1", *n, *runs)
	}
	args := []string{"history", "replay", "--recent", strconv.Itoa(*n)}
	if *namespace != "" {
		args = append(args, "--namespace", *namespace)
	}
	if *typ != "" {
		args = append(args, "--type", *typ)
	}
	var walls []time.Duration
	for i := range *runs {
		r, err := replay(*conveyor, args)
		if err != nil {
			log.Fatalf("bench: run %d: %v", i+1, err)
		}
		walls = append(walls, r.wall)
		per := time.Duration(0)
		if r.replayed > 0 {
			per = r.wall / time.Duration(r.replayed)
		}
		fmt.Printf("run %d: %s in %s: %s per history, CPU %s, peak RSS %.1f MiB\n",
			i+1, r.summary, r.wall.Round(time.Millisecond), per.Round(10*time.Microsecond),
			r.cpu.Round(time.Millisecond), float64(r.maxRSS)/(1<<20))
		if r.failed > 0 {
			fmt.Printf("  %d histories did not replay: see above\n", r.failed)
		}
		if r.replayed < *n {
			fmt.Printf("  the namespace had only %d runs to replay, not %d\n", r.replayed, *n)
		}
	}
	slices.Sort(walls)
	fmt.Printf("median wall time of %d replays of %d histories: %s\n", *runs, *n, walls[len(walls)/2].Round(time.Millisecond))
}

type result struct {
	summary          string
	replayed, failed int
	wall, cpu        time.Duration
	maxRSS           int64
}

var summaryRE = regexp.MustCompile(`(\d+) replayed: (\d+) OK, (\d+) failed, (\d+) skipped`)

// replay runs the CLI once and reads its summary line and resource use. A
// failed replay (exit 1) is still a measurement: the summary says how many.
func replay(conveyor string, args []string) (result, error) {
	var r result
	cmd := exec.Command(conveyor, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	start := time.Now()
	err := cmd.Run()
	r.wall = time.Since(start)
	m := summaryRE.FindStringSubmatch(out.String())
	if m == nil {
		return r, fmt.Errorf("%s %v: %v, no summary line in its output:\n%s", conveyor, args, err, out.String())
	}
	r.summary = m[0]
	r.replayed, _ = strconv.Atoi(m[1])
	r.failed, _ = strconv.Atoi(m[3])
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		r.maxRSS = ru.Maxrss * 1024 // kilobytes on Linux
	}
	return r, nil
}
