package charts

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	"helm.sh/helm/v3/pkg/chartutil"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/wikimedia/conveyor/internal/lib/config"
	"github.com/wikimedia/conveyor/workflows"
)

const (
	conveyorChart = "conveyor"
	// release is the release name every conveyor test installs.
	release = "conveyor"
	// workerUID is the images' non-root user.
	workerUID = 65532
)

// conveyorManifests are the objects one rendering of charts/conveyor produced,
// decoded strictly into the API's types.
type conveyorManifests struct {
	deployments     []appsv1.Deployment
	services        []corev1.Service
	configMaps      []corev1.ConfigMap
	serviceAccounts []corev1.ServiceAccount
	pdbs            []policyv1.PodDisruptionBudget
	policies        []networkingv1.NetworkPolicy
	roles           []rbacv1.Role
	roleBindings    []rbacv1.RoleBinding
	clusterRoles    []rbacv1.ClusterRole
	clusterBindings []rbacv1.ClusterRoleBinding
	admission       []admissionv1.ValidatingAdmissionPolicy
	admissionBinds  []admissionv1.ValidatingAdmissionPolicyBinding
	notes           string
}

// decodeInto appends a strictly decoded T to list.
func decodeInto[T any](list *[]T, doc []byte) error {
	var obj T
	if err := sigsyaml.UnmarshalStrict(doc, &obj); err != nil {
		return err
	}
	*list = append(*list, obj)
	return nil
}

// add decodes one manifest into its typed object; an unknown kind or field is an error.
func (m *conveyorManifests) add(doc []byte) error {
	var head struct{ APIVersion, Kind string }
	if err := sigsyaml.Unmarshal(doc, &head); err != nil {
		return fmt.Errorf("reading kind: %w", err)
	}
	switch head.APIVersion + " " + head.Kind {
	case "apps/v1 Deployment":
		return decodeInto(&m.deployments, doc)
	case "v1 Service":
		return decodeInto(&m.services, doc)
	case "v1 ConfigMap":
		return decodeInto(&m.configMaps, doc)
	case "v1 ServiceAccount":
		return decodeInto(&m.serviceAccounts, doc)
	case "policy/v1 PodDisruptionBudget":
		return decodeInto(&m.pdbs, doc)
	case "networking.k8s.io/v1 NetworkPolicy":
		return decodeInto(&m.policies, doc)
	case "rbac.authorization.k8s.io/v1 Role":
		return decodeInto(&m.roles, doc)
	case "rbac.authorization.k8s.io/v1 RoleBinding":
		return decodeInto(&m.roleBindings, doc)
	case "rbac.authorization.k8s.io/v1 ClusterRole":
		return decodeInto(&m.clusterRoles, doc)
	case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
		return decodeInto(&m.clusterBindings, doc)
	case "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy":
		return decodeInto(&m.admission, doc)
	case "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicyBinding":
		return decodeInto(&m.admissionBinds, doc)
	}
	return fmt.Errorf("unexpected object %s %s", head.APIVersion, head.Kind)
}

// renderConveyor renders charts/conveyor; it returns the error of schema validation or
// rendering.
func renderConveyor(t *testing.T, overrides map[string]any) (*conveyorManifests, error) {
	t.Helper()
	m := &conveyorManifests{}
	var err error
	m.notes, err = renderDocs(t, conveyorChart, release, overrides, m.add)
	return m, err
}

// ciValues reads every value set under charts/conveyor/ci, by file name.
func ciValues(t *testing.T) map[string]map[string]any {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(conveyorChart, "ci", "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no value sets under %s/ci (%v)", conveyorChart, err)
	}
	sets := map[string]map[string]any{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		vals := map[string]any{}
		if err := sigsyaml.Unmarshal(b, &vals); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		sets[filepath.Base(p)] = vals
	}
	return sets
}

// effectiveValues are the chart's values with overrides over them, as the templates see them.
func effectiveValues(t *testing.T, overrides map[string]any) chartutil.Values {
	t.Helper()
	vals, err := chartutil.CoalesceValues(loadChart(t, conveyorChart), overrides)
	if err != nil {
		t.Fatal(err)
	}
	return vals
}

func TestConveyorCIValuesLint(t *testing.T) {
	for name, vals := range ciValues(t) {
		t.Run(name, func(t *testing.T) { lintClean(t, conveyorChart, vals) })
	}
}

