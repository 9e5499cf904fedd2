package gerrit

import (
	"encoding/json"
	"path/filepath"
	"testing"
)

// FuzzParseEvent feeds the event parser arbitrary bytes. No input may panic; an
// input that parses must give the same event when parsed again, a non-empty key,
// a change ref that reads back as its numbers, and the same meaning after a round
// trip through its JSON encoding. The seed corpus is testdata/webhook/*.json, the
// lines of testdata/stream/events.jsonl and testdata/fuzz/FuzzParseEvent; run it
// with
//
//	go test ./internal/lib/gerrit -run '^$' -fuzz FuzzParseEvent -fuzztime 60s
func FuzzParseEvent(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "webhook", "*.json"))
	for _, name := range files {
		b, err := filepath.Rel("testdata", name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(readSample(f, b))
	}
	for _, line := range streamLines(f) {
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseEvent(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		again, err := ParseEvent(data)
		if err != nil || summarize(again) != summarize(e) {
			t.Fatalf("parsing twice differs: %+v then %+v (%v)", summarize(e), summarize(again), err)
		}
		if e.Key() == "" {
			t.Fatal("a parsed event has no key")
		}
		if ref := e.ChangeRef(); ref != "" {
			c, p, ok := ParseChangeRef(ref)
			if !ok || MakeChangeRef(c, p) != ref {
				t.Fatalf("change ref %q does not read back (%d, %d, %v)", ref, c, p, ok)
			}
		}
		enc, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("encoding %+v: %v", e, err)
		}
		round, err := ParseEvent(enc)
		if err != nil {
			t.Fatalf("parsing the encoding %s: %v", enc, err)
		}
		a, b := summarize(e), summarize(round)
		a.key, b.key = "", ""
		if a != b {
			t.Fatalf("round trip through %s:\n got %+v\nwant %+v", enc, b, a)
		}
	})
}
