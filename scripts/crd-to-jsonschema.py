#!/usr/bin/env python3
"""Turns a CustomResourceDefinition's OpenAPI v3 schema into a JSON Schema file that
check-jsonschema can validate resources against, the way the Kubernetes API server would
with strict field validation:

- objects that list their properties reject unknown ones (additionalProperties: false),
  unless the CRD marks them x-kubernetes-preserve-unknown-fields;
- `nullable: true` admits null;
- apiVersion and kind must name this CRD's group, version and kind;
- descriptions are dropped (they are most of the CRD's size and no part of validation).

    scripts/crd-to-jsonschema.py CRD.yaml VERSION OUT.json

It made the schemas vendored in deploy/schemas/ (see the README there).
"""

import json
import sys

import yaml

# Keywords whose value is one schema, a list of schemas, or a map of name to schema.
ONE = ("items", "additionalProperties", "not")
MANY = ("allOf", "anyOf", "oneOf")
MAP = ("properties", "patternProperties", "definitions")


def convert(node):
    """A converted copy of one schema node."""
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "description":
            continue
        if key in ONE and isinstance(value, dict):
            out[key] = convert(value)
        elif key in MANY:
            out[key] = [convert(v) for v in value]
        elif key in MAP:
            out[key] = {name: convert(v) for name, v in value.items()}
        else:
            out[key] = value
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    preserve = out.get("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    crd_path, version, out_path = sys.argv[1:]
    with open(crd_path) as f:
        crd = yaml.safe_load(f)
    spec = crd["spec"]
    matching = [v for v in spec["versions"] if v["name"] == version]
    if not matching:
        names = ", ".join(v["name"] for v in spec["versions"])
        sys.exit(f"{crd_path}: no version {version} (it has {names})")
    schema = convert(matching[0]["schema"]["openAPIV3Schema"])
    schema["properties"]["apiVersion"] = {"const": f"{spec['group']}/{version}"}
    schema["properties"]["kind"] = {"const": spec["names"]["kind"]}
    schema.setdefault("required", [])
    for field in ("apiVersion", "kind", "metadata"):
        if field not in schema["required"]:
            schema["required"].append(field)
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    schema["title"] = f"{spec['names']['kind']} ({spec['group']}/{version})"
    with open(out_path, "w") as f:
        json.dump(schema, f, separators=(",", ":"), sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
