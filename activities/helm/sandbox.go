package helm

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// deniedKinds are refused in a chart of an unreviewed patchset whatever their scope,
// each with the reason: what the kind would let a patchset reach beyond its
// namespace. Most are cluster-scoped, which is refused anyway; naming them here
// keeps the refusal explicit should an API server ever serve one namespaced.
var deniedKinds = map[schema.GroupKind]string{
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}:        "grants rights in every namespace",
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}: "grants rights in every namespace",
	{Kind: "Namespace"}: "creates a namespace outside the sandbox, which teardown would not remove",
	{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}:                 "changes the API of the whole cluster",
	{Group: "apiregistration.k8s.io", Kind: "APIService"}:                             "routes part of the API to a server of the chart's choosing",
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingWebhookConfiguration"}:   "sees (and can block) every matching request in the cluster",
	{Group: "admissionregistration.k8s.io", Kind: "MutatingWebhookConfiguration"}:     "sees and rewrites every matching request in the cluster",
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingAdmissionPolicy"}:        "changes admission for the whole cluster",
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingAdmissionPolicyBinding"}: "changes admission for the whole cluster",
	{Group: "admissionregistration.k8s.io", Kind: "MutatingAdmissionPolicy"}:          "changes admission for the whole cluster",
	{Group: "admissionregistration.k8s.io", Kind: "MutatingAdmissionPolicyBinding"}:   "changes admission for the whole cluster",
	{Group: "policy", Kind: "PodSecurityPolicy"}:                                      "changes what pods may do in the whole cluster",
	{Kind: "PersistentVolume"}:                                                  "can mount a directory of a node (hostPath) into the sandbox",
	{Kind: "Endpoints"}:                                                         "points a Service at any address, past its selector (CVE-2021-25740)",
	{Group: "discovery.k8s.io", Kind: "EndpointSlice"}:                          "points a Service at any address, past its selector (CVE-2021-25740)",
	{Group: "certificates.k8s.io", Kind: "CertificateSigningRequest"}:           "asks the cluster's CA for a certificate",
	{Group: "authentication.k8s.io", Kind: "TokenRequest"}:                      "mints a token for an identity",
	{Group: "scheduling.k8s.io", Kind: "PriorityClass"}:                         "lets the sandbox's pods evict other pods of the cluster",
	{Group: "node.k8s.io", Kind: "RuntimeClass"}:                                "changes how pods of the whole cluster run",
	{Group: "storage.k8s.io", Kind: "StorageClass"}:                             "changes storage for the whole cluster",
	{Group: "flowcontrol.apiserver.k8s.io", Kind: "FlowSchema"}:                 "changes how the API server ranks every request",
	{Group: "flowcontrol.apiserver.k8s.io", Kind: "PriorityLevelConfiguration"}: "changes how the API server ranks every request",
	{Group: "networking.k8s.io", Kind: "IngressClass"}:                          "changes ingress for the whole cluster",
	{Group: "internal.apiserver.k8s.io", Kind: "StorageVersion"}:                "is the API server's own record",
	{Group: "resource.k8s.io", Kind: "DeviceClass"}:                             "changes device allocation for the whole cluster",
}

// sandbox is what the objects of an unreviewed chart must keep to: kinds the
// cluster serves as namespaced, all in the release's namespace, none on
// deniedKinds, and pods that pass the PodSecurity restricted profile, which the
// API server also enforces on the namespace (sandboxLabels).
type sandbox struct {
	namespace string
	mapper    meta.RESTMapper
}

// renderedObject is one object a chart rendered, with the template it came from.
type renderedObject struct {
	source string
	obj    *unstructured.Unstructured
}

func (o renderedObject) String() string {
	name := o.obj.GetName()
	if name == "" && o.obj.GetGenerateName() != "" {
		name = o.obj.GetGenerateName() + "…"
	}
	return strings.TrimSpace(fmt.Sprintf("%s: %s %s", o.source, o.obj.GetKind(), name))
}

// check lists what is wrong with o, and sets its namespace to the sandbox's when it
// names none, as the install would. The error is a failure to ask the cluster
// about the kind, worth a retry.
func (s sandbox) check(o renderedObject) ([]string, error) {
	obj := o.obj
	gvk := obj.GroupVersionKind()
	switch {
	case gvk.Kind == "" || gvk.Version == "":
		return []string{"has no apiVersion or kind"}, nil
	case obj.IsList() || strings.HasSuffix(gvk.Kind, "List"):
		return []string{"is a list, which would hide its items from these checks: render each object as a document of its own"}, nil
	}
	if why, ok := deniedKinds[gvk.GroupKind()]; ok {
		return []string{fmt.Sprintf("kind %s is not allowed in a sandbox: it %s", gvk.Kind, why)}, nil
	}
	m, err := s.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	switch {
	case meta.IsNoMatchError(err):
		return []string{fmt.Sprintf("kind %s of apiVersion %s is unknown to the cluster", gvk.Kind, obj.GetAPIVersion())}, nil
	case err != nil:
		return nil, fmt.Errorf("asking the cluster about kind %s of apiVersion %s: %w", gvk.Kind, obj.GetAPIVersion(), err)
	case m.Scope.Name() != meta.RESTScopeNameNamespace:
		return []string{fmt.Sprintf("kind %s is cluster-scoped: only namespaced objects may be deployed, in the release's namespace", gvk.Kind)}, nil
	}
	var problems []string
	switch ns := obj.GetNamespace(); ns {
	case "":
		obj.SetNamespace(s.namespace)
	case s.namespace:
	default:
		problems = append(problems, fmt.Sprintf("metadata.namespace is %q: objects may be deployed only in the release's namespace (leave metadata.namespace out, or set it to {{ .Release.Namespace }})", ns))
	}
	problems = append(problems, kindProblems(obj)...)
	return append(problems, podProblems(obj)...), nil
}

