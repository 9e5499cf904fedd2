// Command pipeline times the change pipeline (`conveyor pipeline run`, through a real
// worker, on the local stack) against the same five steps done by the raw tools in a
// script (raw.sh: buildctl, helm, curl, crane), and prints the ratio. The target is
// conveyor / raw ≤ 1.05.
//
//	make up bin && tools/build.sh helm crane && go run ./bench/pipeline -runs 3
//	go run ./bench/pipeline -tracing -runs 4   # traced against untraced
//
// Each run uses a fresh copy of examples/hello with a unique page, for both sides, so
// neither side's builds come from the other's cache.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/wikimedia/conveyor/internal/dev/gittest"
	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/internal/lib/pipelineconfig"
)

func main() {
	runs := flag.Int("runs", 3, "number of runs of each side")
	stateDir := flag.String("state-dir", config.DefaultStateDir, "the local stack's state directory")
	tracing := flag.Bool("tracing", false, "measure what tracing costs instead: the pipeline on a worker exporting every trace against one without tracing (target: at most 1.02)")
	flag.Parse()
	log.SetFlags(0)
	do := run
	if *tracing {
		do = runTracing
	}
	if err := do(*runs, *stateDir); err != nil {
		log.Fatalf("bench: %v", err)
	}
}

func run(runs int, stateDir string) error {
	cfg, err := config.Load(filepath.Join(stateDir, config.FileName), true)
	if err != nil {
		return fmt.Errorf("%v (run `make up` first)", err)
	}
	repoRoot, err := os.Getwd()
	if err != nil {
		return err
	}
	tools := map[string]string{}
	for _, t := range []struct{ tool, bin string }{{"buildkit", "buildctl"}, {"helm", "helm"}, {"crane", "crane"}} {
		out, err := exec.Command("tools/build.sh", "--print-dir", t.tool).Output()
		if err != nil {
			return err
		}
		tools[t.bin] = filepath.Join(strings.TrimSpace(string(out)), t.bin)
		if _, err := os.Stat(tools[t.bin]); err != nil {
			return fmt.Errorf("%s missing: run `tools/build.sh %s`", tools[t.bin], t.tool)
		}
	}
	worker := exec.Command("bin/conveyor-worker", "--config", filepath.Join(stateDir, config.FileName), "--pools", "build,deploy", "--log-level", "warn")
	worker.Stderr = os.Stderr
	if err := worker.Start(); err != nil {
		return fmt.Errorf("starting bin/conveyor-worker (make bin): %v", err)
	}
	defer func() { _ = worker.Process.Signal(os.Interrupt); _ = worker.Wait() }()

	var rawT, convT []time.Duration
	for i := range runs {
		// Alternate which side goes first, so a warming cache favours neither.
		sides := []func() (time.Duration, error){
			func() (time.Duration, error) { return raw(cfg, repoRoot, tools) },
			func() (time.Duration, error) { return conveyor(cfg, repoRoot, stateDir) },
		}
		if i%2 == 1 {
			slices.Reverse(sides)
		}
		var d [2]time.Duration
		for j, side := range sides {
			if d[j], err = side(); err != nil {
				return fmt.Errorf("run %d: %v", i+1, err)
			}
		}
		if i%2 == 1 {
			d[0], d[1] = d[1], d[0]
		}
		rawT, convT = append(rawT, d[0]), append(convT, d[1])
		fmt.Printf("run %d: raw tools %6.2fs  conveyor %6.2fs  ratio %.3f\n", i+1, d[0].Seconds(), d[1].Seconds(), d[1].Seconds()/d[0].Seconds())
	}
	r, c := median(rawT), median(convT)
	fmt.Printf("median: raw tools %.2fs  conveyor %.2fs  conveyor/raw %.3f (target <= 1.05)\n", r.Seconds(), c.Seconds(), c.Seconds()/r.Seconds())
	return nil
}

