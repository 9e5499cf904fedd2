package devstack

import (
	"net/netip"
	"strings"
	"testing"
	"text/template"

	"sigs.k8s.io/yaml"
)

// TestKwokStages checks the stages kwok is given (the embedded files of kwok/,
// joined): YAML documents of kind Stage with the expected names, in order, covering what kwok refuses to start without (node
// initialise and heartbeat, pod create, ready, complete and delete), and status
// templates that parse with the functions kwok provides. What they do is
// checked on the real cluster (integration/codfw_cluster_test.go).
func TestKwokStages(t *testing.T) {
	type stage struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			ResourceRef struct {
				Kind string `json:"kind"`
			} `json:"resourceRef"`
			Next struct {
				StatusTemplate string `json:"statusTemplate"`
				Delete         bool   `json:"delete"`
			} `json:"next"`
		} `json:"spec"`
	}
	// kwok's template functions, by name only: parsing needs them declared.
	funcs := template.FuncMap{}
	for _, f := range []string{"Now", "Quote", "YAML", "Version", "NodeConditions", "NodeIP", "NodeName", "NodePort", "NodeIPWith", "PodIPWith"} {
		funcs[f] = func(...any) string { return "" }
	}
	names := map[string]bool{}
	var order []string
	perKind := map[string]int{}
	deletes := 0
	for i, doc := range strings.Split(kwokStages, "\n---\n") {
		var s stage
		if err := yaml.Unmarshal([]byte(doc), &s); err != nil {
			t.Fatalf("stage %d is not YAML: %v", i, err)
		}
		if s.APIVersion != "kwok.x-k8s.io/v1alpha1" || s.Kind != "Stage" || s.Metadata.Name == "" {
			t.Errorf("stage %d: %s %s %q, want a named kwok.x-k8s.io/v1alpha1 Stage", i, s.APIVersion, s.Kind, s.Metadata.Name)
		}
		if names[s.Metadata.Name] {
			t.Errorf("stage %s twice", s.Metadata.Name)
		}
		names[s.Metadata.Name] = true
		order = append(order, s.Metadata.Name)
		perKind[s.Spec.ResourceRef.Kind]++
		if s.Spec.Next.Delete {
			deletes++
		} else if _, err := template.New(s.Metadata.Name).Funcs(funcs).Parse(s.Spec.Next.StatusTemplate); err != nil {
			t.Errorf("stage %s: status template: %v", s.Metadata.Name, err)
		}
	}
	want := "conveyor-node-initialize conveyor-node-heartbeat conveyor-pod-create conveyor-pod-ready conveyor-pod-complete conveyor-pod-delete"
	if got := strings.Join(order, " "); got != want {
		t.Errorf("stages %s, want %s", got, want)
	}
	if perKind["Node"] != 2 || perKind["Pod"] != 4 || deletes != 1 {
		t.Errorf("stages per kind %v with %d deleting; want 2 for nodes, 4 for pods (create, ready, complete, delete)", perKind, deletes)
	}
}

// TestCodfwNodes checks the simulated nodes: distinct names, addresses and pod
// ranges, each range inside the one kwok hands addresses out of.
func TestCodfwNodes(t *testing.T) {
	all := netip.MustParsePrefix(codfwPodCIDR)
	seen := map[string]bool{}
	for i := 1; i <= codfwNodeCount; i++ {
		n := codfwNode(i)
		p, err := netip.ParsePrefix(n.Spec.PodCIDR)
		if err != nil || !all.Contains(p.Addr()) || p.Bits() != 24 {
			t.Errorf("node %s: pod range %q, want a /24 inside %s", n.Name, n.Spec.PodCIDR, all)
		}
		for _, v := range []string{n.Name, n.Spec.PodCIDR, n.Status.Addresses[0].Address} {
			if seen[v] {
				t.Errorf("%s is used by two nodes", v)
			}
			seen[v] = true
		}
		if n.Annotations["kwok.x-k8s.io/node"] != "fake" || n.Status.Allocatable.Pods().Value() < 100 {
			t.Errorf("node %s: annotations %v, allocatable pods %v", n.Name, n.Annotations, n.Status.Allocatable.Pods())
		}
	}
}