func TestConveyorValuesKnowEveryPool(t *testing.T) {
	pools, err := effectiveValues(t, nil).Table("pools")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for p := range pools {
		got = append(got, p)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(workflows.Pools))
	if !slices.Equal(got, want) {
		t.Errorf("values.yaml pools = %v, want workflows.Pools %v", got, want)
	}
}

func TestConveyorCIValuesRender(t *testing.T) {
	for name, overrides := range ciValues(t) {
		t.Run(name, func(t *testing.T) {
			m, err := renderConveyor(t, overrides)
			if err != nil {
				t.Fatalf("rendering: %v", err)
			}
			vals := effectiveValues(t, overrides)
			checkWorkers(t, m, vals)
			checkReceiver(t, m, vals)
			checkPods(t, m)
			checkConfigs(t, m)
			checkRBAC(t, m, vals)
			checkPolicies(t, m)
		})
	}
}

// enabled says whether a pool or the receiver is enabled in vals.
func enabled(t *testing.T, vals chartutil.Values, path string) bool {
	t.Helper()
	v, err := vals.PathValue(path + ".enabled")
	if err != nil {
		t.Fatalf("%s.enabled: %v", path, err)
	}
	return v == true
}

// deployment returns the Deployment named name, nil if there is none.
func (m *conveyorManifests) deployment(name string) *appsv1.Deployment {
	for i := range m.deployments {
		if m.deployments[i].Name == name {
			return &m.deployments[i]
		}
	}
	return nil
}

// checkWorkers checks one Deployment, PodDisruptionBudget and ServiceAccount per
// enabled pool, serving that pool only, and none for the others.
func checkWorkers(t *testing.T, m *conveyorManifests, vals chartutil.Values) {
	t.Helper()
	want := 0
	// On the host network, the receiver's :8080 and each pool's health port share
	// the node's ports.
	hostPorts := map[int]string{8080: release + "-receiver"}
	for _, pool := range workflows.Pools {
		name := release + "-worker-" + pool
		d := m.deployment(name)
		if !enabled(t, vals, "pools."+pool) {
			if d != nil {
				t.Errorf("pool %s is disabled but Deployment %s exists", pool, name)
			}
			if !strings.Contains(m.notes, pool+": disabled") {
				t.Errorf("NOTES.txt does not say pool %s is disabled:\n%s", pool, m.notes)
			}
			continue
		}
		want++
		if d == nil {
			t.Errorf("pool %s is enabled but there is no Deployment %s", pool, name)
			continue
		}
		if q := workflows.TaskQueue(pool); !strings.Contains(m.notes, "task queue "+q) {
			t.Errorf("NOTES.txt does not name pool %s's task queue %s:\n%s", pool, q, m.notes)
		}
		c := d.Spec.Template.Spec.Containers[0]
		args := flagValues(c.Args)
		port := healthPort(t, vals, pool)
		if args["--pools"] != pool || args["--health-listen"] != fmt.Sprintf(":%d", port) || args["--config"] != "/etc/conveyor/conveyor.yaml" {
			t.Errorf("Deployment %s args %q, want --pools=%s --health-listen=:%d --config=/etc/conveyor/conveyor.yaml", name, c.Args, pool, port)
		}
		if hostNet, _ := vals.PathValue("hostNetwork"); d.Spec.Template.Spec.HostNetwork != (hostNet == true) {
			t.Errorf("Deployment %s hostNetwork %v, want the value hostNetwork (%v)", name, d.Spec.Template.Spec.HostNetwork, hostNet)
		} else if hostNet == true {
			if d.Spec.Template.Spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
				t.Errorf("Deployment %s on the host network has dnsPolicy %q, want ClusterFirstWithHostNet", name, d.Spec.Template.Spec.DNSPolicy)
			}
			if other, taken := hostPorts[port]; taken {
				t.Errorf("Deployments %s and %s both listen on host port %d", other, name, port)
			}
			hostPorts[port] = name
		}
		if !slices.Equal(c.Command, []string{"/usr/bin/conveyor-worker"}) {
			t.Errorf("Deployment %s command %q, want /usr/bin/conveyor-worker", name, c.Command)
		}
		timeout, err := strconv.Atoi(strings.TrimSuffix(args["--shutdown-timeout"], "s"))
		grace := d.Spec.Template.Spec.TerminationGracePeriodSeconds
		if err != nil || grace == nil || *grace <= int64(timeout) {
			t.Errorf("Deployment %s: terminationGracePeriodSeconds %v, want more than --shutdown-timeout %q", name, grace, args["--shutdown-timeout"])
		}
		checkProbes(t, name, c, "health", int32(port))
		if got := d.Spec.Template.Labels["conveyor.wikimedia.org/pool"]; got != pool {
			t.Errorf("Deployment %s pod label conveyor.wikimedia.org/pool = %q, want %s", name, got, pool)
		}
		wantReplicas, _ := vals.PathValue("pools." + pool + ".replicas")
		if d.Spec.Replicas == nil || fmt.Sprint(*d.Spec.Replicas) != fmt.Sprint(wantReplicas) {
			t.Errorf("Deployment %s replicas %v, want pools.%s.replicas %v", name, d.Spec.Replicas, pool, wantReplicas)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("Deployment %s resources %+v, want a cpu request and a memory limit", name, c.Resources)
		}
		checkPDB(t, m, d)
	}
	if got := len(m.deployments) - boolInt(enabled(t, vals, "receiver")); got != want {
		t.Errorf("%d worker Deployments, want %d, one per enabled pool", got, want)
	}
}

