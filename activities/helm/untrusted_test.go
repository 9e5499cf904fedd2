package helm

import (
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/wikimedia/conveyor/activities/contract"
)

// These tests check the rendered manifests of charts without a cluster: a REST
// mapper of the usual kinds stands for the cluster's discovery.

var testRelease = contract.Release{Namespace: "ci-hello-1-2-abc", Name: "hello"}

const testField = `chart.path "deploy/chart" in .pipeline/config.yaml`

// testMapper knows the kinds the tests use, with their scope.
func testMapper() meta.RESTMapper {
	m := meta.NewDefaultRESTMapper(nil)
	for gv, kinds := range map[schema.GroupVersion]map[string]meta.RESTScope{
		{Version: "v1"}: {"Pod": meta.RESTScopeNamespace, "Service": meta.RESTScopeNamespace, "ConfigMap": meta.RESTScopeNamespace,
			"Secret": meta.RESTScopeNamespace, "ServiceAccount": meta.RESTScopeNamespace, "Endpoints": meta.RESTScopeNamespace,
			"Namespace": meta.RESTScopeRoot, "PersistentVolume": meta.RESTScopeRoot, "Node": meta.RESTScopeRoot},
		{Group: "apps", Version: "v1"}:  {"Deployment": meta.RESTScopeNamespace, "DaemonSet": meta.RESTScopeNamespace},
		{Group: "batch", Version: "v1"}: {"Job": meta.RESTScopeNamespace, "CronJob": meta.RESTScopeNamespace},
		{Group: "rbac.authorization.k8s.io", Version: "v1"}: {"Role": meta.RESTScopeNamespace, "RoleBinding": meta.RESTScopeNamespace,
			"ClusterRole": meta.RESTScopeRoot, "ClusterRoleBinding": meta.RESTScopeRoot},
		{Group: "networking.k8s.io", Version: "v1"}:            {"NetworkPolicy": meta.RESTScopeNamespace},
		{Group: "autoscaling", Version: "v2"}:                  {"HorizontalPodAutoscaler": meta.RESTScopeNamespace},
		{Group: "storage.k8s.io", Version: "v1"}:               {"VolumeAttachment": meta.RESTScopeRoot},
		{Group: "admissionregistration.k8s.io", Version: "v1"}: {"ValidatingWebhookConfiguration": meta.RESTScopeRoot, "MutatingWebhookConfiguration": meta.RESTScopeRoot},
		{Group: "apiextensions.k8s.io", Version: "v1"}:         {"CustomResourceDefinition": meta.RESTScopeRoot},
	} {
		for kind, scope := range kinds {
			m.Add(gv.WithKind(kind), scope)
		}
	}
	return m
}

// testChart is a chart named evil with the given templates (path under templates/
// → text).
func testChart(templates map[string]string) *chart.Chart {
	ch := &chart.Chart{Metadata: &chart.Metadata{APIVersion: chart.APIVersionV2, Name: "evil", Version: "0.1.0"}}
	for name, text := range templates {
		ch.Templates = append(ch.Templates, &chart.File{Name: "templates/" + name, Data: []byte(text)})
	}
	return ch
}

// testCaps are a cluster of the stack's Kubernetes version.
func testCaps() *chartutil.Capabilities {
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = chartutil.KubeVersion{Version: "v1.36.3", Major: "1", Minor: "36"}
	return caps
}

func pin(ch *chart.Chart, vals map[string]any) (*chart.Chart, error) {
	return pinUntrusted(ch, vals, testRelease, testField, testCaps(), sandbox{namespace: testRelease.Namespace, mapper: testMapper()})
}

// safePod passes the restricted profile.
const safePod = `apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-pod
spec:
  securityContext:
    runAsNonRoot: true
    seccompProfile: {type: RuntimeDefault}
  containers:
    - name: app
      image: busybox
      securityContext:
        allowPrivilegeEscalation: false
        capabilities: {drop: [ALL]}
`

