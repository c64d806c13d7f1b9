{{/*
Names and labels shared by every template.
*/}}

{{/* The app name: the chart's, unless nameOverride. */}}
{{- define "ferroserve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The resources' name: the release name where it already contains the app name (so that
`helm install ferroserve` gives "ferroserve", not "ferroserve-ferroserve"), else
release-app. 63 characters at most, the limit of a DNS label (Service names are ones).
*/}}
{{- define "ferroserve.fullname" -}}
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

{{- define "ferroserve.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every resource. The version labels change on upgrade, so they are never part
of a selector (a Deployment's selector cannot change).
*/}}
{{- define "ferroserve.labels" -}}
helm.sh/chart: {{ include "ferroserve.chart" . }}
{{ include "ferroserve.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* What the Deployment, Service, PodDisruptionBudget and spread constraint select by. */}}
{{- define "ferroserve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ferroserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ferroserve.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* Prometheus label matchers of this release's series, for KEDA's queries. */}}
{{- define "ferroserve.seriesSelector" -}}
{{- .Values.autoscaling.keda.seriesSelector | default (printf "namespace=%q,service=%q" .Release.Namespace (include "ferroserve.fullname" .)) }}
{{- end }}