// boolText prints an optional bool.
// healthPort is the pool's health port: its own healthPort, else workerDefaults'.
func healthPort(t *testing.T, vals chartutil.Values, pool string) int {
	t.Helper()
	for _, path := range []string{"pools." + pool + ".healthPort", "workerDefaults.healthPort"} {
		v, err := vals.PathValue(path)
		if err != nil {
			continue
		}
		if n, ok := v.(float64); ok && n != 0 {
			return int(n)
		}
		if n, ok := v.(int64); ok && n != 0 {
			return int(n)
		}
		if n, ok := v.(int); ok && n != 0 {
			return n
		}
	}
	t.Fatalf("pool %s: no healthPort in pools.%s or workerDefaults", pool, pool)
	return 0
}

func boolText(b *bool) string {
	if b == nil {
		return "unset"
	}
	return strconv.FormatBool(*b)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// flagValues maps each --flag=value argument to its value.
func flagValues(args []string) map[string]string {
	out := map[string]string{}
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok {
			out[k] = v
		}
	}
	return out
}

// checkProbes checks liveness on /healthz and readiness on /readyz of the named port,
// which must be containerPort.
func checkProbes(t *testing.T, name string, c corev1.Container, port string, containerPort int32) {
	t.Helper()
	if len(c.Ports) != 1 || c.Ports[0].Name != port || c.Ports[0].ContainerPort != containerPort {
		t.Errorf("%s ports %+v, want one port %s %d", name, c.Ports, port, containerPort)
	}
	for _, p := range []struct {
		kind  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != port {
			t.Errorf("%s %sProbe = %+v, want GET %s on port %s", name, p.kind, p.probe, p.path, port)
		}
	}
}

