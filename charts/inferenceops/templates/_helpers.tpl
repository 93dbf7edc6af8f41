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
- --log-format={{ .Values.logFormat }}
- --log-level={{ .Values.logLevel }}
- --health-port={{ .Values.healthPort }}
- --metrics-port={{ if .Values.metrics.enabled }}{{ .Values.metrics.port }}{{ else }}0{{ end }}
- --group={{ include "inferenceops.fullname" . }}
- --lease-duration={{ .Values.leaseDuration | default 15 }}
{{- range include "inferenceops.clusterSecretNamespaces" . | fromJsonArray }}
- --cluster-secret-namespace={{ . }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/* Pod template of the Deployment. */}}
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
      env:
        # The member id (the Lease is named after it) and the Lease namespace.
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        # The Lease names its Pod as owner: deleted with the Pod even when the member cannot.
        - name: POD_UID
          valueFrom:
            fieldRef:
              fieldPath: metadata.uid
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
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
  {{- with include "inferenceops.topologySpreadConstraints" . | trim }}
  {{- . | nindent 2 }}
  {{- end }}
{{- end }}

{{/* Spread the pods over nodes and zones, so that losing one takes only a share of the
   members: the user's list when set, else one constraint per topologySpread key. */}}
{{- define "inferenceops.topologySpreadConstraints" -}}
{{- if .Values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml .Values.topologySpreadConstraints | nindent 2 }}
{{- else }}
{{- /* dig: `helm upgrade --reuse-values` from an older chart brings none of these defaults. */}}
{{- $spread := .Values.topologySpread | default dict }}
{{- $keys := dig "topologyKeys" (list "kubernetes.io/hostname" "topology.kubernetes.io/zone") $spread }}
{{- if $keys }}
topologySpreadConstraints:
  {{- range $keys }}
  - maxSkew: 1
    topologyKey: {{ . | quote }}
    whenUnsatisfiable: {{ dig "whenUnsatisfiable" "ScheduleAnyway" $spread }}
    labelSelector:
      matchLabels:
        {{- include "inferenceops.selectorLabels" $ | nindent 8 }}
    matchLabelKeys:
      - pod-template-hash
  {{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* A CIDR as JSON {"v6", "prefix", "width", "groups"}: its address as 4 octets (IPv4) or 8
   hextets (IPv6, "::" expanded), for inferenceops.cidrContains. */}}
{{- define "inferenceops.cidrParts" -}}
{{- $parts := splitList "/" (lower .) }}
{{- $address := first $parts }}
{{- $v6 := contains ":" $address }}
{{- $groups := list }}
{{- if $v6 }}
{{- $hex := dict "0" 0 "1" 1 "2" 2 "3" 3 "4" 4 "5" 5 "6" 6 "7" 7 "8" 8 "9" 9 "a" 10 "b" 11 "c" 12 "d" 13 "e" 14 "f" 15 }}
{{- $halves := splitList "::" $address }}
{{- $left := list }}{{- with first $halves }}{{ $left = splitList ":" . }}{{ end }}
{{- $right := list }}
{{- if gt (len $halves) 1 }}{{- with last $halves }}{{ $right = splitList ":" . }}{{ end }}{{- end }}
{{- $words := $left }}
{{- range until (sub 8 (add (len $left) (len $right)) | int) }}{{ $words = append $words "0" }}{{ end }}
{{- $words = concat $words $right }}
{{- range $words }}
{{- $value := 0 }}
{{- range splitList "" . }}{{ $value = add (mul $value 16) (get $hex .) }}{{ end }}
{{- $groups = append $groups $value }}
{{- end }}
{{- else }}
{{- range splitList "." $address }}{{ $groups = append $groups (atoi .) }}{{ end }}
{{- end }}
{{- toJson (dict "v6" $v6 "prefix" (atoi (last $parts)) "width" (ternary 16 8 $v6) "groups" $groups) }}
{{- end }}

{{/* "true" when CIDR `inner` lies strictly inside CIDR `outer` (what NetworkPolicy requires of
   an ipBlock's `except`), or is `outer` itself with `orEqual`; else "". */}}
{{- define "inferenceops.cidrContains" -}}
{{- $outer := include "inferenceops.cidrParts" .outer | fromJson }}
{{- $inner := include "inferenceops.cidrParts" .inner | fromJson }}
{{- $narrower := or (gt (int $inner.prefix) (int $outer.prefix)) (and .orEqual (eq (int $inner.prefix) (int $outer.prefix))) }}
{{- if and (eq $outer.v6 $inner.v6) $narrower }}
{{- $width := int $outer.width }}
{{- $same := true }}
{{- range $i := until (len $outer.groups) }}
{{- $bits := min $width (max 0 (sub (int $outer.prefix) (mul $i $width))) }}
{{- $scale := 1 }}
{{- range until (sub $width $bits | int) }}{{ $scale = mul $scale 2 }}{{ end }}
{{- if ne (div (int (index $outer.groups $i)) $scale) (div (int (index $inner.groups $i)) $scale) }}
{{- $same = false }}
{{- end }}
{{- end }}
{{- if $same }}true{{ end }}
{{- end }}
{{- end }}

{{/* One egress `to` list: an ipBlock per CIDR, minus the link-local range of its family
   (169.254.0.0/16, fe80::/10) and the user's `except` ranges, each where it lies inside the
   CIDR (NetworkPolicy refuses an `except` outside its `cidr`). */}}
{{- define "inferenceops.egressBlocks" -}}
{{- $linkLocal := list "169.254.0.0/16" "fe80::/10" }}
{{- $except := concat $linkLocal .except }}
{{- range .cidrs }}
{{- $cidr := . }}
{{- range $linkLocal }}
{{- if include "inferenceops.cidrContains" (dict "outer" . "inner" $cidr "orEqual" true) }}
{{- fail (printf "networkPolicy.egress: %s is link-local (%s), which the operator may never reach" $cidr .) }}
{{- end }}
{{- end }}
{{- $out := list }}
{{- range $except }}
{{- if include "inferenceops.cidrContains" (dict "outer" $cidr "inner" .) }}{{ $out = append $out . }}{{ end }}
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
