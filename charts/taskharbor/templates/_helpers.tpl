{{/* Name of every object of the release. */}}
{{- define "taskharbor.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "taskharbor.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "taskharbor.labels" -}}
{{ include "taskharbor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "taskharbor.secretName" -}}
{{- .Values.secret.existingSecret | default (include "taskharbor.fullname" .) -}}
{{- end -}}

{{- define "taskharbor.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Pod and container security settings shared by the server and the backup job. */}}
{{- define "taskharbor.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "taskharbor.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* Settings the server reads (tenant-server/src/config.rs); nothing else. */}}
{{- define "taskharbor.env" -}}
- name: TASKHARBOR_LISTEN
  value: "0.0.0.0:8080"
- name: TASKHARBOR_DATA_DIR
  value: /data
{{- with .Values.baseUrl }}
- name: TASKHARBOR_BASE_URL
  value: {{ . | quote }}
{{- end }}
- name: TASKHARBOR_BOOTSTRAP_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "taskharbor.secretName" . }}
      key: {{ .Values.secret.bootstrapTokenKey }}
- name: TASKHARBOR_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "taskharbor.secretName" . }}
      key: {{ .Values.secret.secretKeyKey }}
- name: TASKHARBOR_SYNC
  value: {{ .Values.sync | quote }}
- name: TASKHARBOR_GITHUB_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "taskharbor.secretName" . }}
      key: github-token
      optional: true
- name: TASKHARBOR_GITLAB_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "taskharbor.secretName" . }}
      key: gitlab-token
      optional: true
- name: TASKHARBOR_SHUTDOWN_GRACE_SECONDS
  value: {{ .Values.shutdownGraceSeconds | quote }}
- name: TASKHARBOR_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: RUST_LOG
  value: {{ .Values.logLevel | quote }}
{{- end -}}