// checkPDB checks that exactly one PodDisruptionBudget selects d's pods.
func checkPDB(t *testing.T, m *conveyorManifests, d *appsv1.Deployment) {
	t.Helper()
	n := 0
	for _, p := range m.pdbs {
		if selects(p.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
			n++
			if p.Spec.MaxUnavailable == nil && p.Spec.MinAvailable == nil {
				t.Errorf("PodDisruptionBudget %s allows nothing: set maxUnavailable", p.Name)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d PodDisruptionBudgets select the pods of %s, want 1", n, d.Name)
	}
	if !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		t.Errorf("Deployment %s selector %v does not select its pods %v", d.Name, d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	}
}

// checkReceiver checks the Gerrit receiver's Deployment, Service and probes.
func checkReceiver(t *testing.T, m *conveyorManifests, vals chartutil.Values) {
	t.Helper()
	d := m.deployment(release + "-receiver")
	if !enabled(t, vals, "receiver") {
		if d != nil || len(m.services) != 0 {
			t.Errorf("receiver disabled, but its Deployment or a Service is rendered")
		}
		return
	}
	if d == nil {
		t.Fatal("receiver enabled but no Deployment conveyor-receiver")
	}
	c := d.Spec.Template.Spec.Containers[0]
	if !slices.Equal(c.Command, []string{"/usr/bin/conveyor"}) || !slices.Contains(c.Args, "serve") ||
		flagValues(c.Args)["--listen"] != ":8080" || flagValues(c.Args)["--triggers"] != "/etc/conveyor/triggers.yaml" {
		t.Errorf("receiver runs %q %q, want /usr/bin/conveyor … gerrit serve --triggers=/etc/conveyor/triggers.yaml --listen=:8080", c.Command, c.Args)
	}
	checkProbes(t, d.Name, c, "http", 8080)
	// A deleted pod serves on while the Service drops it, and the kubelet's grace
	// covers that sleep plus the drain.
	sleep, _ := vals.PathValue("receiver.preStopSleepSeconds")
	var got int64
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		got = c.Lifecycle.PreStop.Sleep.Seconds
	}
	if want, _ := sleep.(float64); got != int64(want) {
		t.Errorf("receiver preStop sleep %ds, want receiver.preStopSleepSeconds %v", got, sleep)
	}
	if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil && *g <= got+10 {
		t.Errorf("receiver terminationGracePeriodSeconds %d, want more than the preStop sleep %ds and --shutdown-timeout 10s", *g, got)
	}
	checkPDB(t, m, d)
	s := one(t, "Service", m.services)
	if !selects(s.Spec.Selector, d.Spec.Template.Labels) || len(s.Spec.Ports) != 1 || s.Spec.Ports[0].TargetPort.String() != "http" {
		t.Errorf("Service %s selector %v ports %+v, want the receiver's pods on port http", s.Name, s.Spec.Selector, s.Spec.Ports)
	}
}

// checkPods checks every pod's security context, token, volumes and that no
// environment variable or argument carries a secret.
func checkPods(t *testing.T, m *conveyorManifests) {
	t.Helper()
	for _, d := range m.deployments {
		spec := d.Spec.Template.Spec
		sc := spec.SecurityContext
		if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != workerUID ||
			sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s pod securityContext %+v, want runAsNonRoot, uid %d, seccomp RuntimeDefault", d.Name, sc, workerUID)
		}
		wantToken := d.Name == release+"-worker-deploy"
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken != wantToken {
			t.Errorf("%s automountServiceAccountToken %s, want %v (only the deploy pool talks to the API)", d.Name, boolText(spec.AutomountServiceAccountToken), wantToken)
		}
		volumes := map[string]corev1.Volume{}
		for _, v := range spec.Volumes {
			volumes[v.Name] = v
		}
		for _, c := range spec.Containers {
			csc := c.SecurityContext
			if csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem || csc.AllowPrivilegeEscalation == nil ||
				*csc.AllowPrivilegeEscalation || csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("%s container %s securityContext %+v, want a read-only root, no privilege escalation, drop ALL", d.Name, c.Name, csc)
			}
			if len(c.EnvFrom) != 0 {
				t.Errorf("%s container %s has envFrom %+v: secrets are mounted files", d.Name, c.Name, c.EnvFrom)
			}
			for _, e := range c.Env {
				if e.ValueFrom != nil || e.Name != "HOME" {
					t.Errorf("%s container %s env %s: only HOME is set; secrets are mounted files", d.Name, c.Name, e.Name)
				}
			}
			for _, a := range c.Args {
				if k, _, _ := strings.Cut(a, "="); strings.Contains(strings.ToLower(k), "password") || strings.Contains(strings.ToLower(k), "secret") || k == "--api-key" {
					t.Errorf("%s container %s argument %q carries a secret", d.Name, c.Name, a)
				}
			}
			for _, vm := range c.VolumeMounts {
				v := volumes[vm.Name]
				switch {
				case v.Secret != nil || v.ConfigMap != nil:
					if !vm.ReadOnly {
						t.Errorf("%s mounts %s read-write at %s", d.Name, vm.Name, vm.MountPath)
					}
				case v.EmptyDir == nil:
					t.Errorf("%s mounts %s at %s, which is neither a Secret, the ConfigMap nor an emptyDir", d.Name, vm.Name, vm.MountPath)
				}
			}
		}
	}
	for _, sa := range m.serviceAccounts {
		want := sa.Name == release+"-worker-deploy"
		if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken != want {
			t.Errorf("ServiceAccount %s automountServiceAccountToken %s, want %v", sa.Name, boolText(sa.AutomountServiceAccountToken), want)
		}
	}
}

