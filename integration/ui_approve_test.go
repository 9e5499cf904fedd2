package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/workflows/promotions"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"gopkg.in/yaml.v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wikimedia/conveyor/activities/buildkit"
	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/activities/registry"
	"github.com/wikimedia/conveyor/activities/source"
	"github.com/wikimedia/conveyor/internal/client/launch"
	"github.com/wikimedia/conveyor/internal/client/payloadcrypt"
	"github.com/wikimedia/conveyor/internal/client/temporalclient"
	"github.com/wikimedia/conveyor/internal/dev/gittest"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/workflows"
)

// uiNamespace keeps the browser test's promotions and worker apart from the other
// tests on the shared Temporal dev server.
const uiNamespace = "conveyor-ui-it"

// uiChromium is Debian's chromium, which `make deps` (tools/deps.sh) installs.
const uiChromium = "/usr/bin/chromium"

// TestUIApprovePromotion approves a promotion waiting at its gate the way a person
// does: Debian's chromium, driven by playwright-core (integration/ui/approve.mjs),
// finds it in the Temporal Web UI's workflow list of the namespace, opens it and
// sends `approve` with {"approver", "reason"} through the UI's own "Send a Signal"
// dialog. The real Promotion workflow, on a real worker, must then record the
// approval with the approver's name and promote the service to production in
// every cluster.
func TestUIApprovePromotion(t *testing.T) {
	playwright := uiBrowserTools(t)
	nsCfg := stacktest.Namespace(t, uiNamespace)
	if len(nsCfg.Promotion.Clusters) == 0 || nsCfg.Promotion.ConfigRepo == "" {
		t.Fatalf("the stack's configuration has no promotion clusters or configuration registry (promotion.clusters, promotion.configRepo in %s): `make up` writes them", stackConfigPath())
	}
	service := "uiapprove-" + randomHex(t)[:8]
	approver, reason := "alice", "vetted in the browser test"
	configRepo := uiConfigRepo(t, nsCfg, service, approver)
	t.Cleanup(func() { uiDeleteNamespaces(t, nsCfg, service) })

	worker := startUIWorker(t, configRepo)
	c := uiTemporalClient(t, nsCfg)
	image := uiHelloImage(t, nsCfg, service)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	run, err := launch.Promotion(ctx, c, promotions.PromotionInput{
		Service: service, Image: image, Source: promotions.PromotionSource{Project: "ui-approve-test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	id := run.GetID()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("worker output:\n%s", worker.String())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// Ends a promotion the test left waiting; an ended one stays as it is.
		_ = c.TerminateWorkflow(ctx, id, run.GetRunID(), "the browser test ended")
	})
	t.Logf("promotion %s: %s/namespaces/%s/workflows/%s", id, strings.TrimRight(nsCfg.Temporal.UIURL, "/"), uiNamespace, url.PathEscape(id))

	status := func() (promotions.PromotionStatus, error) { return launch.PromotionStatus(ctx, c, id, run.GetRunID()) }
	st := uiWaitForStatus(t, 10*time.Minute, "the promotion waiting at its gate (staging deployed and checked)", status,
		func(st promotions.PromotionStatus) bool {
			return st.Stage == promotions.PromotionStageGate && st.Waiting != ""
		})
	if st.ApprovedBy != "" {
		t.Fatalf("the promotion was approved by %q before the browser sent anything", st.ApprovedBy)
	}

	summary := uiRunApproveScript(t, playwright, uiApproveArgs{
		ui: nsCfg.Temporal.UIURL, namespace: uiNamespace, workflowID: id,
		approver: approver, reason: reason,
		// Finds it as a person would: the running promotion at its gate.
		filter: fmt.Sprintf(`WorkflowType="Promotion" AND %s="%s"`, workflows.SearchAttributeStage, promotions.PromotionStageGate),
		// The gate says on the page who may act and how (its current details).
		expect: []string{"for one of the approvers: " + approver, "Staging: GET http", "conveyor promote approve " + id + " --approver NAME"},
	})
	t.Logf("browser run: %s", summary)

	st = uiWaitForStatus(t, time.Minute, "the promotion recording the approval", status,
		func(st promotions.PromotionStatus) bool { return st.ApprovedBy != "" })
	if st.ApprovedBy != approver {
		t.Fatalf("approved by %q, want %q; decisions %+v", st.ApprovedBy, approver, st.Decisions)
	}
	i := slices.IndexFunc(st.Decisions, func(d promotions.DecisionRecord) bool { return d.Verb == promotions.PromoteApprove })
	if i < 0 {
		t.Fatalf("the status lists no approve decision: %+v", st.Decisions)
	}
	if d := st.Decisions[i]; d.Approver != approver || d.Reason != reason || d.Via != "signal" || !d.Accepted || d.At.IsZero() {
		t.Errorf("the approve decision is %+v, want an accepted signal from %q with reason %q and a time", d, approver, reason)
	}
	uiCheckSignalEvent(t, c, nsCfg.Temporal.PayloadKeyFile, id, run.GetRunID(), approver)

	var final promotions.PromotionStatus
	if err := run.Get(ctx, &final); err != nil {
		st, _ := status()
		t.Fatalf("the approved promotion failed: %v\nstatus: %+v", err, st)
	}
	if final.Stage != promotions.PromotionStagePromoted {
		t.Errorf("final stage %q, want %q", final.Stage, promotions.PromotionStagePromoted)
	}
	if final.ApprovedBy != approver {
		t.Errorf("final approvedBy %q, want %q", final.ApprovedBy, approver)
	}
	if len(final.Clusters) != len(nsCfg.Promotion.Clusters) {
		t.Errorf("the promotion went to %d clusters (%+v), the stack has %d", len(final.Clusters), final.Clusters, len(nsCfg.Promotion.Clusters))
	}
	for _, cl := range final.Clusters {
		// A service new to a cluster is installed there, without a canary.
		if cl.State != promotions.ClusterPromoted && cl.State != promotions.ClusterInstalled {
			t.Errorf("cluster %s ended %q (%s), want promoted or installed", cl.Name, cl.State, cl.Detail)
		}
		t.Logf("cluster %s: %s, revision %d (%s)", cl.Name, cl.State, cl.Revision, cl.Detail)
	}
}

// uiWaitForStatus polls the promotion's status until done says so, and fails the
// test at once when the promotion has ended with an error.
func uiWaitForStatus(t *testing.T, timeout time.Duration, what string, status func() (promotions.PromotionStatus, error), done func(promotions.PromotionStatus) bool) promotions.PromotionStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, err := status()
		switch {
		case err == nil && done(st):
			return st
		case err == nil && st.Error != "":
			t.Fatalf("%s: the promotion ended in stage %s: %s", what, st.Stage, st.Error)
		case time.Now().After(deadline):
			t.Fatalf("%s: not after %s: stage %q, waiting %q, query error %v", what, timeout, st.Stage, st.Waiting, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// uiBrowserTools checks for chromium and node and installs playwright-core
// (tools/playwright.sh: quick when it is there), returning its directory.
func uiBrowserTools(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(uiChromium); err != nil {
		t.Fatalf("the browser test needs Debian's chromium at %s: `make deps` (tools/deps.sh) installs it: %v", uiChromium, err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("the browser test needs Node.js (node and npm on the PATH) to run integration/ui/approve.mjs: %v", err)
	}
	cmd := exec.Command(filepath.Join(repoDir, "tools", "playwright.sh"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tools/playwright.sh (installs playwright-core from npm into ~/.cache/conveyor/node) failed: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// uiApproveArgs are integration/ui/approve.mjs's arguments.
type uiApproveArgs struct {
	ui, namespace, workflowID, approver, reason, filter string
	// expect are texts the workflow's page must show (its current details).
	expect []string
}

// uiRunApproveScript runs integration/ui/approve.mjs and returns its summary line
// with the process's own measurements; a failure shows its output, which names
// the step and where the screenshot is.
func uiRunApproveScript(t *testing.T, playwright string, a uiApproveArgs) string {
	t.Helper()
	artifacts := filepath.Join(os.TempDir(), "conveyor-ui-"+randomHex(t)[:8])
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{filepath.Join(repoDir, "integration", "ui", "approve.mjs"),
		"--playwright", playwright, "--chromium", uiChromium,
		"--ui", a.ui, "--namespace", a.namespace, "--workflow-id", a.workflowID,
		"--approver", a.approver, "--reason", a.reason, "--filter", a.filter,
		"--artifacts", artifacts, "--timeout", "120"}
	for _, e := range a.expect {
		args = append(args, "--expect", e)
	}
	cmd := exec.CommandContext(ctx, "node", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		t.Fatalf("the browser did not approve the promotion through the UI (%v after %s):\n%s%s\n(screenshot and page in %s)",
			err, wall.Round(time.Millisecond), stderr.String(), stdout.String(), artifacts)
	}
	t.Log(strings.TrimSpace(stderr.String()))
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var sum struct {
		Signaled     bool           `json:"signaled"`
		WallMs       int64          `json:"wallMs"`
		PeakPSS      int64          `json:"peakPSSBytes"`
		PeakRSSSum   int64          `json:"peakRSSSumBytes"`
		Processes    int            `json:"peakProcesses"`
		StepsMs      map[string]int `json:"stepsMs"`
		WorkflowPage string         `json:"page"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil || !sum.Signaled {
		t.Fatalf("approve.mjs printed no summary (%v):\n%s", err, stdout.String())
	}
	var maxRSS int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		maxRSS = ru.Maxrss * 1024
	}
	return fmt.Sprintf("wall %s (script %dms, steps %v); peak memory of node+chromium: PSS %d MiB (RSS summed over %d processes %d MiB; largest single process %d MiB)",
		wall.Round(time.Millisecond), sum.WallMs, sum.StepsMs, sum.PeakPSS>>20, sum.Processes, sum.PeakRSSSum>>20, maxRSS>>20)
}

// uiCheckSignalEvent finds the approve signal in the run's history, with the
// approver in its payload.
//
// With the stack's payload key (temporal.payloadKeyFile), the Web UI encodes what it
// sends through the stack's codec server: the payload must be stored encrypted, and
// decrypt to the approver.
func uiCheckSignalEvent(t *testing.T, c client.Client, keyFile, id, runID, approver string) {
	t.Helper()
	var codec *payloadcrypt.Codec
	if keyFile != "" {
		var err error
		if codec, err = payloadcrypt.Load("temporal.payloadKeyFile", keyFile); err != nil {
			t.Fatal(err)
		}
	}
	it := c.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var found int
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		a := ev.GetWorkflowExecutionSignaledEventAttributes()
		if a == nil || a.GetSignalName() != promotions.PromoteApprove {
			continue
		}
		found++
		payloads := a.GetInput().GetPayloads()
		if codec != nil {
			for _, p := range payloads {
				if enc := string(p.GetMetadata()[converter.MetadataEncoding]); enc != payloadcrypt.Encoding {
					t.Errorf("the approve signal's payload is stored as %q, want %s: the Web UI did not encode it through the codec server (--ui-codec-endpoint)", enc, payloadcrypt.Encoding)
				}
			}
			var err error
			if payloads, err = codec.Decode(payloads); err != nil {
				t.Fatalf("decrypting the approve signal's payload with %s: %v", keyFile, err)
			}
		}
		var payload string
		for _, p := range payloads {
			payload += string(p.GetData())
		}
		if !strings.Contains(payload, `"approver":"`+approver+`"`) && !strings.Contains(payload, `"approver": "`+approver+`"`) {
			t.Errorf("the approve signal's payload is %s, want the approver %q", payload, approver)
		}
		// The Web UI sends no identity with a signal (docs/promotion.md).
		t.Logf("history: approve signal with identity %q and payload %s", a.GetIdentity(), payload)
	}
	if found != 1 {
		t.Errorf("the history has %d approve signals, want exactly the one the browser sent", found)
	}
}

// uiConfigRepo makes the browser test's configuration registry: a clone of the
// stack's sample, with the sample service's files as service's, in namespaces of
// its own, promoted in two short canary steps, approver among the approvers.
func uiConfigRepo(t *testing.T, c config.Config, service, approver string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "configrepo")
	gittest.Git(t, "", "clone", "--quiet", c.Promotion.ConfigRepo, dir)
	const sample = "hello"
	from, to := filepath.Join(dir, "services", sample), filepath.Join(dir, "services", service)
	if err := os.Rename(from, to); err != nil {
		t.Fatalf("the stack's configuration registry %s has no sample service %q (`make up` makes it): %v", c.Promotion.ConfigRepo, sample, err)
	}
	planFile := filepath.Join(to, "promotion.yaml")
	b, err := os.ReadFile(planFile)
	if err != nil {
		t.Fatal(err)
	}
	var plan map[string]any
	if err := yaml.Unmarshal(b, &plan); err != nil {
		t.Fatalf("%s: %v", planFile, err)
	}
	staging, ok := plan["staging"].(map[string]any)
	prod, ok2 := plan["production"].([]any)
	if !ok || !ok2 || len(prod) == 0 {
		t.Fatalf("%s: no staging or production targets in %s", planFile, b)
	}
	staging["namespace"] = service + "-staging"
	for _, p := range prod {
		p.(map[string]any)["namespace"] = service
	}
	plan["replicas"] = 2
	plan["steps"] = []map[string]any{{"weight": 50}, {"weight": 100}}
	approvers, _ := plan["approvers"].([]any)
	if !slices.Contains(approvers, any(approver)) {
		plan["approvers"] = append(approvers, approver)
	}
	if b, err = yaml.Marshal(plan); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(planFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	gittest.Git(t, dir, "add", "--all")
	gittest.Git(t, dir, "commit", "--quiet", "-m", "browser test: "+service)
	return dir
}

// startUIWorker runs the worker binary's deploy pool (the Promotion and its
// activities) in the test namespace, reading the test's configuration registry.
func startUIWorker(t *testing.T, configRepo string) *syncBuffer {
	t.Helper()
	out := &syncBuffer{}
	cmd := exec.Command(filepath.Join(binDir, "conveyor-worker"), "--config", stackConfigPath(),
		"--namespace", uiNamespace, "--pools", workflows.PoolDeploy)
	cmd.Env = append(os.Environ(), "CONVEYOR_CONFIG_REPO="+configRepo)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
	})
	return out
}

func uiTemporalClient(t *testing.T, c config.Config) client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tc, err := temporalclient.Dial(ctx, c.Temporal, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("Temporal (make up): %v", err)
	}
	t.Cleanup(tc.Close)
	return tc
}

// uiHelloImage builds examples/hello's production variant with the real BuildKit
// activity, pushes it to the stack's registry and publishes it for service,
// returning it by digest.
func uiHelloImage(t *testing.T, c config.Config, service string) string {
	t.Helper()
	dir, ref := serviceRepo(t, service, 1, nil)
	var s testsuite.WorkflowTestSuite
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(source.New(t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bk, err := buildkit.New(ctx, c)
	if err != nil {
		t.Fatalf("BuildKit (make up): %v", err)
	}
	t.Cleanup(func() { _ = bk.Close() })
	env.RegisterActivity(bk)
	v, err := env.ExecuteActivity(contract.PrepareSource.Name, contract.PrepareSourceInput{Repo: dir, Ref: ref})
	if err != nil {
		t.Fatalf("preparing examples/hello: %v", err)
	}
	var src contract.PrepareSourceOutput
	if err := v.Get(&src); err != nil {
		t.Fatal(err)
	}
	v, err = env.ExecuteActivity(contract.BuildVariant.Name, contract.BuildVariantInput{
		Source: src.Source, Blubber: src.Settings.Blubber, Variant: src.Settings.ProductionVariant,
		Push: "candidates/" + service + ":ui-approve",
	})
	if err != nil {
		t.Fatalf("building examples/hello's production image: %v", err)
	}
	var out contract.BuildVariantOutput
	if err := v.Get(&out); err != nil {
		t.Fatal(err)
	}
	// Published as the pipeline publishes a tested image: only those are promoted.
	reg, err := registry.New(c)
	if err != nil {
		t.Fatal(err)
	}
	env.RegisterActivity(reg)
	v, err = env.ExecuteActivity(contract.PublishImage.Name, contract.PublishImageInput{
		From: out.Ref, Repository: service, Tags: []string{"ui-approve-production"}})
	if err != nil {
		t.Fatalf("publishing examples/hello's production image: %v", err)
	}
	var pub contract.PublishImageOutput
	if err := v.Get(&pub); err != nil {
		t.Fatal(err)
	}
	return c.Registry.Address + "/" + service + "@" + pub.Digest
}

// uiDeleteNamespaces removes the test service's namespaces, staging's and
// production's, in every cluster of the stack.
func uiDeleteNamespaces(t *testing.T, c config.Config, service string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, cl := range c.Promotion.Clusters {
		rc, err := clientcmd.BuildConfigFromFlags("", cl.Kubeconfig)
		if err != nil {
			t.Errorf("cluster %s: kubeconfig %s: %v", cl.Name, cl.Kubeconfig, err)
			continue
		}
		cs, err := kubernetes.NewForConfig(rc)
		if err != nil {
			t.Errorf("cluster %s: %v", cl.Name, err)
			continue
		}
		for _, ns := range []string{service, service + "-staging"} {
			err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("cluster %s: deleting namespace %s: %v", cl.Name, ns, err)
			}
		}
	}
}
