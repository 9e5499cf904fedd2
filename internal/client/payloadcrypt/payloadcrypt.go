// Package payloadcrypt encrypts Temporal payloads with AES-256-GCM, so that what
// workflows carry (Helm values, repository settings, credentials) is not kept in
// the clear in histories. It is a converter.PayloadCodec: the client and the
// workers put it in their data converter (temporalclient does, when
// temporal.payloadKeyFile is set), and the codec server (Handler) lets the
// Temporal Web UI and CLI show the payloads to whoever can reach it.
//
// The key file lists keys, one a line, as an id and 32 base64-encoded bytes:
//
//	# conveyor payload keys: the last one encrypts, every one decrypts
//	2026-01 <base64 of 32 random bytes: head -c 32 /dev/urandom | base64>
//	2026-07 <another>
//
// Each encrypted payload names its key in its metadata (MetadataKeyID), so keys
// can rotate: add the new key above the current one, roll the file out to every
// client and worker, then move it to the end; drop an old key only once no
// history that needs it is kept. Payloads that are not encrypted (histories
// written before the codec was on, a signal sent from a UI without the codec
// server) pass through Decode unchanged.
package payloadcrypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

// Metadata of an encrypted payload.
const (
	// Encoding is the "encoding" metadata value of an encrypted payload.
	Encoding = "binary/encrypted"
	// MetadataKeyID is the metadata field naming the key that encrypted it.
	MetadataKeyID = "encryption-key-id"
)

// KeySize is the size of a key in bytes (AES-256).
const KeySize = 32

// Codec encrypts with the last key of its file and decrypts with any of them.
type Codec struct {
	setting, path string // for errors: the configuration key or flag, and the file
	keys          map[string]cipher.AEAD
	current       string
}

var _ converter.PayloadCodec = (*Codec)(nil)

// Load reads the key file at path; setting (a configuration key or a flag, such
// as temporal.payloadKeyFile) names it in errors.
func Load(setting, path string) (*Codec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	c, err := parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", setting, path, err)
	}
	c.setting, c.path = setting, path
	return c, nil
}

// parse reads a key file's content.
func parse(b []byte) (*Codec, error) {
	c := &Codec{keys: map[string]cipher.AEAD{}}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want `ID BASE64KEY`, found %d fields", i+1, len(f))
		}
		id, enc := f[0], f[1]
		if _, dup := c.keys[id]; dup {
			return nil, fmt.Errorf("line %d: key id %q is listed twice", i+1, id)
		}
		key, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return nil, fmt.Errorf("line %d: key %q is not base64: %v", i+1, id, err)
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("line %d: key %q is %d bytes, want %d (AES-256): make one with `head -c 32 /dev/urandom | base64`", i+1, id, len(key), KeySize)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("line %d: key %q: %v", i+1, id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("line %d: key %q: %v", i+1, id, err)
		}
		c.keys[id], c.current = aead, id
	}
	if c.current == "" {
		return nil, errors.New("lists no key: want lines `ID BASE64KEY`, the last one encrypting")
	}
	return c, nil
}

// KeyID is the id of the key Encode uses.
func (c *Codec) KeyID() string { return c.current }

// Encode encrypts each payload (metadata and data) with the current key, the
// key id as additional data. A payload already encrypted is kept as it is.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	aead := c.keys[c.current]
	for i, p := range payloads {
		if Encrypted(p) {
			out[i] = p
			continue
		}
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("encrypting a payload: %w", err)
		}
		nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return nil, fmt.Errorf("encrypting a payload: %w", err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(Encoding),
				MetadataKeyID:              []byte(c.current),
			},
			Data: aead.Seal(nonce, nonce, plain, []byte(c.current)),
		}
	}
	return out, nil
}

// Decode decrypts the encrypted payloads and passes the others through. A
// payload whose key is not in the file, or that fails authentication (altered,
// or encrypted with another key of the same id), is an error.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if !Encrypted(p) {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		aead, ok := c.keys[id]
		if !ok {
			return nil, fmt.Errorf("a payload is encrypted with key %q, which %s (%s) does not list: add that key to the file", id, c.setting, c.path)
		}
		data := p.GetData()
		if len(data) < aead.NonceSize()+aead.Overhead() {
			return nil, fmt.Errorf("a payload encrypted with key %q is truncated (%d bytes)", id, len(data))
		}
		plain, err := aead.Open(nil, data[:aead.NonceSize()], data[aead.NonceSize():], []byte(id))
		if err != nil {
			return nil, fmt.Errorf("a payload encrypted with key %q fails authentication (altered, or the key in %s %s is not the one that encrypted it): %w", id, c.setting, c.path, err)
		}
		var dec commonpb.Payload
		if err := proto.Unmarshal(plain, &dec); err != nil {
			return nil, fmt.Errorf("decoding a payload decrypted with key %q: %w", id, err)
		}
		out[i] = &dec
	}
	return out, nil
}

// Encrypted says whether p is a payload Encode made.
func Encrypted(p *commonpb.Payload) bool {
	return bytes.Equal(p.GetMetadata()[converter.MetadataEncoding], []byte(Encoding))
}

// NewKeyLine returns a key file line with a new random key named id.
func NewKeyLine(id string) (string, error) {
	if id == "" || strings.ContainsAny(id, " \t\n#") {
		return "", fmt.Errorf("key id %q: want a non-empty word without spaces or #", id)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	return id + " " + base64.StdEncoding.EncodeToString(key), nil
}

// EnsureKeyFile writes a key file at path holding one new key named id, unless
// a file is there already (it is then left as it is). The file is mode 0600.
func EnsureKeyFile(path, id string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	line, err := NewKeyLine(id)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("writing the payload key file: %w", err)
	}
	body := "# conveyor payload keys (docs/security.md): `ID BASE64KEY` a line; the last one encrypts, every one decrypts\n" + line + "\n"
	if _, err := f.WriteString(body); err != nil {
		f.Close()
		return fmt.Errorf("writing the payload key file: %w", err)
	}
	return f.Close()
}