// checkConfigs checks that each component's conveyor.yaml is one the program reads,
// holds no secret value, and that every file it names is mounted in that component.
func checkConfigs(t *testing.T, m *conveyorManifests) {
	t.Helper()
	cm := one(t, "ConfigMap", m.configMaps)
	for _, d := range m.deployments {
		component := strings.TrimPrefix(strings.TrimPrefix(d.Name, release+"-"), "worker-")
		text, ok := cm.Data[component+".yaml"]
		if !ok {
			t.Errorf("ConfigMap %s has no %s.yaml for %s", cm.Name, component, d.Name)
			continue
		}
		var raw map[string]any
		if err := yaml.Unmarshal([]byte(text), &raw); err != nil {
			t.Fatalf("%s.yaml: %v", component, err)
		}
		b, _ := yaml.Marshal(raw)
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		var cfg config.Config
		if err := dec.Decode(&cfg); err != nil {
			t.Errorf("%s.yaml does not decode as conveyor's configuration: %v\n%s", component, err, text)
		}
		if cfg.Registry.Password != "" || cfg.Gerrit.Password != "" || cfg.OpenStack.Password != "" {
			t.Errorf("%s.yaml holds a password in the clear:\n%s", component, text)
		}
		mounted := map[string]bool{}
		for _, vm := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
			mounted[vm.MountPath] = true
		}
		files := []string{cfg.Temporal.TLSCert, cfg.Temporal.TLSKey, cfg.Temporal.TLSCA, cfg.Temporal.APIKeyFile, cfg.Temporal.PayloadKeyFile,
			cfg.Gerrit.PasswordFile, cfg.OpenStack.PasswordFile, cfg.Kubernetes.Kubeconfig, cfg.Registry.PasswordFile}
		for _, c := range cfg.Promotion.Clusters {
			files = append(files, c.Kubeconfig)
		}
		if component == "receiver" {
			files = append(files, triggersFiles(t, cm.Data["triggers.yaml"])...)
		}
		for _, f := range files {
			if f != "" && !mounted[filepath.Dir(f)] {
				t.Errorf("%s.yaml names %s, but %s mounts nothing at %s", component, f, d.Name, filepath.Dir(f))
			}
		}
	}
}

// triggersFiles are the secret files the receiver's triggers file names: the
// webhook's and each project's.
func triggersFiles(t *testing.T, text string) []string {
	t.Helper()
	var f struct {
		Webhook struct {
			SecretFile string `yaml:"secretFile"`
		}
		Projects []struct {
			WebhookSecretFile string `yaml:"webhookSecretFile"`
		}
	}
	if err := yaml.Unmarshal([]byte(text), &f); err != nil {
		t.Fatalf("triggers.yaml: %v", err)
	}
	files := []string{f.Webhook.SecretFile}
	for _, p := range f.Projects {
		files = append(files, p.WebhookSecretFile)
	}
	return files
}

