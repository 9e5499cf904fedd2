package workflows_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/wikimedia/conveyor/workflows"
)

func TestEveryPoolHasItsOwnTaskQueue(t *testing.T) {
	seen := map[string]string{}
	for _, p := range workflows.Pools {
		q := workflows.TaskQueue(p)
		if q == "" {
			t.Errorf("pool %q has no task queue", p)
		}
		if other, ok := seen[q]; ok {
			t.Errorf("pools %q and %q share task queue %q", other, p, q)
		}
		seen[q] = p
	}
}

func TestParsePools(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string
	}{
		{nil, workflows.Pools},
		{[]string{""}, workflows.Pools},
		{[]string{"deploy"}, []string{"deploy"}},
		{[]string{"migrate,build"}, []string{"migrate", "build"}},
		{[]string{"build", " deploy , build"}, []string{"build", "deploy"}},
	} {
		got, err := workflows.ParsePools(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParsePools(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParsePoolsNamesTheUnknownPoolAndTheValidOnes(t *testing.T) {
	_, err := workflows.ParsePools([]string{"build,deplyo"})
	if err == nil {
		t.Fatal("ParsePools accepted an unknown pool")
	}
	if want := `unknown pool "deplyo": valid pools are build, deploy, migrate`; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

func TestParsePoolsDoesNotShareTheDefaultList(t *testing.T) {
	got, _ := workflows.ParsePools(nil)
	got[0] = "changed"
	if workflows.Pools[0] == "changed" {
		t.Fatal("ParsePools returned workflows.Pools itself; callers can corrupt it")
	}
}

// TestSearchAttributesMatchTheTypedKeys keeps the list the local stack registers in
// step with the keys workflows set: same names, same types, same order.
func TestSearchAttributesMatchTheTypedKeys(t *testing.T) {
	keys := []temporal.SearchAttributeKey{
		workflows.ProjectKey, workflows.ChangeKey, workflows.PatchsetKey,
		workflows.StepKey, workflows.StageKey, workflows.ApproverKey,
	}
	if len(keys) != len(workflows.SearchAttributes) {
		t.Fatalf("%d typed keys but %d SearchAttributes", len(keys), len(workflows.SearchAttributes))
	}
	for i, k := range keys {
		a := workflows.SearchAttributes[i]
		typ, err := enumspb.IndexedValueTypeFromString(a.Type)
		if err != nil {
			t.Errorf("SearchAttributes[%d] %s: type %q is not one the temporal CLI accepts: %v", i, a.Name, a.Type, err)
			continue
		}
		if a.Name != k.GetName() || typ != k.GetValueType() {
			t.Errorf("SearchAttributes[%d] = %s, want %s=%s", i, a.Flag(), k.GetName(), k.GetValueType())
		}
		if !strings.HasPrefix(a.Name, "Conveyor") {
			t.Errorf("search attribute %s lacks the Conveyor prefix that keeps it apart from other projects'", a.Name)
		}
	}
	if got := workflows.SearchAttributes[5].Flag(); got != "ConveyorApprover=KeywordList" {
		t.Errorf("Flag() = %q, want ConveyorApprover=KeywordList", got)
	}
}

// TestRecordingServerRegistersTheSearchAttributes keeps the throwaway server of
// tools/record-histories.sh in step with SearchAttributes.
func TestRecordingServerRegistersTheSearchAttributes(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "tools", "record-histories.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range workflows.SearchAttributes {
		if want := "--search-attribute " + a.Flag(); !strings.Contains(string(b), want) {
			t.Errorf("tools/record-histories.sh lacks %q", want)
		}
	}
}
