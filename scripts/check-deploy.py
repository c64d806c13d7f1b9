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
    scripts/check-deploy.py metrics
        Every metric that the Grafana dashboard, the prometheus-adapter rules, the KEDA
        ScaledObject and the KServe runtime query is one ferroserve defines
        (a "ferroserve_..." string in crates/) or one of Triton's documented names, with
        the histogram suffixes where the histogram is queried. Triton's names that the
        server does not export yet are listed, not failed.
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
        for doc in documents(path):
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


def queries():
    """(where, PromQL or metric name) for every query in deploy/."""
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
    for doc in documents(DEPLOY / "kubernetes/overlays/keda/scaledobject.yaml"):
        for trigger in doc["spec"]["triggers"]:
            found.append((f"KEDA trigger {trigger['name']}", trigger["metadata"]["query"]))
    return found


def defined_by_ferroserve():
    names = set()
    for path in (ROOT / "crates").rglob("*.rs"):
        names.update(re.findall(r'"((?:ferroserve|nv)_[a-z0-9_]+)"', path.read_text()))
    return names


def metrics():
    defined = defined_by_ferroserve()
    histograms = {n for n in defined if n.endswith(("_seconds", "_size"))}
    used = set()
    for where, query in queries():
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


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    command, args = sys.argv[1], sys.argv[2:]
    if command == "split" and len(args) == 2:
        split(*args)
    elif command == "policy" and args:
        policy(args)
    elif command == "metrics" and not args:
        metrics()
    else:
        sys.exit(__doc__)
    for message in failures:
        print(f"FAIL {message}", file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
