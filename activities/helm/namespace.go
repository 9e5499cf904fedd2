package helm

import (
	"fmt"
	"maps"

	"go.temporal.io/sdk/temporal"
	corev1 "k8s.io/api/core/v1"
	psapi "k8s.io/pod-security-admission/api"

	"github.com/wikimedia/conveyor/activities/contract"
)

// sandboxLabel marks the namespaces DeployCandidate creates, and only those:
// Teardown deletes no namespace without it. (app.kubernetes.io/managed-by=conveyor
// is not enough: the promotion's production namespaces carry it too.)
const sandboxLabel = "conveyor.wikimedia.org/sandbox"

// sandboxLabels is labels with conveyor's own on top: the sandbox label, and the
// PodSecurity admission labels that make the API server refuse any pod of the
// namespace that breaks the restricted profile (privileged, host namespaces,
// hostPath, root, privilege escalation…), at the newest version it knows.
func sandboxLabels(labels map[string]string) map[string]string {
	out := maps.Clone(labels)
	if out == nil {
		out = map[string]string{}
	}
	out[sandboxLabel] = "true"
	out["app.kubernetes.io/managed-by"] = "conveyor"
	for _, mode := range []string{psapi.EnforceLevelLabel, psapi.WarnLevelLabel} {
		out[mode] = string(psapi.LevelRestricted)
	}
	out[psapi.EnforceVersionLabel] = "latest"
	out[psapi.WarnVersionLabel] = "latest"
	return out
}

// checkSandbox refuses, non-retryably, to act (what: "tear down") on a namespace
// without conveyor's sandbox label.
func checkSandbox(ns *corev1.Namespace, what string) error {
	if ns.Labels[sandboxLabel] == "true" {
		return nil
	}
	return temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("refusing to %s namespace %s: it has no label %s=true, so DeployCandidate did not create it and conveyor does not own it; "+
			"nothing in it was changed. If it is a sandbox left by a conveyor older than this label, label it by hand "+
			"(kubectl label namespace %s %s=true) or delete it yourself", what, ns.Name, sandboxLabel, ns.Name, sandboxLabel),
		contract.ErrInvalidConfig, nil)
}
