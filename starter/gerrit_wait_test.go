package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	"github.com/wikimedia/conveyor/internal/dev/bintest"
	"github.com/wikimedia/conveyor/internal/dev/devstack"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
	"github.com/wikimedia/conveyor/internal/dev/tlstest"
	"github.com/wikimedia/conveyor/workflows/changes"
)

const waitSecret = "wait-test-secret-0123456789"

// startServeBeforeTemporal starts the built `conveyor gerrit serve` against a
// loopback port nothing listens on, with namespace (if not empty) and the
// schedules' sync on, and returns it, its base URL, Temporal's address and port.
func startServeBeforeTemporal(t *testing.T, namespace string) (p *bintest.Process, base, address string, port int) {
	t.Helper()
	port, err := devstack.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	address = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "secret"), waitSecret+"\n")
	triggersFile := filepath.Join(dir, "triggers.yaml")
	writeFile(t, triggersFile, "webhook: {secretFile: secret}\nprojects: [{name: hello, repo: /srv/nowhere}]\n")
	args := []string{"--state-dir", dir, "gerrit", "serve", "--triggers", triggersFile, "--address", address, "--listen", "127.0.0.1:0"}
	if namespace != "" {
		args = append(args, "--namespace", namespace)
	}
	p = bintest.Start(t, bintest.Build(t, "."), args...)
	return p, p.WaitForMatch(t, listening, time.Minute), address, port
}

// deliver posts event as the webhooks plugin does and returns the status and the
// answer.
func deliver(t *testing.T, base, event string) (int, string) {
	t.Helper()
	resp, err := http.Post(base+"/gerrit/events/"+waitSecret, "application/json", bytes.NewBufferString(event))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestGerritServeStartedBeforeTemporal runs the built `conveyor gerrit serve`
// against an address where nothing listens yet: it listens, live and not ready,
// and answers an event 503 (the plugin delivers it again) without starting
// anything; once a dev server starts there it syncs, becomes ready, and the same
// event starts its verification, every delivery getting the same answer.
func TestGerritServeStartedBeforeTemporal(t *testing.T) {
	p, base, address, port := startServeBeforeTemporal(t, "")
	stacktest.WaitFor(t, 30*time.Second, "/readyz before Temporal is up",
		stacktest.Answers(base+"/readyz", http.StatusServiceUnavailable, "temporal: unreachable at "+address+": "))
	if err := stacktest.Answers(base+"/healthz", http.StatusOK, "ok")(); err != nil {
		t.Error(err)
	}
	event := `{"type":"patchset-created","change":{"project":"hello","branch":"main","number":8},"patchSet":{"number":1},"eventCreatedOn":1767225602}`
	if code, answer := deliver(t, base, event); code != http.StatusServiceUnavailable || !strings.Contains(answer, "not connected to Temporal at "+address+" yet") {
		t.Errorf("an event while Temporal is down: %d %s, want 503 saying Temporal is not reached yet", code, answer)
	}

	srv, err := devstack.StartDevServer(context.Background(), devstack.WithPort(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	stacktest.WaitFor(t, time.Minute, "/readyz once Temporal is up", stacktest.Answers(base+"/readyz", http.StatusOK, "ready"))
	p.WaitForMatch(t, regexp.MustCompile(`base image check \S+: every `), time.Second)

	id := changes.VerifyID("hello", 8, 1, "")
	for i := range 2 {
		code, answer := deliver(t, base, event)
		if code != http.StatusAccepted || !strings.Contains(answer, `"workflowId":"`+id+`"`) {
			t.Errorf("delivery %d after Temporal is up: %d %s, want 202 starting %s", i+1, code, answer, id)
		}
	}
	cl, err := client.Dial(client.Options{HostPort: address, Logger: log.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.DescribeWorkflowExecution(context.Background(), id, ""); err != nil {
		t.Errorf("the verification the event started: %v", err)
	}
	p.Signal(t, syscall.SIGTERM)
	if code, err := p.Wait(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("after SIGTERM: exit code %d, %v, want 0; output:\n%s", code, err, p.Output())
	}
}

// TestGerritServeStopsPromptlyWhileWaitingForTemporal sends SIGTERM to a
// receiver that has never reached Temporal: it exits 0 at once.
func TestGerritServeStopsPromptlyWhileWaitingForTemporal(t *testing.T) {
	p, _, _, _ := startServeBeforeTemporal(t, "")
	p.WaitForMatch(t, regexp.MustCompile(`msg="Temporal is unreachable: trying again"`), time.Minute)
	p.Signal(t, syscall.SIGTERM)
	if code, err := p.Wait(5 * time.Second); err != nil || code != 0 {
		t.Fatalf("SIGTERM while waiting for Temporal: exit code %d, %v, want 0 within 5s; output:\n%s", code, err, p.Output())
	}
}

// TestGerritServeRefusesANamespaceThatDoesNotExist starts the receiver before
// Temporal with a namespace the dev server then started does not have: it exits
// non-zero naming the namespace.
func TestGerritServeRefusesANamespaceThatDoesNotExist(t *testing.T) {
	p, _, address, port := startServeBeforeTemporal(t, "conveyor-nosuch")
	srv, err := devstack.StartDevServer(context.Background(), devstack.WithPort(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	code, err := p.Wait(time.Minute)
	want := `namespace "conveyor-nosuch" does not exist on Temporal at ` + address
	if err != nil || code == 0 || !strings.Contains(p.Output(), want) {
		t.Fatalf("exit code %d, %v, output:\n%s\nwant a non-zero exit and %q", code, err, p.Output(), want)
	}
}

// TestGerritServeTLS: with --listen-tls-cert and --listen-tls-key the built `conveyor gerrit
// serve` serves HTTPS with that certificate (health and events on the same
// listener), before Temporal is even reached; one flag without the other is
// refused at start.
func TestGerritServeTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key, pool := tlstest.WriteSelfSigned(t, dir, "conveyor-receiver", time.Now())
	writeFile(t, filepath.Join(dir, "secret"), waitSecret+"\n")
	triggersFile := filepath.Join(dir, "triggers.yaml")
	writeFile(t, triggersFile, "webhook: {secretFile: secret}\nprojects: [{name: hello, repo: /srv/nowhere}]\n")
	port, err := devstack.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	bin := bintest.Build(t, ".")
	args := []string{"--state-dir", dir, "gerrit", "serve", "--triggers", triggersFile,
		"--address", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), "--listen", "127.0.0.1:0"}

	p := bintest.Start(t, bin, append(args, "--listen-tls-cert", cert, "--listen-tls-key", key)...)
	base := p.WaitForMatch(t, listening, time.Minute)
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("serve says it listens on %s; want https://", base)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("GET %s/healthz over TLS: %v", base, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil || resp.TLS.PeerCertificates[0].Subject.CommonName != "conveyor-receiver" {
		t.Errorf("GET /healthz: %s, want 200 from the given certificate", resp.Status)
	}

	out, err := exec.Command(bin, append(args, "--listen-tls-cert", cert)...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--listen-tls-cert and --listen-tls-key go together") {
		t.Errorf("--listen-tls-cert alone: %v\n%s\nwant a refusal naming both flags", err, out)
	}
}
