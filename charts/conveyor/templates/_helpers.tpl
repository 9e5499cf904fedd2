{{/*
conveyor.fullname is the release name; every object is named after it. It must leave
room for the longest suffix (-worker-migrate-namespaces) in a 63-character name.
*/}}
{{- define "conveyor.fullname" -}}
{{- if not (regexMatch "^[a-z]([-a-z0-9]{0,34}[a-z0-9])?$" .Release.Name) -}}
{{- fail (printf "release name %q: conveyor's objects are named after it; use at most 36 lowercase letters, digits and '-', starting with a letter" .Release.Name) -}}
{{- end -}}
{{- .Release.Name -}}
{{- end -}}

{{/*
conveyor.labels are the labels every object carries; conveyor.selector the ones that
select a component's pods. Both take (dict "root" $ "component" NAME).
*/}}
{{- define "conveyor.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{ include "conveyor.selector" . }}
{{- end -}}

{{- define "conveyor.selector" -}}
app.kubernetes.io/name: conveyor
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
conveyor.imageRef renders an image value: the digest wins over the tag, and an empty
tag is the chart's appVersion. It takes (dict "image" IMAGE "root" $).
*/}}
{{- define "conveyor.imageRef" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
conveyor.secretTable describes each secret of secrets.*: the directory it is mounted
in (also its volume's name), the file its key is mounted as (temporalTLS mounts three
fixed keys; one without a file is mounted whole, a file per key), and the only
components that mount it, the ones whose code reads it.
*/}}
{{- define "conveyor.secretTable" -}}
temporalTLS: {dir: temporal-tls, users: [build, deploy, migrate, receiver]}
temporalAPIKey: {dir: temporal-api-key, file: api-key, users: [build, deploy, migrate, receiver]}
registryPassword: {dir: registry-password, file: password, users: [build]}
gerritPassword: {dir: gerrit-password, file: password, users: [build]}
openstackPassword: {dir: openstack-password, file: password, users: [migrate]}
webhookSecret: {dir: webhook-secret, file: secret, users: [receiver]}
payloadKeys: {dir: payload-keys, file: payload-keys, users: [build, deploy, migrate, receiver]}
projectWebhookSecrets: {dir: project-webhook-secrets, users: [receiver]}
kubeconfig: {dir: kubeconfig, file: kubeconfig, users: [deploy]}
{{- end -}}

{{/*
conveyor.secretFile is the path of a mounted secret's file, (dict "dir" DIR "file"
FILE): under /var/run/secrets/conveyor, outside /etc/conveyor, a ConfigMap volume that
nothing can be mounted into.
*/}}
{{- define "conveyor.secretFile" -}}
{{- printf "/var/run/secrets/conveyor/%s/%s" .dir .file -}}
{{- end -}}

{{/*
conveyor.secretPath is the path of secrets.NAME's file, given NAME and FILE as a list.
*/}}
{{- define "conveyor.secretPath" -}}
{{- $t := index (include "conveyor.secretTable" . | fromYaml) (index . 0) -}}
{{- include "conveyor.secretFile" (dict "dir" $t.dir "file" (index . 1)) -}}
{{- end -}}

