package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wikimedia/conveyor/internal/dev/bintest"
	"github.com/wikimedia/conveyor/internal/dev/devstack"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
)

var listening = regexp.MustCompile(`listening on (https?://[^/]+)/gerrit/events`)

// TestGerritServeReadinessAndDrain runs the built `conveyor gerrit serve` against
// a dev server of its own: /readyz follows Temporal through an outage without a
// restart, and on SIGTERM a request in flight is answered before the process
// exits 0.
func TestGerritServeReadinessAndDrain(t *testing.T) {
	srv, err := devstack.StartDevServer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	dir := t.TempDir()
	const secret = "drain-test-secret-0123456789"
	writeFile(t, filepath.Join(dir, "secret"), secret+"\n")
	triggersFile := filepath.Join(dir, "triggers.yaml")
	writeFile(t, triggersFile, "webhook: {secretFile: secret}\nprojects: [{name: hello, repo: /srv/nowhere}]\n")
	bin := bintest.Build(t, ".")
	p := bintest.Start(t, bin, "--state-dir", dir, "gerrit", "serve", "--triggers", triggersFile, "--address", srv.Address,
		"--listen", "127.0.0.1:0", "--no-sync")
	base := p.WaitForMatch(t, listening, time.Minute)
	stacktest.ReadinessThroughOutage(t, srv, base)

	// A delivery in flight: its headers and half its body are sent before the
	// signal, the rest after. The server's 100 Continue says it has read the
	// headers and the handler reads the body: a request whose headers are not read
	// yet when the drain begins is dropped by net/http, and Gerrit retries it.
	body := `{"type":"patchset-created","change":{"project":"hello","branch":"main","number":7},"patchSet":{"number":1},"eventCreatedOn":1767225601}`
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /gerrit/events/%s HTTP/1.1\r\nHost: conveyor\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n",
		secret, len(body))
	r := bufio.NewReader(conn)
	if err := conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("the delivery's headers: %q, %v, want 100 Continue\n%s", line, err, p.Output())
	}
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}

	p.Signal(t, syscall.SIGTERM)
	p.WaitForMatch(t, regexp.MustCompile(`draining: /readyz answers 503`), 10*time.Second)
	stacktest.WaitFor(t, 10*time.Second, "the listener closed after SIGTERM", func() error {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return nil
		}
		resp.Body.Close()
		return errors.New("GET /readyz after SIGTERM: the listener still accepts")
	})
	if _, err := io.WriteString(conn, body[len(body)/2:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("the delivery in flight at SIGTERM got no answer: %v\n%s", err, p.Output())
	}
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(string(answer), `"action":"verify"`) {
		t.Errorf("the delivery in flight at SIGTERM: %d %s, want 202 verify", resp.StatusCode, answer)
	}
	code, err := p.Wait(30 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("after the drain: exit code %d, %v, want 0; output:\n%s", code, err, p.Output())
	}
}

// TestGerritServeRefusesABadConfiguration runs the built `conveyor gerrit serve`
// with files that do not exist: it exits non-zero naming the file and the key or
// flag that names it.
func TestGerritServeRefusesABadConfiguration(t *testing.T) {
	bin := bintest.Build(t, ".")
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	triggersFile := filepath.Join(dir, "triggers.yaml")
	writeFile(t, triggersFile, "webhook: {secretFile: "+missing+"}\nprojects: []\n")
	good := filepath.Join(dir, "good.yaml")
	writeFile(t, good, "projects: []\n")
	tlsConfig := filepath.Join(dir, "conveyor.yaml")
	writeFile(t, tlsConfig, "temporal: {address: 127.0.0.1:1, tlsCA: "+missing+"}\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--config", missing, "gerrit", "serve", "--triggers", good}, "--config: reading configuration: open " + missing + ": no such file or directory"},
		{[]string{"--state-dir", dir, "gerrit", "serve", "--triggers", missing}, "--triggers: reading the triggers file: open " + missing + ": no such file or directory"},
		{[]string{"--state-dir", dir, "gerrit", "serve", "--triggers", triggersFile}, "webhook.secretFile: open " + missing + ": no such file or directory"},
		{[]string{"--config", tlsConfig, "gerrit", "serve", "--triggers", good}, "(temporal.tlsCA): open " + missing + ": no such file or directory"},
	} {
		code, out := bintest.Run(t, bin, tc.args...)
		if code == 0 || !strings.Contains(out, tc.want) {
			t.Errorf("conveyor %s: exit code %d, output:\n%s\nwant a non-zero exit and %q", strings.Join(tc.args, " "), code, out, tc.want)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
