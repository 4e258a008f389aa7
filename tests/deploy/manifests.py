"""Reading the deployment files as the tools that apply them would: every YAML document under
deploy/kubernetes/, the Kubernetes version docs/distributed.md promises, linters found on this machine."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
GATE = K8S / "gate"
OPERATOR = K8S / "operator"
DOC = ROOT / "docs" / "distributed.md"
DOCKERFILE = ROOT / "Dockerfile"

Manifest = dict[str, Any]


def documented_kubernetes_version() -> str:
    """The `major.minor` docs/distributed.md says the manifests are validated against."""
    found = re.search(r"validated against the schemas of Kubernetes (\d+\.\d+)", DOC.read_text())
    assert found, f"{DOC} does not say which Kubernetes version the manifests are validated against"
    return found.group(1)


def manifest_files() -> list[Path]:
    """Every manifest under deploy/kubernetes/, kustomizations excluded."""
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def documents(path: Path) -> list[Manifest]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def find(folder: Path, kind: str, name: str) -> Manifest:
    for path in sorted(folder.glob("*.yaml")):
        for doc in documents(path):
            if doc.get("kind") == kind and doc["metadata"]["name"] == name:
                return doc
    raise AssertionError(f"no {kind} {name} in {folder}")


def pod_spec(workload: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = (
        workload["spec"]["template"]["spec"] if workload["kind"] != "Pod" else workload["spec"]
    )
    return spec


def container(workload: Manifest, name: str) -> dict[str, Any]:
    spec = pod_spec(workload)
    for c in [*spec.get("initContainers", []), *spec["containers"]]:
        if c["name"] == name:
            found: dict[str, Any] = c
            return found
    raise AssertionError(f"{workload['kind']} {workload['metadata']['name']} has no container {name}")


def dockerfile_instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def dockerfile_env(name: str) -> str:
    for line in dockerfile_instructions():
        found = re.match(rf"ENV .*\b{re.escape(name)}=(\S+)", line)
        if found:
            return found.group(1)
    raise AssertionError(f"the Dockerfile sets no {name}")


def tool(name: str) -> str | None:
    """A command-line tool: next to this Python (the virtualenv's bin, where pip puts it) or on PATH."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else shutil.which(name)