{{/*
conveyor.config is one component's conveyor.yaml (internal/lib/config): the sections
that component uses, and the paths of the secrets mounted into it. It takes
(dict "root" $ "component" NAME).
*/}}
{{- define "conveyor.config" -}}
{{- $v := .root.Values -}}
{{- $s := $v.secrets -}}
{{- $c := .component -}}
{{- $temporal := dict "address" $v.config.temporal.address "namespace" $v.config.temporal.namespace "uiURL" $v.config.temporal.uiURL -}}
{{- with $v.config.temporal.tlsServerName }}{{ $_ := set $temporal "tlsServerName" . }}{{ end -}}
{{- if $s.temporalTLS.secretName -}}
{{- $_ := set $temporal "tlsCert" (include "conveyor.secretPath" (list "temporalTLS" "tls.crt")) -}}
{{- $_ := set $temporal "tlsKey" (include "conveyor.secretPath" (list "temporalTLS" "tls.key")) -}}
{{- $_ := set $temporal "tlsCA" (include "conveyor.secretPath" (list "temporalTLS" "ca.crt")) -}}
{{- end -}}
{{- if $s.temporalAPIKey.secretName -}}
{{- $_ := set $temporal "apiKeyFile" (include "conveyor.secretPath" (list "temporalAPIKey" "api-key")) -}}
{{- end -}}
{{- if $s.payloadKeys.secretName -}}
{{- $_ := set $temporal "payloadKeyFile" (include "conveyor.secretPath" (list "payloadKeys" "payload-keys")) -}}
{{- end -}}
{{- $cfg := dict "temporal" $temporal "stateDir" "/var/lib/conveyor" -}}
{{- with $v.config.tracing.endpoint -}}
{{- $tracing := dict "endpoint" . -}}
{{- if not (kindIs "invalid" $v.config.tracing.sampleRatio) }}{{ $_ := set $tracing "sampleRatio" $v.config.tracing.sampleRatio }}{{ end -}}
{{- $_ := set $cfg "tracing" $tracing -}}
{{- end -}}
{{- if eq $c "build" -}}
{{- $buildkit := dict "address" $v.config.buildkit.address -}}
{{- $allow := dig "egress" "allow" nil $v.config.buildkit -}}
{{- if not (kindIs "invalid" $allow) }}{{ $_ := set $buildkit "egress" (dict "allow" $allow) }}{{ end -}}
{{- $_ := set $cfg "buildkit" $buildkit -}}
{{- $registry := dict "address" $v.config.registry.address -}}
{{- with $v.config.registry.username }}{{ $_ := set $registry "username" . }}{{ end -}}
{{- if $s.registryPassword.secretName -}}
{{- $_ := set $registry "passwordFile" (include "conveyor.secretPath" (list "registryPassword" "password")) -}}
{{- end -}}
{{- $_ := set $cfg "registry" $registry -}}
{{- end -}}
{{- if eq $c "deploy" -}}
{{- /* Read only, anonymously: a promoted image must be one the pipeline published there. */ -}}
{{- $_ := set $cfg "registry" (dict "address" $v.config.registry.address) -}}
{{- end -}}
{{- if or (eq $c "build") (eq $c "receiver") -}}
{{- $gerrit := dict -}}
{{- with $v.config.gerrit.url }}{{ $_ := set $gerrit "url" . }}{{ end -}}
{{- with $v.config.gerrit.username }}{{ $_ := set $gerrit "username" . }}{{ end -}}
{{- if and (eq $c "build") $s.gerritPassword.secretName -}}
{{- $_ := set $gerrit "passwordFile" (include "conveyor.secretPath" (list "gerritPassword" "password")) -}}
{{- end -}}
{{- with $gerrit }}{{ $_ := set $cfg "gerrit" . }}{{ end -}}
{{- end -}}
{{- if eq $c "deploy" -}}
{{- $kubeconfig := "" -}}
{{- if $s.kubeconfig.secretName -}}
{{- $kubeconfig = include "conveyor.secretPath" (list "kubeconfig" "kubeconfig") -}}
{{- end -}}
{{- $kubernetes := dict "kubeconfig" $kubeconfig -}}
{{- if include "conveyor.selfBind" .root -}}
{{- $_ := set $kubernetes "releaseClusterRole" (include "conveyor.releaseRole" .root) -}}
{{- end -}}
{{- $_ := set $cfg "kubernetes" $kubernetes -}}
{{- $promotion := dict -}}
{{- with $v.config.promotion.configRepo }}{{ $_ := set $promotion "configRepo" . }}{{ end -}}
{{- $clusters := list -}}
{{- range $v.config.promotion.clusters -}}
{{- $cl := dict "name" .name "kubeconfig" (include "conveyor.secretFile" (dict "dir" (printf "cluster-%s" .name) "file" "kubeconfig")) -}}
{{- if .simulated }}{{ $_ := set $cl "simulated" true }}{{ end -}}
{{- $clusters = append $clusters $cl -}}
{{- end -}}
{{- with $clusters }}{{ $_ := set $promotion "clusters" . }}{{ end -}}
{{- with $promotion }}{{ $_ := set $cfg "promotion" . }}{{ end -}}
{{- end -}}
{{- if eq $c "migrate" -}}
{{- $os := dict -}}
{{- range $k := list "authURL" "username" "projectName" "domain" -}}
{{- with index $v.config.openstack $k }}{{ $_ := set $os $k . }}{{ end -}}
{{- end -}}
{{- with $v.config.openstack.deployments }}{{ $_ := set $os "deployments" . }}{{ end -}}
{{- if $s.openstackPassword.secretName -}}
{{- $_ := set $os "passwordFile" (include "conveyor.secretPath" (list "openstackPassword" "password")) -}}
{{- end -}}
{{- with $os }}{{ $_ := set $cfg "openstack" . }}{{ end -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/*
conveyor.triggers is the receiver's triggers file: receiver.triggers with
webhook.secretFile pointing at the mounted secrets.webhookSecret.
*/}}
{{- define "conveyor.triggers" -}}
{{- $t := deepCopy .Values.receiver.triggers -}}
{{- $webhook := default dict $t.webhook -}}
{{- if hasKey $webhook "secret" -}}
{{- fail "receiver.triggers.webhook.secret: a secret in the values ends up in the clear in a ConfigMap; put it in a Secret and name it in secrets.webhookSecret" -}}
{{- end -}}
{{- if .Values.secrets.webhookSecret.secretName -}}
{{- $_ := set $webhook "secretFile" (include "conveyor.secretPath" (list "webhookSecret" "secret")) -}}
{{- end -}}
{{- $_ := set $t "webhook" $webhook -}}
{{- $projects := list -}}
{{- range $i, $p := $t.projects -}}
{{- if hasKey $p "webhookSecretFile" -}}
{{- fail (printf "receiver.triggers.projects[%d].webhookSecretFile: set by the chart; name the project's key of secrets.projectWebhookSecrets with webhookSecretKey" $i) -}}
{{- end -}}
{{- if hasKey $p "webhookSecretKey" -}}
{{- if not $.Values.secrets.projectWebhookSecrets.secretName -}}
{{- fail (printf "receiver.triggers.projects[%d].webhookSecretKey: secrets.projectWebhookSecrets.secretName is empty; name the Secret that holds the key %s" $i $p.webhookSecretKey) -}}
{{- end -}}
{{- $_ := set $p "webhookSecretFile" (include "conveyor.secretPath" (list "projectWebhookSecrets" $p.webhookSecretKey)) -}}
{{- $_ := unset $p "webhookSecretKey" -}}
{{- end -}}
{{- $projects = append $projects $p -}}
{{- end -}}
{{- if $t.projects }}{{ $_ := set $t "projects" $projects }}{{ end -}}
{{- toYaml $t -}}
{{- end -}}