// TestConveyorSecretsReachTheirFiles: secrets.payloadKeys becomes every component's
// temporal.payloadKeyFile, and a project's webhookSecretKey its webhookSecretFile in
// the mounted secrets.projectWebhookSecrets; a key without that Secret, or a
// webhookSecretFile written by hand (a path nothing mounts), is refused.
func TestConveyorSecretsReachTheirFiles(t *testing.T) {
	project := func(extra map[string]any) map[string]any {
		p := map[string]any{"name": "mediawiki/services/hello"}
		for k, v := range extra {
			p[k] = v
		}
		return map[string]any{"receiver": map[string]any{"triggers": map[string]any{"projects": []any{p}}}}
	}
	vals := project(map[string]any{"webhookSecretKey": "hello"})
	vals["secrets"] = map[string]any{"payloadKeys": map[string]any{"secretName": "keys"}, "projectWebhookSecrets": map[string]any{"secretName": "hooks"}}
	m, err := renderConveyor(t, vals)
	if err != nil {
		t.Fatal(err)
	}
	cm := one(t, "ConfigMap", m.configMaps)
	for _, d := range m.deployments {
		component := strings.TrimPrefix(strings.TrimPrefix(d.Name, release+"-"), "worker-")
		var cfg config.Config
		if err := yaml.Unmarshal([]byte(cm.Data[component+".yaml"]), &cfg); err != nil {
			t.Fatal(err)
		}
		if want := "/var/run/secrets/conveyor/payload-keys/payload-keys"; cfg.Temporal.PayloadKeyFile != want {
			t.Errorf("%s: temporal.payloadKeyFile %q, want %s", component, cfg.Temporal.PayloadKeyFile, want)
		}
	}
	if got, want := triggersFiles(t, cm.Data["triggers.yaml"]), "/var/run/secrets/conveyor/project-webhook-secrets/hello"; len(got) != 2 || got[1] != want {
		t.Errorf("the project's webhookSecretFile %q, want %s", got, want)
	}
	if strings.Contains(cm.Data["triggers.yaml"], "webhookSecretKey") {
		t.Errorf("triggers.yaml keeps webhookSecretKey, which the receiver does not read:\n%s", cm.Data["triggers.yaml"])
	}
	checkConfigs(t, m)

	for _, tc := range []struct {
		vals map[string]any
		want string
	}{
		{project(map[string]any{"webhookSecretKey": "hello"}), "receiver.triggers.projects[0].webhookSecretKey: secrets.projectWebhookSecrets.secretName is empty"},
		{project(map[string]any{"webhookSecretFile": "/etc/hello"}), "webhookSecretFile"},
	} {
		if _, err := renderConveyor(t, tc.vals); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error with %q", tc.vals, err, tc.want)
		}
	}
}

// TestConveyorBuildEgress: config.buildkit.egress.allow reaches the build pool's
// configuration when set, and is left out (conveyor's default) when null.
func TestConveyorBuildEgress(t *testing.T) {
	buildConfig := func(overrides map[string]any) map[string]any {
		t.Helper()
		m, err := renderConveyor(t, overrides)
		if err != nil {
			t.Fatal(err)
		}
		var raw map[string]any
		if err := yaml.Unmarshal([]byte(one(t, "ConfigMap", m.configMaps).Data["build.yaml"]), &raw); err != nil {
			t.Fatal(err)
		}
		bk, _ := raw["buildkit"].(map[string]any)
		return bk
	}
	if bk := buildConfig(nil); bk["egress"] != nil {
		t.Errorf("egress.allow null: build.yaml has buildkit.egress %v, want none (conveyor's default)", bk["egress"])
	}
	bk := buildConfig(map[string]any{"config": map[string]any{"buildkit": map[string]any{"egress": map[string]any{"allow": []any{"mirror.example.org"}}}}})
	if got := fmt.Sprint(bk["egress"]); got != "map[allow:[mirror.example.org]]" {
		t.Errorf("build.yaml buildkit.egress = %s, want map[allow:[mirror.example.org]]", got)
	}
	_, err := renderConveyor(t, map[string]any{"config": map[string]any{"buildkit": map[string]any{"egress": map[string]any{"allow": []any{"https://x.org"}}}}})
	if err == nil || !strings.Contains(err.Error(), "allow") {
		t.Errorf("a URL in egress.allow: %v, want the schema to refuse it", err)
	}
}

// TestConveyorDeployPoolKnowsTheRegistry: the deploy pool checks promoted images
// against the registry the pipeline publishes to, so it has the address, and no
// credentials.
func TestConveyorDeployPoolKnowsTheRegistry(t *testing.T) {
	m, err := renderConveyor(t, map[string]any{"config": map[string]any{"registry": map[string]any{"address": "registry.example.org", "username": "ci"}}})
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal([]byte(one(t, "ConfigMap", m.configMaps).Data["deploy.yaml"]), &raw); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(raw["registry"]); got != "map[address:registry.example.org]" {
		t.Errorf("deploy.yaml registry = %s, want map[address:registry.example.org] (no username or password file)", got)
	}
}

