package payloadcrypt_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"

	"github.com/wikimedia/conveyor/internal/client/payloadcrypt"
)

// keyFile writes lines (made with NewKeyLine or by hand) as a key file and
// loads it.
func keyFile(t *testing.T, lines ...string) (*payloadcrypt.Codec, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "payload-keys")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := payloadcrypt.Load("temporal.payloadKeyFile", path)
	if err != nil {
		t.Fatal(err)
	}
	return c, path
}

func newLine(t *testing.T, id string) string {
	t.Helper()
	l, err := payloadcrypt.NewKeyLine(id)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

const secret = "hunter2-registry-password"

func payload(t *testing.T) *commonpb.Payload {
	t.Helper()
	p, err := converter.GetDefaultDataConverter().ToPayload(map[string]string{"password": secret})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func encode(t *testing.T, c *payloadcrypt.Codec, p *commonpb.Payload) *commonpb.Payload {
	t.Helper()
	out, err := c.Encode([]*commonpb.Payload{p})
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

func TestRoundTripHidesThePayload(t *testing.T) {
	old := newLine(t, "old")
	c, _ := keyFile(t, "# comment", old, "", newLine(t, "new"))
	p := payload(t)
	enc := encode(t, c, p)
	if bytes.Contains(enc.GetData(), []byte(secret)) || bytes.Contains(enc.GetData(), []byte("json/plain")) {
		t.Errorf("the encrypted payload shows its content: %q", enc.GetData())
	}
	if got := string(enc.GetMetadata()[converter.MetadataEncoding]); got != payloadcrypt.Encoding {
		t.Errorf("encoding %q, want %q", got, payloadcrypt.Encoding)
	}
	if got := string(enc.GetMetadata()[payloadcrypt.MetadataKeyID]); got != "new" {
		t.Errorf("key id %q, want the last key, new", got)
	}
	dec, err := c.Decode([]*commonpb.Payload{enc})
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]string
	if err := converter.GetDefaultDataConverter().FromPayload(dec[0], &v); err != nil || v["password"] != secret {
		t.Errorf("decoded %v, %v; want the original", v, err)
	}
	// Encoding twice gives different ciphertexts (a fresh nonce each time), and
	// an encrypted payload is not encrypted again.
	if again := encode(t, c, p); bytes.Equal(again.GetData(), enc.GetData()) {
		t.Error("two encryptions of one payload are equal: the nonce is not fresh")
	}
	if same := encode(t, c, enc); same != enc {
		t.Error("an encrypted payload was encrypted again")
	}

	// Rotation: a payload encrypted with the old key still decrypts once a new
	// key is the current one.
	oldOnly, _ := keyFile(t, old)
	rotated, _ := keyFile(t, old, newLine(t, "newer"))
	if _, err := rotated.Decode([]*commonpb.Payload{encode(t, oldOnly, p)}); err != nil {
		t.Errorf("the rotated file does not decrypt the old key's payload: %v", err)
	}
}

func TestUnencryptedPayloadsPassThrough(t *testing.T) {
	c, _ := keyFile(t, newLine(t, "k"))
	p := payload(t)
	out, err := c.Decode([]*commonpb.Payload{p, nil})
	if err != nil || out[0] != p {
		t.Errorf("Decode(plain) = %v, %v; want the payload unchanged", out, err)
	}
}

func TestTamperingIsDetected(t *testing.T) {
	c, path := keyFile(t, newLine(t, "k"))
	enc := encode(t, c, payload(t))
	for name, alter := range map[string]func(p *commonpb.Payload){
		"flipped bit": func(p *commonpb.Payload) { p.Data[len(p.Data)/2] ^= 1 },
		"truncated":   func(p *commonpb.Payload) { p.Data = p.Data[:10] },
	} {
		p := &commonpb.Payload{Metadata: enc.Metadata, Data: bytes.Clone(enc.Data)}
		alter(p)
		_, err := c.Decode([]*commonpb.Payload{p})
		if err == nil || !strings.Contains(err.Error(), `key "k"`) {
			t.Errorf("%s: Decode error %v, want one naming the key", name, err)
		}
		if name == "flipped bit" && (err == nil || !strings.Contains(err.Error(), "fails authentication") || !strings.Contains(err.Error(), path)) {
			t.Errorf("%s: Decode error %v, want an authentication failure naming %s", name, err, path)
		}
	}
}

func TestWrongKeyIsRefused(t *testing.T) {
	a, _ := keyFile(t, newLine(t, "k"))
	b, path := keyFile(t, newLine(t, "k")) // same id, another key
	_, err := b.Decode([]*commonpb.Payload{encode(t, a, payload(t))})
	if err == nil || !strings.Contains(err.Error(), "fails authentication") || !strings.Contains(err.Error(), path) {
		t.Errorf("Decode with another key of the same id: %v, want an authentication failure naming %s", err, path)
	}
}

func TestUnknownKeyIDNamesTheKeyFile(t *testing.T) {
	a, _ := keyFile(t, newLine(t, "gone"))
	b, path := keyFile(t, newLine(t, "k"))
	_, err := b.Decode([]*commonpb.Payload{encode(t, a, payload(t))})
	want := `encrypted with key "gone", which temporal.payloadKeyFile (` + path + `) does not list`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Decode error %v, want one containing %q", err, want)
	}
}

func TestKeyFileErrorsSayWhatToFix(t *testing.T) {
	dir := t.TempDir()
	line := newLine(t, "k")
	for body, want := range map[string]string{
		"":                          "lists no key",
		"# only a comment\n":        "lists no key",
		"k\n":                       "line 1: want `ID BASE64KEY`, found 1 fields",
		"k c2hvcnQ=\n":              `line 1: key "k" is 5 bytes, want 32 (AES-256)`,
		"k not*base64\n":            `line 1: key "k" is not base64`,
		line + "\n\n" + line + "\n": `line 3: key id "k" is listed twice`,
	} {
		path := filepath.Join(dir, "keys")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := payloadcrypt.Load("temporal.payloadKeyFile", path)
		if err == nil || !strings.Contains(err.Error(), "temporal.payloadKeyFile "+path+": "+want) {
			t.Errorf("Load(%q) error %v, want one containing %q", body, err, want)
		}
	}
	missing := filepath.Join(dir, "missing")
	if _, err := payloadcrypt.Load("--key-file", missing); err == nil || !strings.Contains(err.Error(), "--key-file: open "+missing) {
		t.Errorf("Load(missing) error %v, want one naming --key-file and the file", err)
	}
}

func TestEnsureKeyFileKeepsAnExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	if err := payloadcrypt.EnsureKeyFile(path, "dev"); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(path)
	if err := payloadcrypt.EnsureKeyFile(path, "dev"); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(path)
	if !bytes.Equal(first, second) {
		t.Error("EnsureKeyFile replaced an existing key file")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	c, err := payloadcrypt.Load("temporal.payloadKeyFile", path)
	if err != nil || c.KeyID() != "dev" {
		t.Errorf("Load of the written file: %v, %v; want key dev", c, err)
	}
}
