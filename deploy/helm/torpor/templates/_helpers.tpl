{{- define "torpor.labels" -}}
app.kubernetes.io/name: torpor
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "torpor.fullname" -}}
{{- printf "%s-torpor" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end }}

{{- define "torpor.claimName" -}}
{{- if .Values.storage.pvc.existingClaim -}}
{{ .Values.storage.pvc.existingClaim }}
{{- else -}}
{{ .Values.storage.pvc.name }}
{{- end -}}
{{- end }}

{{- define "torpor.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end }}

{{/* Temporal connection settings shared by both workers. */}}
{{- define "torpor.temporalEnv" -}}
- name: TEMPORAL_ADDRESS
  value: {{ .Values.temporal.address | quote }}
- name: TEMPORAL_NAMESPACE
  value: {{ .Values.temporal.namespace | quote }}
{{- if .Values.metrics.enabled }}
- name: TORPOR_METRICS_ADDRESS
  value: {{ printf "0.0.0.0:%d" (int .Values.metrics.port) | quote }}
{{- end }}
{{- if .Values.temporal.tls.enabled }}
- name: TEMPORAL_TLS_CERT
  value: /etc/torpor/tls/tls.crt
- name: TEMPORAL_TLS_KEY
  value: /etc/torpor/tls/tls.key
- name: TEMPORAL_TLS_CA
  value: /etc/torpor/tls/ca.crt
{{- with .Values.temporal.tls.serverName }}
- name: TEMPORAL_TLS_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{- define "torpor.podAnnotations" -}}
{{- if .Values.metrics.enabled }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.metrics.port | quote }}
{{- end }}
{{- end }}