// TestConveyorTracing: config.tracing reaches every component's configuration
// when its endpoint is set, and none when it is empty, and so does the
// NetworkPolicies' way to the collector; the schema refuses an endpoint that
// is not an http(s) URL.
func TestConveyorTracing(t *testing.T) {
	// configs returns each component's configuration, and whether its
	// NetworkPolicy lets it reach port 4318.
	configs := func(overrides map[string]any) map[string]config.Config {
		t.Helper()
		m, err := renderConveyor(t, overrides)
		if err != nil {
			t.Fatal(err)
		}
		tracing := overrides != nil
		for _, np := range m.policies {
			reaches := false
			for _, e := range np.Spec.Egress {
				for _, p := range e.Ports {
					reaches = reaches || (p.Port != nil && p.Port.IntValue() == 4318)
				}
			}
			if reaches != tracing {
				t.Errorf("NetworkPolicy %s lets the pods reach port 4318: %v, want %v (tracing set: %v)", np.Name, reaches, tracing, tracing)
			}
		}
		cm := one(t, "ConfigMap", m.configMaps)
		out := map[string]config.Config{}
		for _, d := range m.deployments {
			component := strings.TrimPrefix(strings.TrimPrefix(d.Name, release+"-"), "worker-")
			var cfg config.Config
			if err := yaml.Unmarshal([]byte(cm.Data[component+".yaml"]), &cfg); err != nil {
				t.Fatal(err)
			}
			out[component] = cfg
		}
		return out
	}
	for component, cfg := range configs(nil) {
		if cfg.Tracing.Endpoint != "" || cfg.Tracing.SampleRatio != nil {
			t.Errorf("%s: tracing %+v with config.tracing empty, want none", component, cfg.Tracing)
		}
	}
	tracing := func(v map[string]any) map[string]any {
		return map[string]any{"receiver": map[string]any{"enabled": true}, "config": map[string]any{"tracing": v}}
	}
	got := configs(tracing(map[string]any{"endpoint": "http://otel.observability.svc:4318", "sampleRatio": 0.5}))
	if len(got) < 2 {
		t.Fatalf("%d components rendered, want the workers and the receiver", len(got))
	}
	for component, cfg := range got {
		if cfg.Tracing.Endpoint != "http://otel.observability.svc:4318" || cfg.Tracing.SampleRatio == nil || *cfg.Tracing.SampleRatio != 0.5 {
			t.Errorf("%s: tracing %+v, want the endpoint and ratio 0.5", component, cfg.Tracing)
		}
	}
	if _, err := renderConveyor(t, tracing(map[string]any{"endpoint": "otel:4317"})); err == nil || !strings.Contains(err.Error(), "endpoint") {
		t.Errorf("tracing.endpoint otel:4317: %v, want the schema to refuse it", err)
	}
}

// TestConveyorWorkerVersioning: workerDefaults.versioning.deployment gives every
// worker --deployment and --build-id (the appVersion unless buildId is set);
// without it the workers run unversioned.
func TestConveyorWorkerVersioning(t *testing.T) {
	args := func(overrides map[string]any) map[string][]string {
		t.Helper()
		m, err := renderConveyor(t, overrides)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]string{}
		for _, d := range m.deployments {
			if strings.Contains(d.Name, "worker-") {
				out[d.Name] = d.Spec.Template.Spec.Containers[0].Args
			}
		}
		if len(out) == 0 {
			t.Fatal("no worker Deployment rendered")
		}
		return out
	}
	versioning := func(v map[string]any) map[string]any {
		return map[string]any{"workerDefaults": map[string]any{"versioning": v}}
	}
	for name, a := range args(nil) {
		if slices.ContainsFunc(a, func(s string) bool { return strings.HasPrefix(s, "--deployment") || strings.HasPrefix(s, "--build-id") }) {
			t.Errorf("%s runs versioned without workerDefaults.versioning: %q", name, a)
		}
	}
	appVersion := loadChart(t, conveyorChart).Metadata.AppVersion
	for _, tc := range []struct {
		build, want string
	}{{"", appVersion}, {"2026.12.03-1", "2026.12.03-1"}} {
		for name, a := range args(versioning(map[string]any{"deployment": "conveyor", "buildId": tc.build})) {
			if !slices.Contains(a, "--deployment=conveyor") || !slices.Contains(a, "--build-id="+tc.want) {
				t.Errorf("%s args %q, want --deployment=conveyor --build-id=%s", name, a, tc.want)
			}
		}
	}
	if _, err := renderConveyor(t, versioning(map[string]any{"deployment": "conveyor.prod"})); err == nil {
		t.Error("a deployment name with a '.' rendered: want the schema to refuse it")
	}
}
