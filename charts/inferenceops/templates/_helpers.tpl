{{/* Chart name, truncated to 63 chars (DNS label limit). */}}
{{- define "inferenceops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: <release>-<chart>, or <release> when it already contains the chart
name. Truncated to 63 chars.
*/}}
{{- define "inferenceops.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Name of cluster-scoped objects (ClusterRole, ClusterRoleBinding): the full name plus the
release namespace, so the same release name can be installed in several namespaces.
*/}}
{{- define "inferenceops.clusterName" -}}
{{- printf "%s-%s" (include "inferenceops.fullname" .) .Release.Namespace | trunc 253 | trimSuffix "-" }}
{{- end }}

{{- define "inferenceops.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels. */}}
{{- define "inferenceops.labels" -}}
helm.sh/chart: {{ include "inferenceops.chart" . }}
{{ include "inferenceops.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: inferenceops
{{- end }}

{{/* Selector labels (immutable on Deployments/StatefulSets: never change these). */}}
{{- define "inferenceops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "inferenceops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* ServiceAccount name. */}}
{{- define "inferenceops.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "inferenceops.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image reference: repository:tag, plus @digest when a digest is set. */}}
{{- define "inferenceops.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
RBAC rules on namespaced resources: cluster-wide in a ClusterRole, or per watched namespace in
a Role. The operator reads InferenceEndpoints, patches only their status, reads the credential
Secrets they reference, and emits Events.
*/}}
{{- define "inferenceops.namespacedRules" -}}
- apiGroups: ["inferenceops.io"]
  resources: ["inferenceendpoints", "inferenceproviders"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["inferenceops.io"]
  resources: ["inferenceendpoints/status", "inferenceproviders/status"]
  verbs: ["get", "patch"]
{{ include "inferenceops.secretRules" . }}
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* RBAC rules that only exist cluster-wide: kopf's CRD and namespace discovery, and the
   cluster-scoped ClusterInferenceProviders. */}}
{{- define "inferenceops.discoveryRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["inferenceops.io"]
  resources: ["clusterinferenceproviders"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["inferenceops.io"]
  resources: ["clusterinferenceproviders/status"]
  verbs: ["get", "patch"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
{{- end }}

{{/* Namespaces where ClusterInferenceProviders may read Secrets (a JSON list): the listed
   ones, else the release namespace. */}}
{{- define "inferenceops.clusterSecretNamespaces" -}}
{{- toJson (.Values.clusterSecretNamespaces | default (list .Release.Namespace)) }}
{{- end }}

{{/* RBAC rule reading Secrets: in each watched namespace (its endpoints' and
   InferenceProviders' Secrets) and in each cluster Secret namespace. */}}
{{- define "inferenceops.secretRules" -}}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
{{- end }}

{{/* Arguments of `inferenceops run` (the image's ENTRYPOINT is `inferenceops`). */}}
{{- define "inferenceops.args" -}}
- run
{{- range .Values.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
{{- range include "inferenceops.clusterSecretNamespaces" . | fromJsonArray }}
- --cluster-secret-namespace={{ . }}
{{- end }}
- --log-format={{ .Values.logFormat }}
- --log-level={{ .Values.logLevel }}
- --health-port={{ .Values.healthPort }}
- --metrics-port={{ if .Values.metrics.enabled }}{{ .Values.metrics.port }}{{ else }}0{{ end }}
{{- if .Values.sharding.enabled }}
- --shard-index=$(INFERENCEOPS_SHARD_INDEX)
- --shard-count={{ .Values.sharding.replicas }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/* Pod template shared by the Deployment and the sharded StatefulSet. */}}
{{- define "inferenceops.podTemplate" -}}
{{- /* podLabels can add labels but never override the selector labels. */}}
{{- $labels := merge (include "inferenceops.selectorLabels" . | fromYaml) (dict "app.kubernetes.io/version" .Chart.AppVersion) (deepCopy (.Values.podLabels | default dict)) -}}
metadata:
  labels:
    {{- toYaml $labels | nindent 4 }}
  {{- with .Values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "inferenceops.serviceAccountName" . }}
  automountServiceAccountToken: true
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . | quote }}
  {{- end }}
  {{- with .Values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  containers:
    - name: operator
      image: {{ include "inferenceops.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        {{- include "inferenceops.args" . | nindent 8 }}
      {{- if or .Values.sharding.enabled .Values.extraEnv }}
      env:
        {{- if .Values.sharding.enabled }}
        - name: INFERENCEOPS_SHARD_INDEX
          valueFrom:
            fieldRef:
              fieldPath: metadata.labels['apps.kubernetes.io/pod-index']
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      ports:
        - name: health
          containerPort: {{ .Values.healthPort }}
          protocol: TCP
        {{- if .Values.metrics.enabled }}
        - name: metrics
          containerPort: {{ .Values.metrics.port }}
          protocol: TCP
        {{- end }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: health
        initialDelaySeconds: 5
        periodSeconds: 20
        timeoutSeconds: 5
        failureThreshold: 3
      readinessProbe:
        httpGet:
          path: /healthz
          port: health
        periodSeconds: 10
        timeoutSeconds: 5
        failureThreshold: 3
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* The link-local range of `cidr`'s IP family when `cidr` contains it (169.254.0.0/16,
   fe80::/10), as a JSON list: NetworkPolicy refuses an `except` outside its `cidr`. IPv4 is
   computed; an IPv6 CIDR other than ::/0 that could contain fe80::/10 is refused. */}}
{{- define "inferenceops.linkLocalIn" -}}
{{- $cidr := . }}
{{- $parts := splitList "/" $cidr }}
{{- $prefix := atoi (last $parts) }}
{{- if contains ":" $cidr }}
{{- if eq $prefix 0 }}["fe80::/10"]
{{- else if le $prefix 10 }}
{{- fail (printf "networkPolicy.egress: %s may contain fe80::/10; use ::/0 or narrower ranges" $cidr) }}
{{- else }}[]
{{- end }}
{{- else }}
{{- $octets := splitList "." (first $parts) }}
{{- $address := 0 }}
{{- range $octets }}{{ $address = add (mul $address 256) (atoi .) }}{{ end }}
{{- $scale := 1 }}
{{- range until (sub 32 $prefix | int) }}{{ $scale = mul $scale 2 }}{{ end }}
{{- /* 169.254.0.0 as a number */}}
{{- if and (le $prefix 16) (eq (div $address $scale) (div 2851995648 $scale)) }}["169.254.0.0/16"]
{{- else }}[]
{{- end }}
{{- end }}
{{- end }}

{{/* One egress `to` list: an ipBlock per CIDR, minus the link-local range it contains and the
   user's `except` ranges of its IP family. */}}
{{- define "inferenceops.egressBlocks" -}}
{{- $except := .except }}
{{- range .cidrs }}
{{- $cidr := . }}
{{- $family := contains ":" $cidr }}
{{- $out := include "inferenceops.linkLocalIn" $cidr | fromJsonArray }}
{{- range $except }}
{{- if eq (contains ":" .) $family }}{{ $out = append $out . }}{{ end }}
{{- end }}
- ipBlock:
    cidr: {{ $cidr | quote }}
    {{- with $out }}
    except:
      {{- range . }}
      - {{ . | quote }}
      {{- end }}
    {{- end }}
{{- end }}
{{- end }}
