package charts

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/wikimedia/conveyor/internal/lib/config"
)

// The deploy pool's rules, derived from the calls of activities/helm, activities/promote
// and activities/internal/helmkit and of the Helm SDK actions they run
// (docs/production.md says which call needs which rule).
var (
	namespaceRules = []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "create", "delete"}},
	}
	releaseRules = []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "create", "update", "delete"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "create", "patch", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get", "create", "patch", "delete"}},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"get", "create", "patch", "delete"}},
		{APIGroups: []string{"autoscaling"}, Resources: []string{"horizontalpodautoscalers"}, Verbs: []string{"get", "create", "patch", "delete"}},
		{APIGroups: []string{"apps"}, Resources: []string{"replicasets"}, Verbs: []string{"list"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch", "create", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"get"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"list"}},
	}
	promotionRules = []rbacv1.PolicyRule{
		{APIGroups: []string{"apps"}, Resources: []string{"deployments/scale"}, Verbs: []string{"get", "update"}},
		{APIGroups: []string{"apps"}, Resources: []string{"replicasets"}, Verbs: []string{"deletecollection"}},
	}
)

// stringList reads a list of strings from vals at path; nil when it is absent.
func stringList(t *testing.T, vals chartutil.Values, path string) []string {
	t.Helper()
	v, err := vals.PathValue(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range v.([]any) {
		out = append(out, fmt.Sprint(e))
	}
	return out
}

// extraRules are rbac.extraRules as PolicyRules.
func extraRules(t *testing.T, vals chartutil.Values) []rbacv1.PolicyRule {
	t.Helper()
	v, err := vals.PathValue("rbac.extraRules")
	if err != nil {
		return nil
	}
	var out []rbacv1.PolicyRule
	for _, e := range v.([]any) {
		r := e.(map[string]any)
		list := func(k string) []string {
			var s []string
			for _, x := range r[k].([]any) {
				s = append(s, fmt.Sprint(x))
			}
			return s
		}
		out = append(out, rbacv1.PolicyRule{APIGroups: list("apiGroups"), Resources: list("resources"), Verbs: list("verbs")})
	}
	return out
}

// checkRBAC checks that only the deploy pool's ServiceAccount is bound to anything,
// that its Roles are in rbac.managedNamespaces exactly, and that every rule is one of
// the derived lists.
func checkRBAC(t *testing.T, m *conveyorManifests, vals chartutil.Values) {
	t.Helper()
	deploySA := rbacv1.Subject{Kind: "ServiceAccount", Name: release + "-worker-deploy", Namespace: "conveyor-test"}
	if !enabled(t, vals, "pools.deploy") {
		if n := len(m.roles) + len(m.roleBindings) + len(m.clusterRoles) + len(m.clusterBindings); n != 0 {
			t.Errorf("the deploy pool is disabled, but %d RBAC objects are rendered", n)
		}
		return
	}
	for _, b := range m.roleBindings {
		if !slices.Equal(b.Subjects, []rbacv1.Subject{deploySA}) {
			t.Errorf("RoleBinding %s/%s binds %+v, want only the deploy pool's ServiceAccount", b.Namespace, b.Name, b.Subjects)
		}
	}
	for _, b := range m.clusterBindings {
		if !slices.Equal(b.Subjects, []rbacv1.Subject{deploySA}) {
			t.Errorf("ClusterRoleBinding %s binds %+v, want only the deploy pool's ServiceAccount", b.Name, b.Subjects)
		}
	}
	managed := stringList(t, vals, "rbac.managedNamespaces")
	var roleNamespaces []string
	wantRole := slices.Concat(releaseRules, extraRules(t, vals), promotionRules)
	for _, r := range m.roles {
		roleNamespaces = append(roleNamespaces, r.Namespace)
		if !reflect.DeepEqual(r.Rules, wantRole) {
			t.Errorf("Role %s/%s rules:\n%s\nwant:\n%s", r.Namespace, r.Name, rulesText(r.Rules), rulesText(wantRole))
		}
		if !bound(m, "Role", r.Name, r.Namespace) {
			t.Errorf("Role %s/%s is bound by no RoleBinding", r.Namespace, r.Name)
		}
	}
	if !slices.Equal(roleNamespaces, managed) {
		t.Errorf("Roles in namespaces %v, want rbac.managedNamespaces %v", roleNamespaces, managed)
	}
	wide := releaseRightsWide(t, vals)
	// selfBind: the deploy pool binds the release ClusterRole itself in each ci-…
	// namespace it creates (kubernetes.releaseClusterRole), which takes create on
	// rolebindings and bind on that one role.
	kubeconfigSecret, _ := vals.PathValue("secrets.kubeconfig.secretName")
	selfBind := !wide && kubeconfigSecret == ""
	releaseRole := release + "-worker-deploy-releases-conveyor-test"
	wantNamespaceRules := namespaceRules
	if selfBind {
		wantNamespaceRules = slices.Concat(namespaceRules, []rbacv1.PolicyRule{
			{APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"rolebindings"}, Verbs: []string{"create"}},
			{APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"clusterroles"}, Verbs: []string{"bind"}, ResourceNames: []string{releaseRole}},
		})
	}
	for _, cr := range m.clusterRoles {
		want := wantNamespaceRules
		if cr.Name == releaseRole {
			want = slices.Concat(releaseRules, extraRules(t, vals))
		}
		if !reflect.DeepEqual(cr.Rules, want) {
			t.Errorf("ClusterRole %s rules:\n%s\nwant:\n%s", cr.Name, rulesText(cr.Rules), rulesText(want))
		}
		if b := bound(m, "ClusterRole", cr.Name, ""); b != (cr.Name != releaseRole || wide) {
			t.Errorf("ClusterRole %s bound by a ClusterRoleBinding: %v, want %v", cr.Name, b, !b)
		}
	}
	if len(m.clusterRoles) != 2 {
		t.Errorf("%d ClusterRoles, want 2 (the namespaces' and the release rules)", len(m.clusterRoles))
	}
	cm := one(t, "ConfigMap", m.configMaps)
	var deployCfg config.Config
	if err := yaml.Unmarshal([]byte(cm.Data["deploy.yaml"]), &deployCfg); err != nil {
		t.Fatal(err)
	}
	if want := map[bool]string{true: releaseRole}[selfBind]; deployCfg.Kubernetes.ReleaseClusterRole != want {
		t.Errorf("deploy.yaml kubernetes.releaseClusterRole %q, want %q", deployCfg.Kubernetes.ReleaseClusterRole, want)
	}
	policies := map[string]bool{}
	for _, p := range m.admission {
		policies[p.Name] = true
		expr := p.Spec.Validations[0].Expression
		if strings.Contains(p.Name, "-bindings-") {
			for _, want := range []string{"'ci-'", "'" + releaseRole + "'", "'" + deploySA.Name + "'"} {
				if !strings.Contains(expr, want) {
					t.Errorf("ValidatingAdmissionPolicy %s does not check %s: %s", p.Name, want, expr)
				}
			}
		} else {
			// activities/helm labels each ci-… namespace it creates so; Teardown
			// deletes only namespaces with the sandbox label.
			for _, want := range []string{"'conveyor.wikimedia.org/sandbox'] == 'true'", "'pod-security.kubernetes.io/enforce'] == 'restricted'",
				"oldObject.metadata.labels['conveyor.wikimedia.org/sandbox'] == 'true'"} {
				if !strings.Contains(expr, want) {
					t.Errorf("ValidatingAdmissionPolicy %s does not check %s: %s", p.Name, want, expr)
				}
			}
			for _, ns := range managed {
				if !strings.Contains(expr, "'"+ns+"'") {
					t.Errorf("ValidatingAdmissionPolicy %s does not let the deploy pool create managed namespace %s: %s", p.Name, ns, expr)
				}
			}
		}
		if !strings.Contains(p.Spec.MatchConditions[0].Expression, "system:serviceaccount:conveyor-test:"+deploySA.Name) {
			t.Errorf("ValidatingAdmissionPolicy %s matches %s, want the deploy pool's ServiceAccount", p.Name, p.Spec.MatchConditions[0].Expression)
		}
		n := 0
		for _, b := range m.admissionBinds {
			if b.Spec.PolicyName == p.Name {
				n++
			}
		}
		if n != 1 {
			t.Errorf("ValidatingAdmissionPolicy %s is bound %d times, want once", p.Name, n)
		}
	}
	if len(m.admission) > 0 && selfBind && len(policies) != 2 {
		t.Errorf("admission policies %v, want the namespaces' and the bindings'", policies)
	}
}

