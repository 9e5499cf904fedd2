package helm

import (
	"context"
	"fmt"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// releaseBindingName names the RoleBinding that DeployCandidate makes in each
// namespace it creates when kubernetes.releaseClusterRole is set.
const releaseBindingName = "conveyor-release"

// bindingSettle bounds the wait for a new RoleBinding to reach the API server's
// authorizer (its RBAC cache): milliseconds, as a rule.
const bindingSettle = 30 * time.Second

// ensureReleaseBinding gives this worker's own identity the rights of
// a.releaseRole (a ClusterRole: what a release of the chart needs) in namespace
// ns, which DeployCandidate has just created: no RoleBinding made in advance can
// reach a namespace that did not exist, and a cluster-wide binding would grant those
// rights, Secrets included, in every namespace. The API server lets the binding be
// made only by an identity with the `bind` verb on that ClusterRole (charts/conveyor
// grants it, and its admission policy keeps such bindings to ci-… namespaces). A
// binding left by an earlier attempt is kept. It returns once the authorizer lets the
// identity create Helm's release Secrets in ns.
func ensureReleaseBinding(ctx context.Context, kube kubernetes.Interface, role, ns string) error {
	subject, err := selfSubject(ctx, kube)
	if err != nil {
		return err
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: releaseBindingName, Namespace: ns, Labels: map[string]string{"app.kubernetes.io/managed-by": "conveyor"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{subject},
	}
	_, err = kube.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{})
	switch {
	case err == nil || apierrors.IsAlreadyExists(err):
	case apierrors.IsForbidden(err):
		return fmt.Errorf("binding ClusterRole %s (kubernetes.releaseClusterRole) to %s in namespace %s: %w; "+
			"the worker needs create on rolebindings and bind on that ClusterRole (charts/conveyor's rbac grants both)", role, subjectString(subject), ns, err)
	default:
		return fmt.Errorf("binding ClusterRole %s to %s in namespace %s: %w", role, subjectString(subject), ns, err)
	}
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "create", Resource: "secrets"},
	}}
	var last string
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, bindingSettle, true, func(ctx context.Context) (bool, error) {
		r, err := kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		last = r.Status.Reason
		return r.Status.Allowed, nil
	})
	if err != nil {
		return fmt.Errorf("the RoleBinding %s/%s to ClusterRole %s does not let %s create Secrets (Helm's release storage) after %s: %v (last answer: %q); "+
			"does kubernetes.releaseClusterRole name a ClusterRole with the release rules?", ns, releaseBindingName, role, subjectString(subject), bindingSettle, err, last)
	}
	return nil
}

// selfSubject is the RBAC subject of the identity the worker talks to the cluster
// as, from a SelfSubjectReview: its ServiceAccount in a pod, a user otherwise.
func selfSubject(ctx context.Context, kube kubernetes.Interface) (rbacv1.Subject, error) {
	r, err := kube.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return rbacv1.Subject{}, fmt.Errorf("asking the cluster who this worker is (SelfSubjectReview): %w", err)
	}
	return subjectFor(r.Status.UserInfo.Username)
}

// subjectFor maps a username to an RBAC subject: system:serviceaccount:NS:NAME is
// that ServiceAccount, any other name a user.
func subjectFor(username string) (rbacv1.Subject, error) {
	if username == "" {
		return rbacv1.Subject{}, fmt.Errorf("the cluster reports no username for this worker's credentials")
	}
	if rest, ok := strings.CutPrefix(username, "system:serviceaccount:"); ok {
		ns, name, ok := strings.Cut(rest, ":")
		if !ok || ns == "" || name == "" {
			return rbacv1.Subject{}, fmt.Errorf("username %q is not system:serviceaccount:NAMESPACE:NAME", username)
		}
		return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}, nil
	}
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: username}, nil
}

func subjectString(s rbacv1.Subject) string {
	if s.Kind == rbacv1.ServiceAccountKind {
		return "ServiceAccount " + s.Namespace + "/" + s.Name
	}
	return s.Kind + " " + s.Name
}
