package stacktest

import (
	"context"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/wikimedia/conveyor/internal/client/temporalsetup"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// Namespace brings the stack up if needed, makes sure the Temporal namespace ns
// exists with conveyor's custom search attributes, and returns the stack's
// configuration pointed at it. Tests whose workflows must not reach other
// workers on the shared dev server (or whose workflows no worker should run)
// use a namespace of their own.
func Namespace(t testing.TB, ns string) config.Config {
	t.Helper()
	return namespaceOn(t, Config(t), ns)
}

// ProdNamespace is Namespace on the production Temporal (ProdTemporal).
func ProdNamespace(t testing.TB, ns string) config.Config {
	t.Helper()
	return namespaceOn(t, ProdTemporal(t), ns)
}

func namespaceOn(t testing.TB, cfg config.Config, ns string) config.Config {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{HostPort: cfg.Temporal.Address, Namespace: cfg.Temporal.Namespace})
	if err != nil {
		t.Fatalf("Temporal at %s (make up): %v", cfg.Temporal.Address, err)
	}
	defer c.Close()
	if err := temporalsetup.Register(ctx, c, temporalsetup.RegisterOptions{Namespace: ns, Description: "conveyor tests", Retention: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	cfg.Temporal.Namespace = ns
	usedMu.Lock()
	used[cfg.Temporal.Address+"/"+ns] = cfg.Temporal
	usedMu.Unlock()
	return cfg
}

var (
	usedMu sync.Mutex
	used   = map[string]config.Temporal{}
)

// UsedNamespaces are the Temporal namespaces (with their frontends) that
// Namespace and ProdNamespace handed out in this test binary, and cfg's own: the
// ones whose histories this binary's tests wrote.
func UsedNamespaces(cfg config.Temporal) []config.Temporal {
	usedMu.Lock()
	defer usedMu.Unlock()
	out := []config.Temporal{cfg}
	for _, k := range slices.Sorted(maps.Keys(used)) {
		if t := used[k]; t.Address != cfg.Address || t.Namespace != cfg.Namespace {
			out = append(out, t)
		}
	}
	return out
}