{{/*
conveyor.volumes and conveyor.volumeMounts are a component's configuration, its
secrets and its writable directories. They take (dict "root" $ "component" NAME).
*/}}
{{- define "conveyor.volumes" -}}
{{- $v := .root.Values -}}
{{- $c := .component -}}
- name: config
  configMap:
    name: {{ include "conveyor.fullname" .root }}-config
    items:
      - key: {{ $c }}.yaml
        path: conveyor.yaml
      {{- if eq $c "receiver" }}
      - key: triggers.yaml
        path: triggers.yaml
      {{- end }}
{{- range $name, $t := include "conveyor.secretTable" . | fromYaml }}
{{- $ref := index $v.secrets $name }}
{{- if and $ref.secretName (has $c $t.users) }}
- name: {{ $t.dir }}
  secret:
    secretName: {{ $ref.secretName }}
    defaultMode: 0440
    {{- if eq $name "temporalTLS" }}
    items:
      - {key: tls.crt, path: tls.crt}
      - {key: tls.key, path: tls.key}
      - {key: ca.crt, path: ca.crt}
    {{- else if $t.file }}
    items:
      - key: {{ $ref.key }}
        path: {{ $t.file }}
    {{- end }}
{{- end }}
{{- end }}
{{- if eq $c "deploy" }}
{{- range $v.config.promotion.clusters }}
- name: cluster-{{ .name }}
  secret:
    secretName: {{ .kubeconfigSecret.secretName }}
    defaultMode: 0440
    items:
      - key: {{ .kubeconfigSecret.key | default "kubeconfig" }}
        path: kubeconfig
{{- end }}
{{- end }}
- name: tmp
  emptyDir: {}
{{- if ne $c "receiver" }}
- name: state
  emptyDir:
    sizeLimit: {{ $v.workerDefaults.workspaceSizeLimit }}
{{- end }}
{{- end -}}

