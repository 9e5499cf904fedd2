package blubber

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"

	gwpb "github.com/moby/buildkit/frontend/gateway/pb"
	spb "github.com/moby/buildkit/sourcepolicy/pb"
	"github.com/moby/buildkit/sourcepolicy/policysession"
)

// Egress says what the steps of a build may reach. With it, every step runs in a
// network namespace of its own (BuildKit's proxy network) whose only way out is an
// HTTP(S) proxy inside buildkitd: the step sees no host network, so neither the
// host's loopback services (Temporal, the registry, the Kubernetes API) nor any
// other address answer it directly, and the proxy fetches only URLs whose host
// Allow lists. Test steps (Compiled.TestState) have no network at all.
type Egress struct {
	// Allow lists the hosts that steps may fetch from, each a host name
	// ("registry.npmjs.org") or a suffix pattern ("*.debian.org", which also
	// matches debian.org itself). Matching ignores case and the port.
	Allow []string
}

// Allows reports whether a step may fetch rawURL.
func (e *Egress) Allows(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	return slices.ContainsFunc(e.Allow, func(pattern string) bool {
		pattern = strings.ToLower(pattern)
		if suffix, ok := strings.CutPrefix(pattern, "*."); ok {
			return host == suffix || strings.HasSuffix(host, "."+suffix)
		}
		return host == pattern
	})
}

// egressPolicy is one build's source policy: buildkitd asks it about every source
// and every request through the proxy. Images, the local context and git sources
// pass (the compiled LLB names them, not the steps); http(s) URLs pass when
// Allows says so. It keeps the URLs it refused, for the error.
type egressPolicy struct {
	Egress
	mu     sync.Mutex
	denied []string
}

// refused returns the URLs refused so far, in the order they were asked for.
func (e *egressPolicy) refused() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.denied)
}

func (e *egressPolicy) provider() *policysession.PolicyProvider {
	return policysession.NewPolicyProvider(func(_ context.Context, req *policysession.CheckPolicyRequest) (*policysession.DecisionResponse, *gwpb.ResolveSourceMetaRequest, error) {
		id := req.GetSource().GetSource().GetIdentifier()
		if !strings.HasPrefix(id, "http://") && !strings.HasPrefix(id, "https://") {
			return &policysession.DecisionResponse{Action: spb.PolicyAction_ALLOW}, nil, nil
		}
		if e.Allows(id) {
			return &policysession.DecisionResponse{Action: spb.PolicyAction_ALLOW}, nil, nil
		}
		e.mu.Lock()
		e.denied = append(e.denied, id)
		e.mu.Unlock()
		return &policysession.DecisionResponse{
			Action:       spb.PolicyAction_DENY,
			DenyMessages: []*policysession.DenyMessage{{Message: e.refusal(id)}},
		}, nil, nil
	})
}

func (e *egressPolicy) refusal(id string) string {
	return fmt.Sprintf("build steps may not fetch %s: its host is not in buildkit.egress.allow (%s) of the worker's configuration",
		id, strings.Join(e.Allow, ", "))
}
