package charts

import (
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

const (
	serviceChart = "service"
	testDigest   = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// kubeVersion is the oldest Kubernetes the chart's kubeVersion constraint accepts.
var kubeVersion = chartutil.KubeVersion{Version: "v1.30.0", Major: "1", Minor: "30"}

// variants are value overrides every test renders or lints; nil is the chart's defaults.
var variants = map[string]map[string]any{
	"defaults": nil,
	"hpa":      {"hpa": map[string]any{"enabled": true, "minReplicas": 2, "maxReplicas": 5}},
	"digest":   {"image": map[string]any{"repository": "localhost:5000/conveyor/hello", "digest": testDigest}},
	"canary":   {"appName": "hello", "track": "canary", "service": map[string]any{"enabled": false}},
	"env":      {"env": map[string]any{"GREETING": "hi", "A_FIRST": "1"}, "args": []any{"--verbose"}},
	"readOnly": {"securityContext": map[string]any{"readOnlyRootFilesystem": true}},
	"testImage": {"test": map[string]any{"path": "/healthz", "image": map[string]any{
		"repository": "localhost:5000/conveyor/busybox", "tag": "latest"}}},
}

// manifests are the objects one rendering of the chart produced, decoded strictly.
type manifests struct {
	deployments []appsv1.Deployment
	services    []corev1.Service
	policies    []networkingv1.NetworkPolicy
	hpas        []autoscalingv2.HorizontalPodAutoscaler
	pods        []corev1.Pod
	notes       string
}

func loadChart(t *testing.T, dir string) *chart.Chart {
	t.Helper()
	c, err := loader.Load(dir)
	if err != nil {
		t.Fatalf("loading chart %s: %v", dir, err)
	}
	return c
}

// renderDocs renders the chart in dir as `helm install release` would, in namespace
// conveyor-test, and calls add with every YAML document but NOTES.txt, which it
// returns; it returns the error of schema validation or rendering, and a document add
// refuses fails the test.
func renderDocs(t *testing.T, dir, release string, overrides map[string]any, add func(doc []byte) error) (notes string, err error) {
	t.Helper()
	c := loadChart(t, dir)
	if !chartutil.IsCompatibleRange(c.Metadata.KubeVersion, kubeVersion.Version) {
		t.Fatalf("chart %s: kubeVersion %q refuses Kubernetes %s", dir, c.Metadata.KubeVersion, kubeVersion.Version)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = kubeVersion
	opts := chartutil.ReleaseOptions{Name: release, Namespace: "conveyor-test", Revision: 1, IsInstall: true}
	vals, err := chartutil.ToRenderValues(c, overrides, opts, caps)
	if err != nil {
		return "", err
	}
	files, err := engine.Render(c, vals)
	if err != nil {
		return "", err
	}
	for name, content := range files {
		if path.Base(name) == "NOTES.txt" {
			notes = content
			continue
		}
		for _, doc := range strings.Split(content, "\n---") {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			if err := add([]byte(doc)); err != nil {
				t.Fatalf("%s: %v\n%s", name, err, doc)
			}
		}
	}
	return notes, nil
}

// renderChart renders the service chart as `helm install release` would; it returns
// the error of schema validation or rendering.
func renderChart(t *testing.T, release string, overrides map[string]any) (*manifests, error) {
	t.Helper()
	m := &manifests{}
	var err error
	m.notes, err = renderDocs(t, serviceChart, release, overrides, m.add)
	return m, err
}

// mustRender renders the chart and fails the test on any error.
func mustRender(t *testing.T, release string, overrides map[string]any) *manifests {
	t.Helper()
	m, err := renderChart(t, release, overrides)
	if err != nil {
		t.Fatalf("rendering release %s: %v", release, err)
	}
	return m
}

// add decodes one manifest into its typed object; unknown fields are errors, so a
// misspelt or misindented field in a template fails here.
func (m *manifests) add(doc []byte) error {
	var head struct{ APIVersion, Kind string }
	if err := yaml.Unmarshal(doc, &head); err != nil {
		return fmt.Errorf("reading kind: %w", err)
	}
	var err error
	switch head.APIVersion + " " + head.Kind {
	case "apps/v1 Deployment":
		m.deployments = append(m.deployments, appsv1.Deployment{})
		err = yaml.UnmarshalStrict(doc, &m.deployments[len(m.deployments)-1])
	case "v1 Service":
		m.services = append(m.services, corev1.Service{})
		err = yaml.UnmarshalStrict(doc, &m.services[len(m.services)-1])
	case "networking.k8s.io/v1 NetworkPolicy":
		m.policies = append(m.policies, networkingv1.NetworkPolicy{})
		err = yaml.UnmarshalStrict(doc, &m.policies[len(m.policies)-1])
	case "autoscaling/v2 HorizontalPodAutoscaler":
		m.hpas = append(m.hpas, autoscalingv2.HorizontalPodAutoscaler{})
		err = yaml.UnmarshalStrict(doc, &m.hpas[len(m.hpas)-1])
	case "v1 Pod":
		m.pods = append(m.pods, corev1.Pod{})
		err = yaml.UnmarshalStrict(doc, &m.pods[len(m.pods)-1])
	default:
		return fmt.Errorf("unexpected object %s %s", head.APIVersion, head.Kind)
	}
	return err
}

// one returns the only element of objs, failing the test if there is not exactly one.
func one[T any](t *testing.T, kind string, objs []T) *T {
	t.Helper()
	if len(objs) != 1 {
		t.Fatalf("got %d %s objects, want 1", len(objs), kind)
	}
	return &objs[0]
}

// selects reports whether a label selector given as a map selects the labels.
func selects(selector, podLabels map[string]string) bool {
	return len(selector) > 0 && labels.SelectorFromSet(selector).Matches(labels.Set(podLabels))
}

// lintClean lints the chart in dir with vals as the helm binary does by default and
// with the cluster version, and fails the test on any warning or error.
func lintClean(t *testing.T, dir string, vals map[string]any) {
	t.Helper()
	for _, l := range []support.Linter{
		lint.All(dir, vals, "default", false),
		lint.AllWithKubeVersion(dir, vals, "default", &kubeVersion),
	} {
		for _, msg := range l.Messages {
			if msg.Severity >= support.WarningSev {
				t.Errorf("lint: %s", msg)
			} else {
				t.Logf("lint: %s", msg)
			}
		}
	}
}

func TestLintHasNoWarnings(t *testing.T) {
	for name, overrides := range variants {
		t.Run(name, func(t *testing.T) { lintClean(t, serviceChart, overrides) })
	}
}

func TestRenderVariantsProduceValidObjects(t *testing.T) {
	for name, overrides := range variants {
		t.Run(name, func(t *testing.T) {
			m := mustRender(t, "hello", overrides)
			d := one(t, "Deployment", m.deployments)
			pod := d.Spec.Template
			if !selects(d.Spec.Selector.MatchLabels, pod.Labels) {
				t.Errorf("Deployment selector %v does not select its pod labels %v", d.Spec.Selector.MatchLabels, pod.Labels)
			}
			for _, s := range m.services {
				if !selects(s.Spec.Selector, pod.Labels) {
					t.Errorf("Service selector %v does not select the pod labels %v", s.Spec.Selector, pod.Labels)
				}
			}
			for _, p := range m.policies {
				if !selects(p.Spec.PodSelector.MatchLabels, pod.Labels) {
					t.Errorf("NetworkPolicy selector %v does not select the pod labels %v", p.Spec.PodSelector.MatchLabels, pod.Labels)
				}
			}
			sc := pod.Spec.SecurityContext
			if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 900 {
				t.Errorf("pod securityContext = %+v, want runAsNonRoot and runAsUser 900", sc)
			}
			c := pod.Spec.Containers[0]
			if c.SecurityContext == nil || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
				t.Errorf("container securityContext = %+v, want allowPrivilegeEscalation false", c.SecurityContext)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("container resources = %+v, want cpu request and memory limit", c.Resources)
			}
			if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Port.String() != "http" {
				t.Errorf("readinessProbe = %+v, want an HTTP GET on port http", c.ReadinessProbe)
			}
			for _, hook := range m.pods {
				if got := hook.Annotations["helm.sh/hook"]; got != "test" {
					t.Errorf("test pod %s: helm.sh/hook = %q, want test", hook.Name, got)
				}
				for _, s := range m.services {
					if selects(s.Spec.Selector, hook.Labels) {
						t.Errorf("Service selector %v selects the test pod's labels %v", s.Spec.Selector, hook.Labels)
					}
				}
			}
			if !strings.Contains(m.notes, "helm test hello") {
				t.Errorf("NOTES.txt does not say how to test the release:\n%s", m.notes)
			}
			checkNamesAndLabels(t, m)
		})
	}
}

// checkNamesAndLabels checks the rules the API server would enforce on names and labels.
func checkNamesAndLabels(t *testing.T, m *manifests) {
	t.Helper()
	check := func(kind, name string, objLabels map[string]string, nameRule func(string) []string) {
		for _, msg := range nameRule(name) {
			t.Errorf("%s name %q: %s", kind, name, msg)
		}
		for k, v := range objLabels {
			for _, msg := range append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...) {
				t.Errorf("%s %s label %s=%q: %s", kind, name, k, v, msg)
			}
		}
	}
	for _, o := range m.deployments {
		check("Deployment", o.Name, o.Spec.Template.Labels, validation.IsDNS1123Subdomain)
	}
	for _, o := range m.services {
		check("Service", o.Name, o.Labels, validation.IsDNS1035Label)
	}
	for _, o := range m.policies {
		check("NetworkPolicy", o.Name, o.Labels, validation.IsDNS1123Subdomain)
	}
	for _, o := range m.pods {
		check("Pod", o.Name, o.Labels, validation.IsDNS1123Subdomain)
	}
}

func TestRenderDefaults(t *testing.T) {
	m := mustRender(t, "hello", nil)
	d := one(t, "Deployment", m.deployments)
	if d.Name != "hello-stable" {
		t.Errorf("Deployment name = %q, want hello-stable", d.Name)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("Deployment replicas = %v, want 1", d.Spec.Replicas)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if want := "localhost:5000/conveyor/busybox:latest"; c.Image != want {
		t.Errorf("image = %q, want %q", c.Image, want)
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != 8080 {
		t.Errorf("container ports = %+v, want one port http 8080", c.Ports)
	}

	s := one(t, "Service", m.services)
	if s.Name != "hello" || len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Port != 80 || s.Spec.Ports[0].TargetPort.String() != "http" {
		t.Errorf("Service %s ports = %+v, want hello port 80 to target http", s.Name, s.Spec.Ports)
	}

	p := one(t, "NetworkPolicy", m.policies)
	if !slices.Equal(p.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
		t.Errorf("NetworkPolicy policyTypes = %v, want [Ingress]", p.Spec.PolicyTypes)
	}
	if len(p.Spec.Ingress) != 1 || len(p.Spec.Ingress[0].From) != 0 || len(p.Spec.Ingress[0].Ports) != 1 {
		t.Fatalf("NetworkPolicy ingress = %+v, want one rule with one port and no peers", p.Spec.Ingress)
	}
	port := p.Spec.Ingress[0].Ports[0]
	if port.Protocol == nil || *port.Protocol != corev1.ProtocolTCP || port.Port == nil || port.Port.IntValue() != int(c.Ports[0].ContainerPort) {
		got, _ := yaml.Marshal(port)
		t.Errorf("NetworkPolicy allows %s want exactly TCP %d, the port the Service targets", got, c.Ports[0].ContainerPort)
	}
	if len(m.hpas) != 0 {
		t.Errorf("got %d HorizontalPodAutoscalers, want none by default", len(m.hpas))
	}

	hook := one(t, "Pod", m.pods)
	if hook.Spec.RestartPolicy != corev1.RestartPolicyNever || hook.Spec.Containers[0].Image != c.Image {
		t.Errorf("test pod restartPolicy %q image %q, want Never and the service's image %q",
			hook.Spec.RestartPolicy, hook.Spec.Containers[0].Image, c.Image)
	}
	script := strings.Join(hook.Spec.Containers[0].Command, " ")
	for _, want := range []string{"${HELLO_SERVICE_HOST:-}", "${HELLO_SERVICE_PORT:-}", "wget -q -O-", "$TEST_PATH"} {
		if !strings.Contains(script, want) {
			t.Errorf("test pod command does not contain %q:\n%s", want, script)
		}
	}
	// Debian's busybox-static wget (1.35) crashes on -T, so the pod's deadline bounds it.
	if strings.Contains(script, " -T") || hook.Spec.ActiveDeadlineSeconds == nil {
		t.Errorf("test pod: wget must not use -T and activeDeadlineSeconds must be set; got %v and:\n%s", hook.Spec.ActiveDeadlineSeconds, script)
	}
}

// TestExampleHelloValuesRender checks that the chart values in examples/hello's pipeline
// config are accepted and reach the objects.
func TestExampleHelloValuesRender(t *testing.T) {
	const configPath = "../examples/hello/.pipeline/config.yaml"
	data, err := os.ReadFile(configPath)
	if err != nil {
		t.Fatalf("reading %s: %v", configPath, err)
	}
	var config struct {
		Pipeline struct {
			Chart struct {
				Path   string         `json:"path"`
				Values map[string]any `json:"values"`
			} `json:"chart"`
		} `json:"pipeline"`
	}
	if err := yaml.Unmarshal(data, &config); err != nil {
		t.Fatalf("parsing %s: %v", configPath, err)
	}
	if config.Pipeline.Chart.Path != "" || config.Pipeline.Chart.Values == nil {
		t.Fatalf("%s: pipeline.chart = %+v, want values for conveyor's own chart", configPath, config.Pipeline.Chart)
	}
	m := mustRender(t, "hello", config.Pipeline.Chart.Values)
	c := one(t, "Deployment", m.deployments).Spec.Template.Spec.Containers[0]
	if c.ReadinessProbe.HTTPGet.Path != "/cgi-bin/healthz" || c.LivenessProbe.HTTPGet.Path != "/cgi-bin/healthz" {
		t.Errorf("probe paths %q and %q, want /cgi-bin/healthz", c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path)
	}
	if got := one(t, "Service", m.services).Spec.Ports[0].Port; got != 8080 {
		t.Errorf("Service port = %d, want 8080", got)
	}
}

func TestRenderHPA(t *testing.T) {
	m := mustRender(t, "hello", variants["hpa"])
	d := one(t, "Deployment", m.deployments)
	if d.Spec.Replicas != nil {
		t.Errorf("Deployment replicas = %d, want unset when the HPA owns it", *d.Spec.Replicas)
	}
	h := one(t, "HorizontalPodAutoscaler", m.hpas)
	ref := h.Spec.ScaleTargetRef
	if ref.Kind != "Deployment" || ref.Name != d.Name || *h.Spec.MinReplicas != 2 || h.Spec.MaxReplicas != 5 {
		t.Errorf("HPA targets %s %s with %d..%d replicas, want Deployment %s with 2..5", ref.Kind, ref.Name, *h.Spec.MinReplicas, h.Spec.MaxReplicas, d.Name)
	}
	if len(h.Spec.Metrics) != 1 || h.Spec.Metrics[0].Resource == nil || h.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
		t.Errorf("HPA metrics = %+v, want CPU", h.Spec.Metrics)
	}
}

func TestRenderDigestWinsOverTag(t *testing.T) {
	m := mustRender(t, "hello", variants["digest"])
	want := "localhost:5000/conveyor/hello@" + testDigest
	if got := one(t, "Deployment", m.deployments).Spec.Template.Spec.Containers[0].Image; got != want {
		t.Errorf("service image = %q, want %q", got, want)
	}
	if got := one(t, "Pod", m.pods).Spec.Containers[0].Image; got != want {
		t.Errorf("test pod image = %q, want %q", got, want)
	}
}

func TestRenderCanaryJoinsStableService(t *testing.T) {
	stable := mustRender(t, "hello", nil)
	canary := mustRender(t, "hello-canary", variants["canary"])
	if len(canary.services) != 0 {
		t.Errorf("canary release renders %d Services, want none", len(canary.services))
	}
	sd := one(t, "Deployment", stable.deployments)
	cd := one(t, "Deployment", canary.deployments)
	if cd.Name != "hello-canary" || cd.Name == sd.Name {
		t.Errorf("canary Deployment name = %q, want hello-canary beside %q", cd.Name, sd.Name)
	}
	svc := one(t, "Service", stable.services)
	if !selects(svc.Spec.Selector, cd.Spec.Template.Labels) {
		t.Errorf("stable Service selector %v does not select canary pods %v", svc.Spec.Selector, cd.Spec.Template.Labels)
	}
	// Two Deployments whose selectors overlap would fight over each other's pods.
	if selects(sd.Spec.Selector.MatchLabels, cd.Spec.Template.Labels) || selects(cd.Spec.Selector.MatchLabels, sd.Spec.Template.Labels) {
		t.Errorf("stable selector %v and canary selector %v overlap", sd.Spec.Selector.MatchLabels, cd.Spec.Selector.MatchLabels)
	}
	if sp, cp := one(t, "NetworkPolicy", stable.policies), one(t, "NetworkPolicy", canary.policies); sp.Name == cp.Name {
		t.Errorf("stable and canary NetworkPolicies are both named %q", sp.Name)
	}
	hook := one(t, "Pod", canary.pods)
	if cmd := strings.Join(hook.Spec.Containers[0].Command, " "); !strings.Contains(cmd, "HELLO_SERVICE_HOST") {
		t.Errorf("canary test pod does not call the shared Service hello:\n%s", cmd)
	}
}

func TestRenderEnvArgsAndPodLabels(t *testing.T) {
	m := mustRender(t, "hello", map[string]any{
		"env":       variants["env"]["env"],
		"command":   []any{"busybox", "httpd"},
		"args":      []any{"-f", "-p", "8080"},
		"podLabels": map[string]any{"team": "releng", "track": "evil"},
	})
	d := one(t, "Deployment", m.deployments)
	c := d.Spec.Template.Spec.Containers[0]
	want := []corev1.EnvVar{{Name: "A_FIRST", Value: "1"}, {Name: "GREETING", Value: "hi"}}
	if !slices.Equal(c.Env, want) {
		t.Errorf("env = %+v, want %+v (sorted by name)", c.Env, want)
	}
	if !slices.Equal(c.Command, []string{"busybox", "httpd"}) || !slices.Equal(c.Args, []string{"-f", "-p", "8080"}) {
		t.Errorf("command %q args %q, want the overrides", c.Command, c.Args)
	}
	if l := d.Spec.Template.Labels; l["team"] != "releng" || l["track"] != "stable" {
		t.Errorf("pod labels = %v, want team=releng added and track=stable kept", l)
	}
}

func TestRenderReadOnlyRootFilesystemMountsTmp(t *testing.T) {
	d := one(t, "Deployment", mustRender(t, "hello", variants["readOnly"]).deployments)
	c := d.Spec.Template.Spec.Containers[0]
	if !*c.SecurityContext.ReadOnlyRootFilesystem || len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/tmp" {
		t.Errorf("container %+v, want a read-only root and /tmp mounted", c)
	}
	if v := d.Spec.Template.Spec.Volumes; len(v) != 1 || v[0].EmptyDir == nil {
		t.Errorf("volumes = %+v, want one emptyDir", v)
	}
}

func TestBadValuesAreRejectedNamingTheField(t *testing.T) {
	for _, tc := range []struct {
		name      string
		release   string
		overrides map[string]any
		want      string
	}{
		{"replicaCount string", "hello", map[string]any{"replicaCount": "two"}, "/replicaCount"},
		{"short digest", "hello", map[string]any{"image": map[string]any{"digest": "sha256:abc"}}, "/image/digest"},
		{"root user", "hello", map[string]any{"securityContext": map[string]any{"runAsUser": 0}}, "/securityContext/runAsUser"},
		{"env number", "hello", map[string]any{"env": map[string]any{"PORT": 8080}}, "/env/PORT"},
		{"unknown key", "hello", map[string]any{"replicas": 2}, "replicas"},
		{"probe path", "hello", map[string]any{"probes": map[string]any{"liveness": map[string]any{"path": "healthz"}}}, "/probes/liveness/path"},
		{"hpa range", "hello", map[string]any{"hpa": map[string]any{"enabled": true, "minReplicas": 4, "maxReplicas": 2}}, "hpa.maxReplicas"},
		{"bad release name", "1hello", nil, "appName"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := renderChart(t, tc.release, tc.overrides)
			if err == nil {
				t.Fatalf("values %v rendered, want an error naming %s", tc.overrides, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not name %s:\n%v", tc.want, err)
			}
			t.Logf("%v", err)
		})
	}

	l := lint.All(serviceChart, map[string]any{"replicaCount": "two"}, "default", false)
	if l.HighestSeverity != support.ErrorSev {
		t.Errorf("lint of replicaCount: two: highest severity %d, want an error; messages %v", l.HighestSeverity, l.Messages)
	}
}
