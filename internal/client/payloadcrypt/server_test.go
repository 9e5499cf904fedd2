package payloadcrypt_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/wikimedia/conveyor/internal/client/payloadcrypt"
)

const uiOrigin = "http://127.0.0.1:8233"

// post sends body to the codec server at url+path with the headers and returns
// the status and the body.
func post(t *testing.T, url, path, body string, header map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func payloadsJSON(t *testing.T, ps ...*commonpb.Payload) string {
	t.Helper()
	b, err := protojson.Marshal(&commonpb.Payloads{Payloads: ps})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCodecServerDecodesForTheUI(t *testing.T) {
	c, _ := keyFile(t, newLine(t, "k"))
	srv := httptest.NewServer(payloadcrypt.Handler(c, payloadcrypt.WithAllowedOrigins(uiOrigin+"/"), payloadcrypt.WithAuthToken("tok")))
	defer srv.Close()
	auth := map[string]string{"Authorization": "Bearer tok", "Origin": uiOrigin, "X-Namespace": "default"}

	// /encode then /decode through the server gives the payload back.
	status, body, h := post(t, srv.URL, "/encode", payloadsJSON(t, payload(t)), auth)
	if status != http.StatusOK || strings.Contains(body, secret) {
		t.Fatalf("/encode: %d %s", status, body)
	}
	if h.Get("Access-Control-Allow-Origin") != uiOrigin || h.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("/encode CORS headers %v, want the UI's origin allowed with credentials", h)
	}
	var enc commonpb.Payloads
	if err := protojson.Unmarshal([]byte(body), &enc); err != nil {
		t.Fatal(err)
	}
	if len(enc.Payloads) != 1 || !payloadcrypt.Encrypted(enc.Payloads[0]) {
		t.Fatalf("/encode answered %s, want one encrypted payload", body)
	}
	status, body, _ = post(t, srv.URL, "/api/codec/decode", payloadsJSON(t, enc.Payloads...), auth)
	if status != http.StatusOK {
		t.Fatalf("/decode: %d %s", status, body)
	}
	var dec commonpb.Payloads
	if err := protojson.Unmarshal([]byte(body), &dec); err != nil {
		t.Fatal(err)
	}
	var v map[string]string
	if err := converter.GetDefaultDataConverter().FromPayload(dec.Payloads[0], &v); err != nil || v["password"] != secret {
		t.Errorf("/decode gave %v, %v; want the original payload", v, err)
	}

	// The browser's preflight carries no token and is answered.
	req, _ := http.NewRequest(http.MethodOptions, srv.URL+"/decode", nil)
	req.Header.Set("Origin", uiOrigin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "X-Namespace") {
		t.Errorf("preflight: %d %v, want 204 allowing X-Namespace", resp.StatusCode, resp.Header)
	}
}

func TestCodecServerRefuses(t *testing.T) {
	c, _ := keyFile(t, newLine(t, "k"))
	srv := httptest.NewServer(payloadcrypt.Handler(c, payloadcrypt.WithAllowedOrigins(uiOrigin), payloadcrypt.WithAuthToken("tok")))
	defer srv.Close()
	enc := payloadsJSON(t, encode(t, c, payload(t)))
	for name, tc := range map[string]struct {
		header map[string]string
		status int
		want   string
	}{
		"no token":     {map[string]string{}, http.StatusUnauthorized, "Authorization: Bearer"},
		"wrong token":  {map[string]string{"Authorization": "Bearer nope"}, http.StatusUnauthorized, "Authorization: Bearer"},
		"other origin": {map[string]string{"Authorization": "Bearer tok", "Origin": "https://evil.example"}, http.StatusForbidden, "--allow-origin"},
	} {
		status, body, _ := post(t, srv.URL, "/decode", enc, tc.header)
		if status != tc.status || !strings.Contains(body, tc.want) || strings.Contains(body, secret) {
			t.Errorf("%s: %d %s, want %d mentioning %q", name, status, body, tc.status, tc.want)
		}
	}
	// A payload of a key the server does not have is a 400 naming the key.
	other, _ := keyFile(t, newLine(t, "other"))
	status, body, _ := post(t, srv.URL, "/decode", payloadsJSON(t, encode(t, other, payload(t))), map[string]string{"Authorization": "Bearer tok"})
	if status != http.StatusBadRequest || !strings.Contains(body, `key "other"`) {
		t.Errorf("unknown key: %d %s, want 400 naming the key", status, body)
	}
}