func releaseRightsWide(t *testing.T, vals chartutil.Values) bool {
	t.Helper()
	v, _ := vals.PathValue("rbac.releaseRightsInEveryNamespace")
	return v == true
}

// bound says whether a binding refers to the role.
func bound(m *conveyorManifests, kind, name, namespace string) bool {
	for _, b := range m.roleBindings {
		if b.RoleRef.Kind == kind && b.RoleRef.Name == name && b.Namespace == namespace {
			return true
		}
	}
	for _, b := range m.clusterBindings {
		if b.RoleRef.Kind == kind && b.RoleRef.Name == name && namespace == "" {
			return true
		}
	}
	return false
}

func rulesText(rules []rbacv1.PolicyRule) string {
	var b strings.Builder
	for _, r := range rules {
		fmt.Fprintf(&b, "  %v %v %v\n", r.APIGroups, r.Resources, r.Verbs)
	}
	return b.String()
}

// checkPolicies checks that every component's pods have a NetworkPolicy with Ingress
// and Egress, that workers take ingress only on 8081 and the receiver only on 8080,
// and that every worker may reach DNS.
func checkPolicies(t *testing.T, m *conveyorManifests) {
	t.Helper()
	for _, d := range m.deployments {
		var found []networkingv1.NetworkPolicy
		for _, p := range m.policies {
			if selects(p.Spec.PodSelector.MatchLabels, d.Spec.Template.Labels) {
				found = append(found, p)
			}
		}
		if len(found) != 1 {
			t.Errorf("%d NetworkPolicies select the pods of %s, want 1", len(found), d.Name)
			continue
		}
		p := found[0]
		if !slices.Equal(p.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}) {
			t.Errorf("NetworkPolicy %s policyTypes %v, want Ingress and Egress", p.Name, p.Spec.PolicyTypes)
		}
		port := int(d.Spec.Template.Spec.Containers[0].Ports[0].ContainerPort)
		if len(p.Spec.Ingress) != 1 || len(p.Spec.Ingress[0].Ports) != 1 || p.Spec.Ingress[0].Ports[0].Port.IntValue() != port ||
			*p.Spec.Ingress[0].Ports[0].Protocol != corev1.ProtocolTCP {
			t.Errorf("NetworkPolicy %s ingress %+v, want TCP %d only", p.Name, p.Spec.Ingress, port)
		}
		dns := false
		for _, e := range p.Spec.Egress {
			for _, pp := range e.Ports {
				dns = dns || (pp.Port.IntValue() == 53 && *pp.Protocol == corev1.ProtocolUDP)
			}
			if len(e.Ports) == 0 && len(e.To) == 0 {
				t.Errorf("NetworkPolicy %s has an egress rule that allows everything", p.Name)
			}
		}
		if !dns {
			t.Errorf("NetworkPolicy %s does not let %s reach DNS", p.Name, d.Name)
		}
	}
}