// kindProblems are the refusals of namespaced kinds that reach outside the
// namespace through one of their fields.
func kindProblems(obj *unstructured.Unstructured) []string {
	gk := obj.GroupVersionKind().GroupKind()
	str := func(path ...string) string { v, _, _ := unstructured.NestedString(obj.Object, path...); return v }
	switch gk {
	case schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "RoleBinding"}:
		if str("roleRef", "kind") == "ClusterRole" {
			return []string{fmt.Sprintf("roleRef binds ClusterRole %q: a sandbox may bind only Roles of its own namespace", str("roleRef", "name"))}
		}
	case schema.GroupKind{Kind: "Secret"}:
		if str("type") == string(corev1.SecretTypeServiceAccountToken) {
			return []string{"type kubernetes.io/service-account-token mints a long-lived token for a ServiceAccount: mount a projected token instead"}
		}
	case schema.GroupKind{Kind: "Service"}:
		var out []string
		switch t := str("spec", "type"); corev1.ServiceType(t) {
		case "", corev1.ServiceTypeClusterIP:
		default:
			out = append(out, fmt.Sprintf("spec.type %s opens the service outside the cluster or points it at any host (CVE-2021-25740): use ClusterIP", t))
		}
		if ips, _, _ := unstructured.NestedSlice(obj.Object, "spec", "externalIPs"); len(ips) > 0 {
			out = append(out, "spec.externalIPs intercepts the cluster's traffic to those addresses (CVE-2020-8554): remove it")
		}
		return out
	}
	return nil
}

// podTemplatePaths says where each workload kind keeps its pod's metadata and spec.
var podTemplatePaths = map[schema.GroupKind][]string{
	{Kind: "Pod"}:                        nil,
	{Kind: "PodTemplate"}:                {"template"},
	{Kind: "ReplicationController"}:      {"spec", "template"},
	{Group: "apps", Kind: "Deployment"}:  {"spec", "template"},
	{Group: "apps", Kind: "ReplicaSet"}:  {"spec", "template"},
	{Group: "apps", Kind: "StatefulSet"}: {"spec", "template"},
	{Group: "apps", Kind: "DaemonSet"}:   {"spec", "template"},
	{Group: "batch", Kind: "Job"}:        {"spec", "template"},
	{Group: "batch", Kind: "CronJob"}:    {"spec", "jobTemplate", "spec", "template"},
}

// restricted evaluates pods against the PodSecurity restricted profile with the
// API server's own checks (k8s.io/pod-security-admission), at the newest version.
var restricted = func() func(md *metav1.ObjectMeta, spec *corev1.PodSpec) []string {
	ev, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		panic(fmt.Sprintf("building the PodSecurity evaluator: %v", err))
	}
	lv := psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}
	return func(md *metav1.ObjectMeta, spec *corev1.PodSpec) []string {
		var out []string
		for _, r := range ev.EvaluatePod(lv, md, spec) {
			if !r.Allowed {
				out = append(out, strings.TrimSpace(r.ForbiddenReason+" ("+r.ForbiddenDetail+")"))
			}
		}
		return out
	}
}()

// podProblems checks the pod that obj is, or that it templates, against the
// restricted profile: no privileged containers, host namespaces, hostPath volumes
// or host ports, non-root, no privilege escalation, capabilities dropped, a
// seccomp profile.
func podProblems(obj *unstructured.Unstructured) []string {
	path, ok := podTemplatePaths[obj.GroupVersionKind().GroupKind()]
	if !ok {
		return nil
	}
	tmpl := obj.Object
	if path != nil {
		m, found, err := unstructured.NestedMap(obj.Object, path...)
		if err != nil || !found {
			return nil
		}
		tmpl = m
	}
	where := strings.Join(append(slices.Clone(path), "spec"), ".")
	var md metav1.ObjectMeta
	var spec corev1.PodSpec
	if m, ok := tmpl["metadata"].(map[string]any); ok {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &md); err != nil {
			return []string{fmt.Sprintf("%s: the pod's metadata does not decode: %v", strings.Join(append(slices.Clone(path), "metadata"), "."), err)}
		}
	}
	if m, ok := tmpl["spec"].(map[string]any); ok {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &spec); err != nil {
			return []string{fmt.Sprintf("%s does not decode as a pod spec: %v", where, err)}
		}
	}
	var out []string
	for _, p := range restricted(&md, &spec) {
		out = append(out, fmt.Sprintf("%s breaks the PodSecurity restricted profile: %s", where, p))
	}
	return out
}