func TestUntrustedChartRefusals(t *testing.T) {
	for name, tc := range map[string]struct {
		templates map[string]string
		want      []string
	}{
		"a cluster-scoped object": {
			templates: map[string]string{"va.yaml": "apiVersion: storage.k8s.io/v1\nkind: VolumeAttachment\nmetadata: {name: grab}\nspec: {}\n"},
			want:      []string{"evil/templates/va.yaml: VolumeAttachment grab: kind VolumeAttachment is cluster-scoped"},
		},
		"a kind the cluster does not know": {
			templates: map[string]string{"w.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"},
			want:      []string{"evil/templates/w.yaml: Widget w: kind Widget of apiVersion example.com/v1 is unknown to the cluster"},
		},
		"an object in another namespace": {
			templates: map[string]string{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: coredns, namespace: kube-system}\n"},
			want:      []string{`evil/templates/cm.yaml: ConfigMap coredns: metadata.namespace is "kube-system": objects may be deployed only in the release's namespace`},
		},
		"a ClusterRoleBinding": {
			templates: map[string]string{"crb.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: me-admin}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\n"},
			want:      []string{"ClusterRoleBinding me-admin: kind ClusterRoleBinding is not allowed in a sandbox: it grants rights in every namespace"},
		},
		"a ClusterRole, a Namespace, a webhook and a CRD": {
			templates: map[string]string{"all.yaml": `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: all}
---
apiVersion: v1
kind: Namespace
metadata: {name: mine}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: spy}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
`},
			want: []string{"ClusterRole all: kind ClusterRole is not allowed", "Namespace mine: kind Namespace is not allowed",
				"MutatingWebhookConfiguration spy: kind MutatingWebhookConfiguration is not allowed", "CustomResourceDefinition widgets.example.com: kind CustomResourceDefinition is not allowed"},
		},
		"a RoleBinding to a ClusterRole": {
			templates: map[string]string{"rb.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: edit}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}\nsubjects: [{kind: ServiceAccount, name: default}]\n"},
			want:      []string{`RoleBinding edit: roleRef binds ClusterRole "edit"`},
		},
		"hand-made Endpoints, a NodePort and externalIPs": {
			templates: map[string]string{"svc.yaml": `apiVersion: v1
kind: Endpoints
metadata: {name: temporal}
subsets: [{addresses: [{ip: 10.0.0.1}], ports: [{port: 7233}]}]
---
apiVersion: v1
kind: Service
metadata: {name: open}
spec: {type: NodePort, externalIPs: [10.0.0.1], ports: [{port: 80}]}
`},
			want: []string{"Endpoints temporal: kind Endpoints is not allowed", "Service open: spec.type NodePort", "Service open: spec.externalIPs"},
		},
		"a service-account token Secret": {
			templates: map[string]string{"s.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: tok, annotations: {kubernetes.io/service-account.name: default}}\ntype: kubernetes.io/service-account-token\n"},
			want:      []string{"Secret tok: type kubernetes.io/service-account-token"},
		},
		"a privileged pod": {
			templates: map[string]string{"pod.yaml": strings.Replace(safePod, "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: false\n        privileged: true", 1)},
			want:      []string{"evil/templates/pod.yaml: Pod hello-pod: spec breaks the PodSecurity restricted profile: privileged"},
		},
		"host namespaces and a hostPath volume in a Deployment": {
			templates: map[string]string{"deploy.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: host}
spec:
  selector: {matchLabels: {app: host}}
  template:
    metadata: {labels: {app: host}}
    spec:
      hostNetwork: true
      hostPID: true
      volumes: [{name: root, hostPath: {path: /}}]
      containers: [{name: app, image: busybox}]
`},
			want: []string{"Deployment host: spec.template.spec breaks the PodSecurity restricted profile: host namespaces (hostNetwork=true, hostPID=true)",
				`Deployment host: spec.template.spec breaks the PodSecurity restricted profile: restricted volume types (volume "root" uses restricted volume type "hostPath")`, "runAsNonRoot"},
		},
		"a privileged pre-install hook": {
			templates: map[string]string{"hook.yaml": strings.Replace(strings.Replace(safePod, "  name: {{ .Release.Name }}-pod\n", "  name: {{ .Release.Name }}-pod\n  annotations: {helm.sh/hook: pre-install}\n", 1),
				"allowPrivilegeEscalation: false", "allowPrivilegeEscalation: false\n        privileged: true", 1)},
			want: []string{"evil/templates/hook.yaml: Pod hello-pod: spec breaks the PodSecurity restricted profile: privileged"},
		},
		"a CronJob whose pods run as root with added capabilities": {
			templates: map[string]string{"cron.yaml": `apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: app, image: busybox, securityContext: {capabilities: {add: [NET_ADMIN]}}}]
`},
			want: []string{"CronJob tick: spec.jobTemplate.spec.template.spec breaks the PodSecurity restricted profile", "NET_ADMIN"},
		},
		"a List that hides its items": {
			templates: map[string]string{"list.yaml": "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: Namespace\n    metadata: {name: hidden}\n"},
			want:      []string{"evil/templates/list.yaml: List: is a list"},
		},
		"lookup of a Secret": {
			templates: map[string]string{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: stolen}\ndata:\n  token: {{ (lookup \"v1\" \"Secret\" \"kube-system\" \"admin-token\").data | toJson | quote }}\n"},
			want:      []string{"evil/templates/cm.yaml:5 calls lookup, which reads the cluster's objects"},
		},
		"lookup in a partial of a subchart and in the notes": {
			templates: map[string]string{"NOTES.txt": "{{ if lookup \"v1\" \"Namespace\" \"\" \"prod\" }}found{{ end }}\n"},
			want: []string{"evil/templates/NOTES.txt:1 calls lookup",
				"evil/charts/sub/templates/_helpers.tpl:2 calls lookup"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			ch := testChart(tc.templates)
			if name == "lookup in a partial of a subchart and in the notes" {
				sub := testChart(map[string]string{"_helpers.tpl": "{{- define \"sub.x\" -}}\n{{- range $k, $v := (lookup \"v1\" \"Secret\" \"\" \"\").items }}{{ $k }}{{ end }}\n{{- end -}}\n"})
				sub.Metadata.Name = "sub"
				ch.AddDependency(sub)
			}
			_, err := pin(ch, nil)
			wantAppError(t, err, contract.ErrUntrustedChart, append([]string{testField, "docs/security.md"}, tc.want...)...)
		})
	}
}

// TestLookupMentionedIsNoCall: the check reads the template's syntax, so the word
// in a comment, a string or a value's name is no call.
func TestLookupMentionedIsNoCall(t *testing.T) {
	ch := testChart(map[string]string{"cm.yaml": `{{/* lookup would read the cluster; we do not */}}
apiVersion: v1
kind: ConfigMap
metadata: {name: words}
data:
  a: {{ "lookup" | quote }}
  b: {{ .Values.lookup | default "none" | quote }}
`})
	if _, err := pin(ch, map[string]any{"lookup": "x"}); err != nil {
		t.Fatalf("a chart that only mentions lookup: %v", err)
	}
}

// TestPinnedChartInstallsWhatWasChecked: the chart installed in place of an
// unreviewed one renders, on every render, exactly the objects that were checked,
// with the release's namespace filled in, hooks and notes kept.
func TestPinnedChartInstallsWhatWasChecked(t *testing.T) {
	ch := testChart(map[string]string{
		"cm.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}-cfg}\ndata:\n  nonce: {{ randAlphaNum 16 | quote }}\n  tmpl: \"{{ \"{{ .Values.x }}\" }}\"\n",
		"hook.yaml": strings.Replace(safePod, "  name: {{ .Release.Name }}-pod\n", "  name: {{ .Release.Name }}-pod\n  annotations: {helm.sh/hook: test}\n", 1),
		"NOTES.txt": "Release {{ .Release.Name }} in {{ .Release.Namespace }}.",
	})
	pinned, err := pin(ch, map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := renderAsInstall(pinned, map[string]any{}, testRelease, testCaps())
	if err != nil {
		t.Fatal(err)
	}
	second, err := renderAsInstall(pinned, map[string]any{}, testRelease, testCaps())
	if err != nil {
		t.Fatal(err)
	}
	if first.Manifest != second.Manifest {
		t.Errorf("the pinned chart renders differently each time:\n%s\n---\n%s", first.Manifest, second.Manifest)
	}
	for _, want := range []string{`"namespace":"ci-hello-1-2-abc"`, `"name":"hello-cfg"`, `"tmpl":"{{ .Values.x }}"`} {
		if !strings.Contains(first.Manifest, want) {
			t.Errorf("pinned manifest lacks %s:\n%s", want, first.Manifest)
		}
	}
	if len(first.Hooks) != 1 || first.Hooks[0].Name != "hello-pod" || !strings.Contains(first.Hooks[0].Manifest, `"namespace":"ci-hello-1-2-abc"`) {
		t.Errorf("pinned hooks %+v, want the test pod hello-pod in the release's namespace", first.Hooks)
	}
	if first.Info.Notes != "Release hello in ci-hello-1-2-abc." {
		t.Errorf("pinned notes %q", first.Info.Notes)
	}
}

// TestConveyorsChartPassesTheChecks: charts/service, as a repository's own chart,
// with every optional object on, is deployable from an unreviewed patchset.
func TestConveyorsChartPassesTheChecks(t *testing.T) {
	ch, err := loader.LoadDir("../../charts/service")
	if err != nil {
		t.Fatal(err)
	}
	vals := candidateValues(map[string]any{
		"hpa":             map[string]any{"enabled": true, "minReplicas": 1, "maxReplicas": 3},
		"networkPolicy":   map[string]any{"enabled": true},
		"test":            map[string]any{"enabled": true},
		"securityContext": map[string]any{"readOnlyRootFilesystem": true},
	}, "hello", "localhost:5000/candidates/hello", "sha256:"+strings.Repeat("a", 64), false)
	pinned, err := pin(ch, vals)
	if err != nil {
		t.Fatalf("charts/service refused: %v", err)
	}
	var kinds []string
	for _, f := range pinned.Files {
		kinds = append(kinds, f.Name)
	}
	if len(pinned.Templates) < 5 {
		t.Errorf("pinned charts/service has templates %v, want the Deployment, Service, NetworkPolicy, HPA and test pod", kinds)
	}
}
