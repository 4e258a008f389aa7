"""deploy/kubernetes/operator/locusttest.yaml is a LocustTest the official operator accepts, running our
image, with arguments our master and workers accept.

The LocustTest spec below is written from the fields docs.locust.io documents ("Kubernetes Operator",
LocustTest CRD configuration; the chart's CRD also has `metrics`), with Kubernetes' own types
(`metadata`, `resources`, `env`) taken from the 1.37 schemas kubernetes-validate ships. Unknown fields
are errors: the API server would prune them without a word. The chart's published CRD is used too
when given (LOCUSTTEST_CRD=path): these machines cannot fetch it.
"""

from __future__ import annotations

import ast
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import compliance_loadtest
from compliance_loadtest.profiles import load_profile
from tests.deploy.manifests import K8S, OPERATOR, documented_kubernetes_version, documents

# kubernetes-validate brings the Kubernetes schemas, and jsonschema and referencing with it.
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is not installed (pip install kubernetes-validate)"
)
jsonschema = pytest.importorskip("jsonschema")
referencing = pytest.importorskip("referencing")

LOCUST = str(Path(sys.executable).with_name("locust"))
DEFS = "/api/_definitions.json#/$defs/"


def strings() -> dict[str, Any]:
    return {"type": "object", "additionalProperties": {"type": "string"}}


def resources() -> dict[str, Any]:
    return {
        "allOf": [
            {"$ref": DEFS + "io.k8s.api.core.v1.ResourceRequirements"},
            {"propertyNames": {"enum": ["requests", "limits"]}},
        ]
    }


def role() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {"labels": strings(), "annotations": strings(), "resources": resources()},
    }


LOCUSTTEST_SPEC: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://kubernetes.io/api/locusttest/locust.io/v1",
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "locust.io/v1"},
        "kind": {"const": "LocustTest"},
        "metadata": {"$ref": DEFS + "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
        "spec": {
            "type": "object",
            "required": ["workers"],
            "additionalProperties": False,
            "properties": {
                "image": {"type": "string", "minLength": 1},
                "imagePullPolicy": {"enum": ["IfNotPresent", "Always", "Never"]},
                "imagePullSecrets": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {"name": {"type": "string"}},
                    },
                },
                "workers": {"type": "integer", "minimum": 1},
                "args": {"type": "string"},
                "env": {
                    "type": "array",
                    "items": {
                        "allOf": [
                            {"$ref": DEFS + "io.k8s.api.core.v1.EnvVar"},
                            # The operator's env takes a value, not valueFrom.
                            {"additionalProperties": False, "properties": {"name": {}, "value": {}}},
                        ]
                    },
                },
                "locustfile": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "content": {"type": "string"},
                        "configMap": {
                            "type": "object",
                            "required": ["name"],
                            "additionalProperties": False,
                            "properties": {"name": {"type": "string"}, "key": {"type": "string"}},
                        },
                    },
                    "oneOf": [{"required": ["content"]}, {"required": ["configMap"]}],
                },
                "labels": strings(),
                "annotations": strings(),
                "master": role(),
                "worker": role(),
                "metrics": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"intervalSeconds": {"type": "integer"}},
                },
            },
        },
    },
}


def locusttest() -> dict[str, Any]:
    docs = documents(OPERATOR / "locusttest.yaml")
    assert len(docs) == 1 and docs[0]["kind"] == "LocustTest"
    return docs[0]


def kubernetes_definitions() -> Any:
    version = documented_kubernetes_version()
    schema = kubernetes_validate.utils.schema_contents(
        f"kubernetes-json-schema/v{version}.0-local-strict/_definitions.json", version
    )
    return referencing.Resource.from_contents(schema)


def test_the_locusttest_matches_the_documented_spec_and_kubernetes_types() -> None:
    registry = referencing.Registry().with_resources(
        [
            ("https://kubernetes.io/api/_definitions.json", kubernetes_definitions()),
            (LOCUSTTEST_SPEC["$id"], referencing.Resource.from_contents(LOCUSTTEST_SPEC)),
        ]
    )
    validator = jsonschema.Draft202012Validator(LOCUSTTEST_SPEC, registry=registry)
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(locusttest())]
    assert not errors, errors


