package blubber

import (
	"context"
	"strings"
	"testing"

	"github.com/moby/buildkit/solver/pb"
	spb "github.com/moby/buildkit/sourcepolicy/pb"
	"github.com/moby/buildkit/sourcepolicy/policysession"

	gwpb "github.com/moby/buildkit/frontend/gateway/pb"
)

func TestEgressAllows(t *testing.T) {
	e := Egress{Allow: []string{"registry.npmjs.org", "*.debian.org"}}
	for url, want := range map[string]bool{
		"https://registry.npmjs.org/left-pad":        true,
		"https://REGISTRY.npmjs.org./left-pad":       true,
		"http://registry.npmjs.org:80/x":             true,
		"http://deb.debian.org/debian/dists/":        true,
		"http://debian.org/":                         true,
		"https://registry.npmjs.org.evil.example/":   false,
		"https://evildebian.org/":                    false,
		"http://127.0.0.1:7233/":                     false,
		"http://localhost:5000/v2/":                  false,
		"http://192.0.2.2:6443/api":                  false,
		"ftp://deb.debian.org/debian":                false,
		"https://user@registry.npmjs.org@evil.test/": false,
	} {
		if got := e.Allows(url); got != want {
			t.Errorf("Allows(%s) = %v, want %v", url, got, want)
		}
	}
}

func TestEgressPolicyDecides(t *testing.T) {
	p := &egressPolicy{Egress: Egress{Allow: []string{"registry.npmjs.org"}}}
	ask := func(id string) spb.PolicyAction {
		t.Helper()
		resp, err := p.provider().CheckPolicy(context.Background(), &policysession.CheckPolicyRequest{
			Source: &gwpb.ResolveSourceMetaResponse{Source: &pb.SourceOp{Identifier: id}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetDecision().GetAction()
	}
	for id, want := range map[string]spb.PolicyAction{
		"docker-image://localhost:5000/debian:bookworm": spb.PolicyAction_ALLOW,
		"local://context":                     spb.PolicyAction_ALLOW,
		"https://registry.npmjs.org/left-pad": spb.PolicyAction_ALLOW,
		"http://127.0.0.1:7233/":              spb.PolicyAction_DENY,
		"https://example.org/payload.sh":      spb.PolicyAction_DENY,
	} {
		if got := ask(id); got != want {
			t.Errorf("%s: %v, want %v", id, got, want)
		}
	}
	got := strings.Join(p.refused(), " ")
	if !strings.Contains(got, "http://127.0.0.1:7233/") || !strings.Contains(got, "https://example.org/payload.sh") || strings.Contains(got, "npmjs") {
		t.Errorf("refused = %q, want exactly the two denied URLs", got)
	}
}
