package helm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wikimedia/conveyor/internal/dev/stacktest"
)

func TestSubjectFor(t *testing.T) {
	for _, tc := range []struct {
		username string
		want     rbacv1.Subject
		err      string
	}{
		{"system:serviceaccount:conveyor:conveyor-worker-deploy", rbacv1.Subject{Kind: "ServiceAccount", Namespace: "conveyor", Name: "conveyor-worker-deploy"}, ""},
		{"kubernetes-admin", rbacv1.Subject{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "kubernetes-admin"}, ""},
		{"system:serviceaccount:conveyor", rbacv1.Subject{}, "not system:serviceaccount:NAMESPACE:NAME"},
		{"", rbacv1.Subject{}, "no username"},
	} {
		got, err := subjectFor(tc.username)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("subjectFor(%q) = %v, %v; want an error with %q", tc.username, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("subjectFor(%q) = %+v, %v; want %+v", tc.username, got, err, tc.want)
		}
	}
}

// TestReleaseBindingOnTheCluster runs ensureReleaseBinding on the stack's cluster as
// a ServiceAccount with only what charts/conveyor gives the deploy pool for it
// (create namespaces and rolebindings, bind one ClusterRole): the account cannot
// touch Secrets in a namespace it creates until it binds the release ClusterRole
// there, it can afterwards, a second call (a retried activity) keeps the binding,
// and an account without bind is refused with a message that names the fix.
func TestReleaseBindingOnTheCluster(t *testing.T) {
	cfg := stacktest.Config(t)
	admin := kubeClient(t, cfg.Kubernetes.Kubeconfig, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	suffix := randomSuffix(t)
	home := "test-binding-home-" + suffix
	role := "test-binding-release-" + suffix
	granter := "test-binding-granter-" + suffix
	mustCreate(t, func() error {
		_, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: home}}, metav1.CreateOptions{})
		return err
	})
	t.Cleanup(func() {
		_ = admin.CoreV1().Namespaces().Delete(context.Background(), home, metav1.DeleteOptions{})
		_ = admin.RbacV1().ClusterRoles().Delete(context.Background(), role, metav1.DeleteOptions{})
		_ = admin.RbacV1().ClusterRoles().Delete(context.Background(), granter, metav1.DeleteOptions{})
		_ = admin.RbacV1().ClusterRoleBindings().Delete(context.Background(), granter, metav1.DeleteOptions{})
	})
	for _, sa := range []string{"deploy", "nobind"} {
		mustCreate(t, func() error {
			_, err := admin.CoreV1().ServiceAccounts(home).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
			return err
		})
	}
	mustCreate(t, func() error {
		_, err := admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: role},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "create", "update", "delete"}}},
		}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: granter},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "create", "delete"}},
				{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"rolebindings"}, Verbs: []string{"create"}},
				{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"clusterroles"}, Verbs: []string{"bind"}, ResourceNames: []string{role}},
			},
		}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: granter},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: granter},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: home, Name: "deploy"}},
		}, metav1.CreateOptions{})
		return err
	})

	deploy := kubeClient(t, cfg.Kubernetes.Kubeconfig, "system:serviceaccount:"+home+":deploy")
	// The API server authorizes from an informer's cache of RBAC objects, so the
	// new ClusterRoleBinding takes effect a moment after it is created: wait for
	// it, as an operator applying charts/conveyor's rbac would.
	waitAllowed(ctx, t, deploy, authorizationv1.ResourceAttributes{Verb: "create", Resource: "namespaces"})
	ns := "test-binding-ci-" + suffix
	// The account creates the namespace, as DeployCandidate's ensureNamespace does.
	mustCreate(t, func() error {
		_, err := deploy.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		return err
	})
	t.Cleanup(func() { _ = admin.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	if canCreateSecrets(t, deploy, ns) {
		t.Fatalf("the account can create Secrets in %s before any binding: the test proves nothing", ns)
	}
	for attempt := 1; attempt <= 2; attempt++ {
		if err := ensureReleaseBinding(ctx, deploy, role, ns); err != nil {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
	}
	if !canCreateSecrets(t, deploy, ns) {
		t.Fatalf("the account cannot create Secrets in %s after ensureReleaseBinding", ns)
	}
	rb, err := admin.RbacV1().RoleBindings(ns).Get(ctx, releaseBindingName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := (rbacv1.Subject{Kind: "ServiceAccount", Namespace: home, Name: "deploy"}); len(rb.Subjects) != 1 || rb.Subjects[0] != want || rb.RoleRef.Name != role {
		t.Errorf("binding %+v -> %+v, want %+v -> %s", rb.Subjects, rb.RoleRef, want, role)
	}

	// Without bind on the ClusterRole, the API server refuses the binding
	// (privilege escalation): the error says what the worker lacks.
	nobind := kubeClient(t, cfg.Kubernetes.Kubeconfig, "system:serviceaccount:"+home+":nobind")
	err = ensureReleaseBinding(ctx, nobind, role, ns)
	if err == nil || !strings.Contains(err.Error(), "bind on that ClusterRole") || !strings.Contains(err.Error(), "ServiceAccount "+home+"/nobind") {
		t.Errorf("without bind: %v, want a refusal naming the account and the missing bind", err)
	}
}

func kubeClient(t *testing.T, kubeconfig, impersonate string) kubernetes.Interface {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatalf("kubernetes.kubeconfig %s: %v", kubeconfig, err)
	}
	rc.Impersonate.UserName = impersonate
	c, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func canCreateSecrets(t *testing.T, c kubernetes.Interface, ns string) bool {
	t.Helper()
	return allowed(context.Background(), t, c, authorizationv1.ResourceAttributes{Namespace: ns, Verb: "create", Resource: "secrets"})
}

func allowed(ctx context.Context, t *testing.T, c kubernetes.Interface, attrs authorizationv1.ResourceAttributes) bool {
	t.Helper()
	r, err := c.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attrs},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r.Status.Allowed
}

// waitAllowed waits until the API server lets c do attrs, failing the test when
// ctx ends first.
func waitAllowed(ctx context.Context, t *testing.T, c kubernetes.Interface, attrs authorizationv1.ResourceAttributes) {
	t.Helper()
	for !allowed(ctx, t, c, attrs) {
		select {
		case <-ctx.Done():
			t.Fatalf("the account is still not allowed to %s %s: %v", attrs.Verb, attrs.Resource, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func mustCreate(t *testing.T, create func() error) {
	t.Helper()
	if err := create(); err != nil {
		t.Fatal(err)
	}
}

func randomSuffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