def test_the_documented_spec_rejects_what_the_operator_would_not_take() -> None:
    # The schema above is only worth what it refuses.
    registry = referencing.Registry().with_resources(
        [("https://kubernetes.io/api/_definitions.json", kubernetes_definitions())]
    )
    validator = jsonschema.Draft202012Validator(LOCUSTTEST_SPEC, registry=registry)
    for broken in (
        {"replicas": 4},  # a typo of workers
        {"workers": 0},
        {"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]},
        {"worker": {"resources": {"requests": {"cpu": "1"}, "claims": []}}},
        {"args": ["--headless"]},  # a string in this CRD, not a list
    ):
        bad = locusttest()
        bad["spec"] = {**bad["spec"], **broken}
        if "replicas" in broken:
            del bad["spec"]["workers"]
        assert list(validator.iter_errors(bad)), broken


def test_the_locusttest_runs_the_projects_image_without_a_mounted_locustfile() -> None:
    spec = locusttest()["spec"]
    image = yaml.safe_load((K8S / "kustomization.yaml").read_text())["images"][0]
    assert spec["image"] == f"{image['newName']}:{image['newTag']}"
    # The image's LOCUST_LOCUSTFILE names the installed scenarios (checked in test_image.py).
    assert "locustfile" not in spec and "-f" not in shlex.split(spec["args"])
    assert locusttest()["metadata"]["namespace"] == "compliance-loadtest"


@pytest.mark.parametrize("role", ["master", "worker"])
def test_the_operators_command_lines_are_accepted_by_locust_with_the_library(role: str) -> None:
    spec = locusttest()["spec"]
    # What the operator runs: `--master ARGS` and `--worker --master-host <name>-master ARGS`.
    name = locusttest()["metadata"]["name"]
    prefix = ["--master"] if role == "master" else ["--worker", "--master-host", f"{name}-master"]
    env = {**os.environ, **{e["name"]: e["value"] for e in spec["env"]}}
    result = subprocess.run(
        [LOCUST, "-f", compliance_loadtest.locustfile_path(), *prefix, *shlex.split(spec["args"]), "--list"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ComplianceUser" in result.stdout


def test_the_locusttests_profile_and_environment_are_the_librarys() -> None:
    spec = locusttest()["spec"]
    args = shlex.split(spec["args"])
    load_profile(args[args.index("--load-profile") + 1])
    # The environment variables of the library's options, read from the module that registers them (importing
    # it would import Locust, which patches this process with gevent).
    tree = ast.parse((Path(compliance_loadtest.__file__ or "").parent / "plugin" / "options.py").read_text())
    known = {
        k.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for k in node.keywords
        if k.arg == "env_var" and isinstance(k.value, ast.Constant)
    }
    assert {e["name"] for e in spec["env"]} <= known, known


def test_the_locusttest_against_the_charts_published_crd() -> None:
    path = os.environ.get("LOCUSTTEST_CRD")
    if not path:
        pytest.skip(
            "the chart's CRD (locustio/k8s-operator, charts/locust-operator/crds/locusttest.yaml) cannot be "
            "fetched here: set LOCUSTTEST_CRD to a copy of it to validate against it"
        )
    crd = yaml.safe_load(Path(path).read_text())
    resource = locusttest()
    group, version = resource["apiVersion"].split("/")
    assert crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == resource["kind"]
    served = {v["name"]: v for v in crd["spec"]["versions"] if v.get("served")}
    schema = served[version]["schema"]["openAPIV3Schema"]
    errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(resource)]
    assert not errors, errors
    assert not pruned(resource["spec"], schema["properties"]["spec"]), "fields the API server would drop"


def pruned(value: Any, schema: dict[str, Any], where: str = "spec") -> list[str]:
    """Fields of `value` a structural schema does not declare (the API server drops them)."""
    if isinstance(value, dict) and "properties" in schema:
        out = [f"{where}.{k}" for k in value if k not in schema["properties"]]
        for k, v in value.items():
            if k in schema["properties"]:
                out += pruned(v, schema["properties"][k], f"{where}.{k}")
        return out
    if isinstance(value, list) and "items" in schema:
        return [p for i, v in enumerate(value) for p in pruned(v, schema["items"], f"{where}[{i}]")]
    return []
