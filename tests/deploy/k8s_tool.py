#!/usr/bin/env python3
"""Helpers for tests/deploy.rs, run with the Python that kubernetes-validate is installed in
(so PyYAML, jsonschema and kubernetes-validate's Kubernetes schemas are importable).

  k8s_tool.py to-json FILE...              every YAML document of the files, as one JSON
                                           array of {"file": ..., "doc": ...}
  k8s_tool.py validate SCHEMA KIND FILE... validates every document of kind KIND against the
                                           JSON schema SCHEMA, resolving references to
                                           Kubernetes' own definitions; exit 1 on any error,
                                           2 when no document has that kind
"""

import json
import sys

import jsonschema
import yaml
from kubernetes_validate import utils
from referencing import Registry, Resource

DEFINITIONS = "https://kubernetes.io/api/_definitions.json"


def documents(files):
    for name in files:
        with open(name) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    yield name, doc


def to_json(files):
    json.dump([{"file": name, "doc": doc} for name, doc in documents(files)], sys.stdout)


def validate(schema_path, kind, files):
    with open(schema_path) as f:
        schema = json.load(f)
    version = utils.latest_version()
    definitions = utils.schema_contents(
        "kubernetes-json-schema/v%s-local-strict/_definitions.json" % version, version)
    registry = Registry().with_resource(DEFINITIONS, Resource.from_contents(definitions))
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    seen, failed = 0, False
    for name, doc in documents(files):
        if doc.get("kind") != kind:
            continue
        seen += 1
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        for e in errors:
            where = ".".join(str(p) for p in e.path) or "(document)"
            print("ERROR %s %s/%s: %s: %s" % (name, kind, doc.get("metadata", {}).get("name"),
                                              where, e.message))
        if errors:
            failed = True
        else:
            print("INFO %s %s/%s passed against %s (Kubernetes %s definitions)"
                  % (name, kind, doc["metadata"]["name"], schema_path, version))
    if seen == 0:
        print("ERROR no document of kind %s in %s" % (kind, " ".join(files)))
        return 2
    return 1 if failed else 0


def main(argv):
    if len(argv) >= 2 and argv[0] == "to-json":
        to_json(argv[1:])
        return 0
    if len(argv) >= 4 and argv[0] == "validate":
        return validate(argv[1], argv[2], argv[3:])
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
