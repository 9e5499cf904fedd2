package devstack

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/wikimedia/conveyor/internal/client/payloadcrypt"
)

// codecAddr is where the stack's codec server listens: the Web UIs (the dev
// server's and the production Temporal's) call it from the browser to show the
// payloads the stack's workers and CLI encrypt.
const codecAddr = "127.0.0.1:8234"

// CodecEndpoint is the stack's codec server, for the Web UIs' codec endpoint and
// the temporal CLI's --codec-endpoint.
const CodecEndpoint = "http://" + codecAddr

// codecComponent is `conveyor temporal codec-server` with the stack's payload
// key, built from this source tree (the stack outlives whatever started it, and
// a test binary cannot serve the command).
func codecComponent() component {
	return component{
		name:    "codec-server",
		process: true,
		address: func(*stack) string { return CodecEndpoint },
		timeout: 30 * time.Second,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			bin := s.path("bin", "conveyor")
			if err := s.buildConveyor(ctx, bin); err != nil {
				return nil, err
			}
			return &process{Name: "codec-server", Bin: bin, Args: []string{
				"temporal", "codec-server", "--listen", codecAddr,
				"--key-file", s.payloadKeyFile(),
				"--allow-origin", "http://" + temporalUIAddr, "--allow-origin", "http://localhost:8233",
				"--allow-origin", "http://" + prodUIAddr,
			}}, nil
		},
		ready: func(ctx context.Context, s *stack) error { return codecAnswers(ctx) },
	}
}

// buildConveyor builds the conveyor command of the stack's source tree to bin
// (go build is incremental: a second dev up only checks).
func (s *stack) buildConveyor(ctx context.Context, bin string) error {
	repo := s.repoDir()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./starter")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the conveyor command in %s (go build ./starter): %v: %s", repo, err, out)
	}
	return nil
}

// codecAnswers decodes an empty batch at the codec server.
func codecAnswers(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, CodecEndpoint+"/decode", bytes.NewReader([]byte(`{"payloads":[]}`)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s/decode: %s", CodecEndpoint, resp.Status)
	}
	return nil
}

// payloadKeyFile returns the stack's payload key file (docs/security.md), made
// with one new key on first use, or "" (payloads in the clear) if it cannot be
// written.
func (s *stack) payloadKeyFile() string {
	p := s.path("secrets", "payload-keys")
	_ = os.MkdirAll(filepath.Dir(p), 0o700)
	if err := payloadcrypt.EnsureKeyFile(p, "dev"); err != nil {
		return ""
	}
	return p
}
