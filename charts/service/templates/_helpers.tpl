{{/*
service.appName is .Values.appName or the release name. It names the Service, so it must
be a DNS-1035 label.
*/}}
{{- define "service.appName" -}}
{{- $name := default .Release.Name .Values.appName -}}
{{- if not (regexMatch "^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$" $name) -}}
{{- fail (printf "appName: %q cannot name a Kubernetes Service (at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit); set appName in the values" $name) -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{/*
service.fullname names this release's per-track objects: <appName>-<track>.
*/}}
{{- define "service.fullname" -}}
{{- printf "%s-%s" (include "service.appName" .) .Values.track -}}
{{- end -}}

{{/*
service.envPrefix is the prefix of the variables Kubernetes sets for the Service in every
pod of the namespace: <APPNAME>_SERVICE_HOST and <APPNAME>_SERVICE_PORT.
*/}}
{{- define "service.envPrefix" -}}
{{- include "service.appName" . | upper | replace "-" "_" -}}
{{- end -}}

{{/*
service.labels are the labels every object of the release carries.
*/}}
{{- define "service.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "service.appName" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/*
service.serviceSelector selects the serving pods of every track of the application; the
Service uses it so that a canary release's pods join the stable release's Service.
*/}}
{{- define "service.serviceSelector" -}}
app.kubernetes.io/name: {{ include "service.appName" . }}
app.kubernetes.io/component: server
{{- end -}}

{{/*
service.selector selects this release's serving pods only (one track).
*/}}
{{- define "service.selector" -}}
{{ include "service.serviceSelector" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
track: {{ .Values.track }}
{{- end -}}

{{/*
service.imageRef renders an image value (repository, tag, digest) as a reference: the
digest wins over the tag.
*/}}
{{- define "service.imageRef" -}}
{{- if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else if .tag -}}
{{- printf "%s:%s" .repository .tag -}}
{{- else -}}
{{- fail (printf "image %q: set a tag or a digest" .repository) -}}
{{- end -}}
{{- end -}}

{{/*
service.podSecurityContext and service.containerSecurityContext keep every container of
the release non-root and unprivileged.
*/}}
{{- define "service.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ int .Values.securityContext.runAsUser }}
runAsGroup: {{ int .Values.securityContext.runAsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "service.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: {{ .Values.securityContext.readOnlyRootFilesystem }}
capabilities:
  drop:
    - ALL
{{- end -}}

{{/*
service.probe renders one HTTP probe against the container port named http.
*/}}
{{- define "service.probe" -}}
httpGet:
  path: {{ .path | quote }}
  port: http
initialDelaySeconds: {{ int .initialDelaySeconds }}
periodSeconds: {{ int .periodSeconds }}
timeoutSeconds: {{ int .timeoutSeconds }}
failureThreshold: {{ int .failureThreshold }}
{{- end -}}