{{- define "conveyor.volumeMounts" -}}
{{- $v := .root.Values -}}
{{- $c := .component -}}
- name: config
  mountPath: /etc/conveyor
  readOnly: true
{{- range $name, $t := include "conveyor.secretTable" . | fromYaml }}
{{- if and (index $v.secrets $name).secretName (has $c $t.users) }}
- name: {{ $t.dir }}
  mountPath: /var/run/secrets/conveyor/{{ $t.dir }}
  readOnly: true
{{- end }}
{{- end }}
{{- if eq $c "deploy" }}
{{- range $v.config.promotion.clusters }}
- name: cluster-{{ .name }}
  mountPath: /var/run/secrets/conveyor/cluster-{{ .name }}
  readOnly: true
{{- end }}
{{- end }}
- name: tmp
  mountPath: /tmp
{{- if ne $c "receiver" }}
- name: state
  mountPath: /var/lib/conveyor
{{- end }}
{{- end -}}

{{/*
conveyor.podSecurityContext and conveyor.containerSecurityContext: non-root (the
images' uid 65532), no privilege escalation, no capabilities, a read-only root.
*/}}
{{- define "conveyor.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "conveyor.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
{{- end -}}

{{/*
conveyor.probes are liveness on /healthz and readiness on /readyz of the named port.
*/}}
{{- define "conveyor.probes" -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: {{ . }}
  periodSeconds: 10
  timeoutSeconds: 2
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: {{ . }}
  periodSeconds: 5
  timeoutSeconds: 2
  failureThreshold: 3
{{- end -}}

{{/*
conveyor.deploySubject is the deploy pool's ServiceAccount as RBAC names it.
*/}}
{{/*
conveyor.releaseRole names the ClusterRole of charts/service's release rules: bound in
rbac.managedNamespaces' stead by the deploy pool itself in each ci-… namespace it
creates (kubernetes.releaseClusterRole), or cluster-wide with
rbac.releaseRightsInEveryNamespace.
*/}}
{{/*
conveyor.selfBind is "true" when the deploy pool binds conveyor.releaseRole to itself in
each ci-… namespace it creates: the chart makes its RBAC, the release rules are not
bound cluster-wide, and it deploys to the cluster it runs in (no secrets.kubeconfig).
*/}}
{{- define "conveyor.selfBind" -}}
{{- if and .Values.rbac.create .Values.pools.deploy.enabled (not .Values.rbac.releaseRightsInEveryNamespace) (not .Values.secrets.kubeconfig.secretName) -}}
true
{{- end -}}
{{- end -}}

{{- define "conveyor.releaseRole" -}}
{{- printf "%s-worker-deploy-releases-%s" (include "conveyor.fullname" .) .Release.Namespace -}}
{{- end -}}

{{- define "conveyor.deploySubject" -}}
kind: ServiceAccount
name: {{ include "conveyor.fullname" . }}-worker-deploy
namespace: {{ .Release.Namespace }}
{{- end -}}

{{/*
conveyor.egress is one egress rule from a networkPolicy destination {to, ports}; an
empty to is any address.
*/}}
{{- define "conveyor.egress" -}}
- ports:
    {{- toYaml .ports | nindent 4 }}
  {{- with .to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
