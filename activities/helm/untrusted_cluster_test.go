package helm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wikimedia/conveyor/activities/contract"
)

// evilTemplates are the templates of a patchset's chart that tries to reach
// outside its sandbox; every object carries the label evilLabel=<release
// namespace>, so that the test can look for it anywhere in the cluster.
var evilTemplates = map[string]string{
	"grab": `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ .Release.Namespace }}-grab
  labels: {conveyor-test/evil: {{ .Release.Namespace }}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: default, namespace: {{ .Release.Namespace }}}]
---
apiVersion: storage.k8s.io/v1
kind: VolumeAttachment
metadata:
  name: {{ .Release.Namespace }}-attach
  labels: {conveyor-test/evil: {{ .Release.Namespace }}}
spec: {attacher: evil, nodeName: none, source: {persistentVolumeName: none}}
`,
	"plant": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Namespace }}-planted
  namespace: default
  labels: {conveyor-test/evil: {{ .Release.Namespace }}}
data: {planted: "yes"}
`,
	"steal": `apiVersion: v1
kind: ConfigMap
metadata:
  name: stolen
  labels: {conveyor-test/evil: {{ .Release.Namespace }}}
data:
  secrets: {{ (lookup "v1" "Secret" "kube-system" "").items | len | quote }}
`,
	"root": `apiVersion: v1
kind: Pod
metadata:
  name: root
  labels: {conveyor-test/evil: {{ .Release.Namespace }}}
spec:
  hostPID: true
  containers:
    - name: sh
      image: busybox
      securityContext: {privileged: true}
      volumeMounts: [{name: host, mountPath: /host}]
  volumes: [{name: host, hostPath: {path: /}}]
