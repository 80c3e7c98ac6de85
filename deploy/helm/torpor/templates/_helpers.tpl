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
{{- /* The pod's own address by default, not every interface (the agent is on the host network). */}}
- name: POD_IP
  valueFrom: { fieldRef: { fieldPath: status.podIP } }
- name: TORPOR_METRICS_ADDRESS
  value: {{ printf "%s:%d" (default "$(POD_IP)" .Values.metrics.bindAddress) (int .Values.metrics.port) | quote }}
{{- end }}
{{- if not .Values.temporal.payloadKeys.insecure }}
- name: TORPOR_PAYLOAD_KEY_FILE
  value: /etc/torpor/payload-keys/payload-keys
{{- end }}
{{- if not .Values.temporal.tls.insecure }}
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

{{/* Refuses to render an unprotected Temporal connection unless the values opt out explicitly. */}}
{{- define "torpor.temporalSecrets" -}}
{{- if and (not .Values.temporal.tls.insecure) (not .Values.temporal.tls.secretName) }}
{{- fail "temporal.tls.secretName is required (mTLS to Temporal, whose namespace access is root on every node); set temporal.tls.insecure=true to opt out" }}
{{- end }}
{{- if and (not .Values.temporal.payloadKeys.insecure) (not .Values.temporal.payloadKeys.secretName) }}
{{- fail "temporal.payloadKeys.secretName is required (payload encryption key, README \"Encrypted payloads\"); set temporal.payloadKeys.insecure=true to opt out" }}
{{- end }}
{{- end }}

{{- define "torpor.temporalMounts" -}}
{{- if not .Values.temporal.tls.insecure }}
- { name: temporal-tls, mountPath: /etc/torpor/tls, readOnly: true }
{{- end }}
{{- if not .Values.temporal.payloadKeys.insecure }}
- { name: payload-keys, mountPath: /etc/torpor/payload-keys, readOnly: true }
{{- end }}
{{- end }}

{{- define "torpor.temporalVolumes" -}}
{{- if not .Values.temporal.tls.insecure }}
- name: temporal-tls
  secret: { secretName: {{ .Values.temporal.tls.secretName | quote }} }
{{- end }}
{{- if not .Values.temporal.payloadKeys.insecure }}
- name: payload-keys
  secret: { secretName: {{ .Values.temporal.payloadKeys.secretName | quote }} }
{{- end }}
{{- end }}

{{- define "torpor.podAnnotations" -}}
{{- if .Values.metrics.enabled }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.metrics.port | quote }}
{{- end }}
{{- end }}

{{/* A worker's API access from a kubeconfig Secret (key "kubeconfig") instead of its ServiceAccount; argument: the Secret's name. */}}
{{- define "torpor.kubeconfigEnv" -}}
{{- if . }}
- name: KUBECONFIG
  value: /etc/torpor/kubeconfig/kubeconfig
{{- end }}
{{- end }}

{{- define "torpor.kubeconfigMount" -}}
{{- if . }}
- { name: kubeconfig, mountPath: /etc/torpor/kubeconfig, readOnly: true }
{{- end }}
{{- end }}

{{- define "torpor.kubeconfigVolume" -}}
{{- if . }}
- name: kubeconfig
  secret: { secretName: {{ . | quote }} }
{{- end }}
{{- end }}

{{/* The shared store (sharedStore.*) for the agents and the control worker: settings from values, credentials from the Secret only. */}}
{{- define "torpor.sharedStoreEnv" -}}
{{- with .Values.sharedStore }}
{{- $dir := .directory | default dict }}
{{- if and .bucket (or $dir.enabled $dir.claimName) }}
{{- fail "sharedStore.bucket and sharedStore.directory each name a shared store (S3 or an RWX volume): set one" }}
{{- end }}
{{- if and $dir.enabled (not $dir.claimName) }}
{{- fail "sharedStore.directory.enabled needs sharedStore.directory.claimName: an existing ReadWriteMany PersistentVolumeClaim" }}
{{- end }}
{{- if $dir.claimName }}
{{- if not $.Values.nodeAgent.manifestKeySecret }}
{{- fail "sharedStore needs nodeAgent.manifestKeySecret: nodes that restore each other's checkpoints check their manifests with one key" }}
{{- end }}
{{- if not (isAbs $dir.mountPath) }}
{{- fail "sharedStore.directory.mountPath must be an absolute path" }}
{{- end }}
- name: TORPOR_SHARED_DIR
  value: {{ $dir.mountPath | quote }}
{{- end }}
{{- if .bucket }}
{{- if not $.Values.nodeAgent.manifestKeySecret }}
{{- fail "sharedStore needs nodeAgent.manifestKeySecret: nodes that restore each other's checkpoints check their manifests with one key" }}
{{- end }}
- name: TORPOR_S3_BUCKET
  value: {{ .bucket | quote }}
{{- with .endpoint }}
- name: TORPOR_S3_ENDPOINT
  value: {{ . | quote }}
{{- end }}
- name: TORPOR_S3_REGION
  value: {{ .region | quote }}
{{- with .pathStyle }}
- name: TORPOR_S3_PATH_STYLE
  value: {{ . | quote }}
{{- end }}
{{- with .prefix }}
- name: TORPOR_S3_PREFIX
  value: {{ . | quote }}
{{- end }}
{{- if .existingSecret }}
- name: TORPOR_S3_ACCESS_KEY_ID
  valueFrom: { secretKeyRef: { name: {{ .existingSecret | quote }}, key: {{ .accessKeyIdKey | quote }} } }
- name: TORPOR_S3_SECRET_ACCESS_KEY
  valueFrom: { secretKeyRef: { name: {{ .existingSecret | quote }}, key: {{ .secretAccessKeyKey | quote }} } }
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The shared directory's RWX claim, at the same path in every pod; argument: readOnly (the control worker only reads it). */}}
{{- define "torpor.sharedDirMount" -}}
{{- with .root.Values.sharedStore.directory }}
{{- if .claimName }}
- { name: shared-store, mountPath: {{ .mountPath | quote }}{{ if $.readOnly }}, readOnly: true{{ end }} }
{{- end }}
{{- end }}
{{- end }}

{{- define "torpor.sharedDirVolume" -}}
{{- with .Values.sharedStore.directory }}
{{- if .claimName }}
- name: shared-store
  persistentVolumeClaim: { claimName: {{ .claimName | quote }} }
{{- end }}
{{- end }}
{{- end }}