// serviceRepo makes a git repository of examples/hello with a unique page.
func serviceRepo(repoRoot, token string) (string, error) {
	dir, err := os.MkdirTemp("", "bench-hello-")
	if err != nil {
		return "", err
	}
	if out, err := exec.Command("cp", "-a", filepath.Join(repoRoot, "examples", "hello")+"/.", dir).CombinedOutput(); err != nil {
		return "", fmt.Errorf("copying the example: %v: %s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "www", "bench.txt"), []byte(token+"\n"), 0o644); err != nil {
		return "", err
	}
	if _, err := gittest.CommitAll(context.Background(), dir, token); err != nil {
		return "", err
	}
	return dir, nil
}

func token() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// conveyor runs the pipeline through the CLI and the running worker.
func conveyor(cfg config.Config, repoRoot, stateDir string) (time.Duration, error) {
	return conveyorWith(filepath.Join(stateDir, config.FileName), repoRoot)
}

// conveyorWith runs the pipeline through the CLI with the configuration file
// configFile.
func conveyorWith(configFile, repoRoot string) (time.Duration, error) {
	tok := token()
	dir, err := serviceRepo(repoRoot, tok)
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	cmd := exec.Command("bin/conveyor", "--config", configFile, "pipeline", "run",
		"--repo", dir, "--ref", "main", "--project", "bench-"+tok, "--publish", "--follow")
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("conveyor pipeline run: %v\n%s", err, out)
	}
	return time.Since(start), nil
}

// raw prepares the script's inputs (not timed) and runs raw.sh (timed).
func raw(cfg config.Config, repoRoot string, tools map[string]string) (time.Duration, error) {
	tok := token()
	dir, err := serviceRepo(repoRoot, tok)
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	work, err := os.MkdirTemp("", "bench-raw-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(work)
	parsed, err := pipelineconfig.ParseSettings(dir, dir)
	if err != nil {
		return 0, err
	}
	set := parsed.Settings
	for _, v := range []struct{ file, variant string }{{"Dockerfile.test", set.TestVariant}, {"Dockerfile.production", set.ProductionVariant}} {
		df, err := parsed.Blubber.Dockerfile(v.variant)
		if err != nil {
			return 0, err
		}
		// The syntax directive would fetch a frontend image from outside; buildkitd's
		// built-in Dockerfile frontend reads the rendering as it is.
		df = strings.TrimPrefix(df, df[:strings.Index(df, "\n")+1])
		if err := os.WriteFile(filepath.Join(work, v.file), []byte(df), 0o644); err != nil {
			return 0, err
		}
	}
	compiled, err := parsed.Blubber.Compile(context.Background(), set.TestVariant)
	if err != nil {
		return 0, err
	}
	argv, _ := json.Marshal(append(compiled.Image.Config.Entrypoint, compiled.Image.Config.Cmd...))
	testDF, _ := os.ReadFile(filepath.Join(work, "Dockerfile.test"))
	if err := os.WriteFile(filepath.Join(work, "Dockerfile.run-tests"), append(testDF, []byte("\nRUN "+string(argv)+"\n")...), 0o644); err != nil {
		return 0, err
	}
	name := "bench-" + tok
	values := set.Values
	if values == nil {
		values = map[string]any{}
	}
	values["appName"] = name
	vb, _ := json.Marshal(values)
	if err := os.WriteFile(filepath.Join(work, "values.json"), vb, 0o644); err != nil {
		return 0, err
	}
	var e2e strings.Builder
	for _, c := range set.E2E {
		method, status := c.Method, c.ExpectStatus
		if method == "" {
			method = "GET"
		}
		if status == 0 {
			status = 200
		}
		fmt.Fprintf(&e2e, "%s\t%s\t%d\t%s\n", method, c.Path, status, c.ExpectBodyContains)
	}
	if err := os.WriteFile(filepath.Join(work, "e2e.tsv"), []byte(e2e.String()), 0o644); err != nil {
		return 0, err
	}
	auth := fmt.Sprintf(`{"auths":{%q:{"username":%q,"password":%q}}}`, cfg.Registry.Address, cfg.Registry.Username, cfg.Registry.Password)
	if err := os.WriteFile(filepath.Join(work, "config.json"), []byte(auth), 0o600); err != nil {
		return 0, err
	}
	cmd := exec.Command(filepath.Join(repoRoot, "bench", "pipeline", "raw.sh"))
	cmd.Env = append(os.Environ(), "REPO="+dir, "WORK="+work, "NAME="+name, "NS=bench-raw-"+tok,
		"REGISTRY="+cfg.Registry.Address, "BUILDKIT="+cfg.Buildkit.Address, "CHART="+filepath.Join(repoRoot, "charts", "service"),
		"KUBECONFIG="+cfg.Kubernetes.Kubeconfig, "DOCKER_CONFIG="+work,
		"BUILDCTL="+tools["buildctl"], "HELM="+tools["helm"], "CRANE="+tools["crane"])
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("raw.sh: %v\n%s", err, out)
	}
	return time.Since(start), nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
