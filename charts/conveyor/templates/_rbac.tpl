{{/*
conveyor.namespaceRules: the cluster-scoped calls. DeployCandidate creates the run's
ci-… namespace (AlreadyExists on a retry still needs the create allowed); Teardown
deletes it and reads it until it is gone; the promotion's ensureNamespace creates each
namespace it deploys to. RBAC cannot limit the names: rbac.namespacePolicy does.
*/}}
{{- define "conveyor.namespaceRules" -}}
# DeployCandidate and the promotion create namespaces; Teardown deletes a ci-… one
# and reads it until it is gone.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, create, delete]
{{- if include "conveyor.selfBind" . }}
# DeployCandidate binds the release ClusterRole to the pool's own ServiceAccount in
# each ci-… namespace it creates (kubernetes.releaseClusterRole); the API server
# allows that binding only with bind on that one ClusterRole. The namespace policy
# keeps these bindings to ci-… namespaces, that role and this account.
- apiGroups: [rbac.authorization.k8s.io]
  resources: [rolebindings]
  verbs: [create]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [clusterroles]
  verbs: [bind]
  resourceNames: [{{ include "conveyor.releaseRole" . }}]
{{- end }}
{{- end -}}

{{/*
conveyor.releaseRules: what installing, upgrading, testing, checking and uninstalling a
release of charts/service takes in its namespace, plus rbac.extraRules.
*/}}
{{- define "conveyor.releaseRules" -}}
# Helm's release storage (driver "secret"): history read (get; list by label),
# a revision created per install or upgrade, updated when superseded or closed as
# interrupted, deleted past maxHistory and on uninstall.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, create, update, delete]
# charts/service's objects: Helm's conflict check and readiness checks (get), install
# (create), three-way-merge upgrade (patch), removal from the chart and uninstall
# (delete); the e2e checks read the Service's ClusterIP.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, create, patch, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [get, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, create, patch, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, create, patch, delete]
# Helm's ready checker finds a Deployment's newest ReplicaSet.
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [list]
# The helm test hook pod: deleted by its before-hook-creation policy and read until
# gone, created, watched until done; pods listed to say why a release is not ready;
# Teardown deletes the pods of a terminating namespace with a short grace.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, delete]
# The log tail of a failed test or a crashed container, in error messages.
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
# A not-ready pod's warning events, in error messages.
- apiGroups: [""]
  resources: [events]
  verbs: [list]
{{- with .Values.rbac.extraRules }}
# rbac.extraRules.
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
conveyor.promotionRules: what the staged promotion adds in the namespaces it manages.
*/}}
{{- define "conveyor.promotionRules" -}}
# The promotion sets the stable and canary replicas through the scale subresource.
- apiGroups: [apps]
  resources: [deployments/scale]
  verbs: [get, update]
# CanaryRemove deletes the canary's orphaned ReplicaSets by label.
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [deletecollection]
{{- end -}}
