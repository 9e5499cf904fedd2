package blubber

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzParse feeds the parser arbitrary bytes: no input may panic, and a file
// that parses must plan, render and compile every variant without panicking.
// The seed corpus is testdata/*.yaml plus testdata/fuzz/FuzzParse; run it with
//
//	go test ./internal/lib/blubber -run '^$' -fuzz FuzzParse -fuzztime 60s
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		// A slow input must fail too, not stall the fuzzer: a panic on another
		// goroutine kills the worker, and the fuzzer keeps the input.
		watchdog := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("input took over 10s: %q", data)) })
		defer watchdog.Stop()
		c, err := Parse(data)
		if err != nil {
			if c != nil {
				t.Fatal("Parse returned both a config and an error")
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		for _, v := range c.VariantNames() {
			if _, err := c.Dockerfile(v); err != nil {
				t.Fatalf("a valid config does not render variant %s: %v", v, err)
			}
			comp, err := c.Compile(context.Background(), v)
			if err != nil {
				continue // e.g. a cache path whose variables are unknown until build time
			}
			if _, err := comp.Definition(context.Background()); err != nil {
				t.Fatalf("variant %s does not marshal: %v", v, err)
			}
		}
	})
}