func TestConveyorBadValuesAreRejectedNamingTheKey(t *testing.T) {
	for _, tc := range []struct {
		name      string
		overrides map[string]any
		want      string
	}{
		{"unknown key", map[string]any{"pools": map[string]any{"build": map[string]any{"replica": 2}}}, "replica"},
		{"unknown pool", map[string]any{"pools": map[string]any{"biuld": map[string]any{"enabled": true}}}, "biuld"},
		{"unknown top-level key", map[string]any{"image": map[string]any{"tag": "v1"}}, "image"},
		{"bad type", map[string]any{"pools": map[string]any{"deploy": map[string]any{"replicas": "two"}}}, "/pools/deploy/replicas"},
		{"bad type of a flag", map[string]any{"workerDefaults": map[string]any{"shutdownTimeoutSeconds": "10m"}}, "/workerDefaults/shutdownTimeoutSeconds"},
		{"short digest", map[string]any{"images": map[string]any{"worker": map[string]any{"digest": "sha256:abc"}}}, "/images/worker/digest"},
		{"registry password in the clear", map[string]any{"config": map[string]any{"registry": map[string]any{"password": "hunter2"}}}, "password"},
		{"gerrit password in the clear", map[string]any{"config": map[string]any{"gerrit": map[string]any{"password": "hunter2"}}}, "password"},
		{"webhook secret in the clear", map[string]any{"receiver": map[string]any{"triggers": map[string]any{
			"webhook": map[string]any{"secret": "0123456789abcdef0123"}}}}, "/receiver/triggers/webhook"},
		{"bad namespace", map[string]any{"rbac": map[string]any{"managedNamespaces": []any{"Prod"}}}, "/rbac/managedNamespaces/0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := renderConveyor(t, tc.overrides)
			if err == nil {
				t.Fatalf("values %v rendered, want an error naming %s", tc.overrides, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not name %s:\n%v", tc.want, err)
			}
		})
	}
}
