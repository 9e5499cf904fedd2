package buildkit

import (
	"testing"

	"github.com/wikimedia/conveyor/activities/contract"
)

func TestCacheScopeSeparatesProjectsAndTrust(t *testing.T) {
	const a, b = "https://gerrit.example.org/r/a", "https://gerrit.example.org/r/b"
	scopes := map[string]contract.Source{}
	for _, src := range []contract.Source{
		{Repo: a}, {Repo: a, Branch: "main"}, {Repo: a, Branch: "sandbox/x"},
		{Repo: b}, {Repo: b, Branch: "main"},
	} {
		scope := CacheScope(src)
		if prev, ok := scopes[scope]; ok {
			t.Errorf("%+v and %+v share the cache scope %q", prev, src, scope)
		}
		scopes[scope] = src
	}
	if CacheScope(contract.Source{Repo: a, Commit: "1"}) != CacheScope(contract.Source{Repo: a, Commit: "2"}) {
		t.Error("two unreviewed patchsets of one project have different scopes; they should share one")
	}
}