`,
}

const evilLabel = "conveyor-test/evil"

// TestDeployRefusesAPatchsetsMaliciousChart deploys charts of an unreviewed
// patchset that create a cluster-scoped object, plant an object in another
// namespace, read Secrets with lookup and run a privileged pod: each is refused
// with UntrustedChart, naming the template and what is wrong, and nothing they
// name exists anywhere in the cluster afterwards, their namespace included.
func TestDeployRefusesAPatchsetsMaliciousChart(t *testing.T) {
	t.Parallel()
	a, _ := newActivities(t)
	env := activityEnv(a)
	src := gitRepo(t, func(dir string) {
		for name, text := range evilTemplates {
			if err := os.MkdirAll(filepath.Join(dir, name, "templates"), 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, name, "Chart.yaml"), "apiVersion: v2\nname: "+name+"\nversion: 0.1.0\n")
			writeFile(t, filepath.Join(dir, name, "templates", name+".yaml"), text)
		}
	})
	r := newRelease(t, a, "evil")
	ctx := context.Background()
	before := evilObjects(t, a, r.Namespace)
	if len(before) > 0 {
		t.Fatalf("objects labelled %s=%s before the test: %v", evilLabel, r.Namespace, before)
	}
	digest := "localhost:5000/candidates/hello@sha256:" + strings.Repeat("0", 64)
	for chart, want := range map[string][]string{
		"grab":  {"grab/templates/grab.yaml: ClusterRoleBinding " + r.Namespace + "-grab: kind ClusterRoleBinding is not allowed", "VolumeAttachment " + r.Namespace + "-attach: kind VolumeAttachment is cluster-scoped"},
		"plant": {"plant/templates/plant.yaml: ConfigMap " + r.Namespace + `-planted: metadata.namespace is "default"`},
		"steal": {"steal/templates/steal.yaml:7 calls lookup"},
		"root":  {"root/templates/root.yaml: Pod root: spec breaks the PodSecurity restricted profile: privileged", "hostPath", "host namespaces (hostPID=true)"},
	} {
		t.Run(chart, func(t *testing.T) {
			in := deployInput(r, digest, nil)
			in.Source, in.Settings.Chart = src, chart
			_, err := deploy(t, env, a, in)
			wantAppError(t, err, contract.ErrUntrustedChart, append([]string{`chart.path "` + chart + `"`}, want...)...)
		})
	}
	if after := evilObjects(t, a, r.Namespace); len(after) > 0 {
		t.Errorf("the refused charts left objects in the cluster: %v", after)
	}
	if _, err := a.kube.CoreV1().Namespaces().Get(ctx, r.Namespace, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace %s: %v; want none created for a refused chart", r.Namespace, err)
	}
}

// evilObjects lists the objects of the kinds evilTemplates make that carry its
// label for ns, in every namespace.
func evilObjects(t *testing.T, a *Activities, ns string) []string {
	t.Helper()
	ctx := context.Background()
	sel := metav1.ListOptions{LabelSelector: evilLabel + "=" + ns}
	var out []string
	crbs, err := a.kube.RbacV1().ClusterRoleBindings().List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range crbs.Items {
		out = append(out, "ClusterRoleBinding "+o.Name)
	}
	vas, err := a.kube.StorageV1().VolumeAttachments().List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range vas.Items {
		out = append(out, "VolumeAttachment "+o.Name)
	}
	cms, err := a.kube.CoreV1().ConfigMaps("").List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range cms.Items {
		out = append(out, "ConfigMap "+o.Namespace+"/"+o.Name)
	}
	pods, err := a.kube.CoreV1().Pods("").List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range pods.Items {
		out = append(out, "Pod "+o.Namespace+"/"+o.Name)
	}
	return out
}

// TestSandboxNamespaceEnforcesRestricted: the namespace DeployCandidate creates
// carries conveyor's sandbox label, and the API server itself refuses a privileged
// pod in it, whoever creates it.
func TestSandboxNamespaceEnforcesRestricted(t *testing.T) {
	t.Parallel()
	a, _ := newActivities(t)
	r := newRelease(t, a, "restricted")
	ctx := context.Background()
	if err := a.ensureNamespace(ctx, r.Namespace, map[string]string{"conveyor.wikimedia.org/test": "activities-helm", sandboxLabel: "false"}); err != nil {
		t.Fatal(err)
	}
	ns, err := a.kube.CoreV1().Namespaces().Get(ctx, r.Namespace, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{sandboxLabel: "true", "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest", "conveyor.wikimedia.org/test": "activities-helm"} {
		if ns.Labels[k] != v {
			t.Errorf("namespace label %s = %q, want %q (labels %v)", k, ns.Labels[k], v, ns.Labels)
		}
	}
	priv := true
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "root"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "sh", Image: "busybox", SecurityContext: &corev1.SecurityContext{Privileged: &priv}}}}}
	_, err = a.kube.CoreV1().Pods(r.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "PodSecurity") {
		t.Errorf("creating a privileged pod in the sandbox: %v; want the API server's PodSecurity refusal", err)
	}
}

// TestTeardownRefusesANamespaceConveyorDidNotCreate: Teardown of a namespace
// without conveyor's sandbox label fails for good and leaves it and its objects
// alone; DeployCandidate refuses to deploy into it.
func TestTeardownRefusesANamespaceConveyorDidNotCreate(t *testing.T) {
	t.Parallel()
	a, _ := newActivities(t)
	ctx := context.Background()
	r := contract.Release{Namespace: "test-helm-foreign-" + randomSuffix(t), Name: "hello"}
	mustCreate(t, func() error {
		_, err := a.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: r.Namespace,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "conveyor"}}}, metav1.CreateOptions{})
		return err
	})
	t.Cleanup(func() {
		if err := a.kube.CoreV1().Namespaces().Delete(context.Background(), r.Namespace, metav1.DeleteOptions{}); err != nil {
			t.Errorf("cleaning up namespace %s: %v", r.Namespace, err)
		}
	})
	mustCreate(t, func() error {
		_, err := a.kube.CoreV1().ConfigMaps(r.Namespace).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "precious"}}, metav1.CreateOptions{})
		return err
	})
	env := activityEnv(a)
	_, err := env.ExecuteActivity(a.Teardown, contract.TeardownInput{Release: r})
	wantAppError(t, err, contract.ErrInvalidConfig, "refusing to tear down namespace "+r.Namespace, "no label "+sandboxLabel+"=true", "nothing in it was changed")
	ns, err := a.kube.CoreV1().Namespaces().Get(ctx, r.Namespace, metav1.GetOptions{})
	if err != nil || ns.DeletionTimestamp != nil {
		t.Fatalf("namespace %s after the refused teardown: %v (deletion %v); want it untouched", r.Namespace, err, ns.DeletionTimestamp)
	}
	if _, err := a.kube.CoreV1().ConfigMaps(r.Namespace).Get(ctx, "precious", metav1.GetOptions{}); err != nil {
		t.Errorf("ConfigMap precious after the refused teardown: %v", err)
	}
	_, err = deploy(t, env, a, deployInput(r, "localhost:5000/candidates/hello@sha256:"+strings.Repeat("0", 64), serviceValues()))
	wantAppError(t, err, contract.ErrInvalidConfig, "refusing to deploy into namespace "+r.Namespace)
}
