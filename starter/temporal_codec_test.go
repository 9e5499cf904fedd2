package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/wikimedia/conveyor/internal/client/payloadcrypt"
	"github.com/wikimedia/conveyor/internal/dev/devstack"
	"github.com/wikimedia/conveyor/internal/dev/stacktest"
)

func TestCodecServerCommand(t *testing.T) {
	dir := t.TempDir()
	keys, token := filepath.Join(dir, "payload-keys"), filepath.Join(dir, "token")
	if err := payloadcrypt.EnsureKeyFile(keys, "k1"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(token, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	codec, err := payloadcrypt.Load("test", keys)
	if err != nil {
		t.Fatal(err)
	}
	port, err := devstack.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for _, v := range []string{"TEMPORAL_ADDRESS", "CONVEYOR_CONFIG", "CONVEYOR_STATE_DIR", "CONVEYOR_TEMPORAL_PAYLOAD_KEY_FILE"} {
		t.Setenv(v, "")
	}
	app := newApp()
	var out syncBuffer
	app.Writer, app.ErrWriter = &out, &out
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.RunContext(ctx, []string{"conveyor", "--state-dir", dir, "temporal", "codec-server", "--listen", addr,
			"--key-file", keys, "--auth-token-file", token, "--allow-origin", "http://ui.example:8233"})
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("codec-server returned %v after the cancel, want nil", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("codec-server did not stop after the cancel")
		}
	}()

	enc, err := codec.Encode([]*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"s3cret"`)}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := protojson.Marshal(&commonpb.Payloads{Payloads: enc})
	var answer string
	stacktest.WaitFor(t, 10*time.Second, "the codec server to decode", func() error {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/decode", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer tok")
		req.Header.Set("Origin", "http://ui.example:8233")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("%v (output: %s)", err, out.String())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%d %s", resp.StatusCode, b)
		}
		answer = string(b)
		return nil
	})
	var dec commonpb.Payloads
	if err := protojson.Unmarshal([]byte(answer), &dec); err != nil || len(dec.Payloads) != 1 || string(dec.Payloads[0].GetData()) != `"s3cret"` {
		t.Errorf("/decode answered %s (%v), want the payload decrypted", answer, err)
	}
	if !strings.Contains(out.String(), "codec server on http://"+addr) {
		t.Errorf("output %q does not say where it listens", out.String())
	}
}

func TestCodecServerCommandErrors(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("CONVEYOR_TEMPORAL_PAYLOAD_KEY_FILE", "")
	wantCLIErrors(t, []cliError{
		{[]string{"--state-dir", dir, "temporal", "codec-server"}, "no payload keys: set --key-file, CONVEYOR_TEMPORAL_PAYLOAD_KEY_FILE or temporal.payloadKeyFile"},
		{[]string{"--state-dir", dir, "temporal", "codec-server", "--key-file", filepath.Join(dir, "nope")}, "--key-file: open " + filepath.Join(dir, "nope")},
	})
}
