"""Every manifest under deploy/kubernetes/ is valid for the Kubernetes version docs/distributed.md
names (kubernetes-validate's bundled schemas, strict: an unknown field is an error, as a typo would
otherwise be dropped silently by the API server), each kustomization applies what its folder holds,
and the gated run's parts agree with each other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from analysis import load_thresholds
from compliance_loadtest.profiles import load_profile
from compliance_loadtest.suite.plan import CATEGORIES
from tests.deploy.manifests import (
    GATE,
    K8S,
    OPERATOR,
    ROOT,
    container,
    documented_kubernetes_version,
    documents,
    find,
    manifest_files,
    pod_spec,
)

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is not installed (pip install kubernetes-validate)"
)

# Kinds that are not Kubernetes' own: validated by tests/deploy/test_operator.py.
CUSTOM = {("locust.io/v1", "LocustTest")}


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_each_manifest_is_valid_for_the_documented_kubernetes_version(path: Path) -> None:
    version = documented_kubernetes_version()
    checked = 0
    for doc in documents(path):
        if (doc["apiVersion"], doc["kind"]) in CUSTOM:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            where = "/".join(map(str, e.path))
            raise AssertionError(
                f"{path}: {doc['kind']} {doc['metadata']['name']}: {where}: {e.message}"
            ) from None
        checked += 1
    assert checked or path.parent == OPERATOR, f"{path} holds no manifest"


@pytest.mark.parametrize("folder", [K8S, GATE, GATE / "fetch"], ids=lambda p: str(p.relative_to(ROOT)))
def test_each_kustomization_applies_its_folder_and_sets_the_image_its_containers_name(folder: Path) -> None:
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    on_disk = {p.name for p in folder.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == on_disk
    assert kustomization["namespace"] == "compliance-loadtest"
    images = {i["name"]: i for i in kustomization["images"]}
    names: set[str] = set()
    for name in on_disk:
        for doc in documents(folder / name):
            if doc["kind"] in ("Deployment", "Job", "Pod"):
                spec = pod_spec(doc)
                names |= {c["image"] for c in [*spec.get("initContainers", []), *spec["containers"]]}
    assert names and names <= set(images), (names, images)
    # Every kustomization sends the same image.
    base = yaml.safe_load((K8S / "kustomization.yaml").read_text())["images"]
    assert kustomization["images"] == base


def gate_parts() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    return (
        find(GATE, "Job", "compliance-loadtest-gate"),
        find(GATE, "Service", "compliance-loadtest-gate"),
        find(GATE, "Job", "compliance-loadtest-gate-workers"),
        find(GATE, "ConfigMap", "compliance-loadtest-gate"),
    )


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_the_gates_workers_find_the_master_and_are_as_many_as_it_waits_for() -> None:
    master, service, workers, _ = gate_parts()
    load = container(master, "load")["args"]
    worker = container(workers, "worker")["args"]
    assert option(worker, "--master-host") == service["metadata"]["name"]
    assert option(worker, "--master-port") == option(load, "--master-bind-port")
    assert [p["port"] for p in service["spec"]["ports"]] == [int(option(load, "--master-bind-port"))]
    assert service["spec"]["ports"][0]["targetPort"] == int(option(load, "--master-bind-port"))
    # The master's pod is initialising while it runs the load: the Service must route to it anyway.
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"].items() <= master["spec"]["template"]["metadata"]["labels"].items()
    assert (
        not service["spec"]["selector"].items() <= workers["spec"]["template"]["metadata"]["labels"].items()
    )
    expected = int(option(load, "--expect-workers"))
    assert workers["spec"]["parallelism"] == workers["spec"]["completions"] == expected


def test_the_gates_verdict_is_final_and_its_run_folder_is_kept() -> None:
    master, _, _, config = gate_parts()
    spec = master["spec"]
    assert spec["backoffLimit"] == 0 and pod_spec(master)["restartPolicy"] == "Never"
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    assert rules[1] == {"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": [0]}}
    # The load runs first (an init container), the analysis last: the pod ends with the verdict.
    assert [c["name"] for c in pod_spec(master)["initContainers"]] == ["load"]
    assert [c["name"] for c in pod_spec(master)["containers"]] == ["verdict"]
    volumes = {v["name"]: v for v in pod_spec(master)["volumes"]}
    claim = volumes["runs"]["persistentVolumeClaim"]["claimName"]
    assert find(GATE, "PersistentVolumeClaim", claim)
    fetch = find(GATE / "fetch", "Pod", "compliance-loadtest-fetch")
    assert pod_spec(fetch)["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim
    for name in ("load", "verdict"):
        c = container(master, name)
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        assert mounts == {"runs": "/runs", "config": "/config"}, name
        run_name = next(e for e in c["env"] if e["name"] == "RUN_NAME")
        assert run_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"  # one folder per pod
    assert volumes["config"]["configMap"]["name"] == config["metadata"]["name"]
    for env in container(master, "load")["env"]:
        ref = env["valueFrom"].get("configMapKeyRef")
        if ref:
            assert ref["name"] == config["metadata"]["name"] and ref["key"] in config["data"], ref


def test_the_gates_profile_and_thresholds_are_valid(tmp_path: Path) -> None:
    _, _, _, config = gate_parts()
    data = config["data"]
    for key in ("profile.yaml", "thresholds.yaml"):
        (tmp_path / key).write_text(data[key])
    shipped = {name for category in CATEGORIES for name in category.user_classes}
    profile = load_profile(str(tmp_path / "profile.yaml"), known_classes=shipped)
    assert profile.class_names() <= shipped
    assert load_thresholds(tmp_path / "thresholds.yaml").rules
    assert float(data["profile-time-scale"]) > 0
    assert data["host"].startswith("http")


def test_the_web_ui_master_serves_workers_on_5557_and_the_ui_on_8089() -> None:
    service = find(K8S, "Service", "compliance-loadtest-master")
    master = find(K8S, "Deployment", "compliance-loadtest-master")
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    assert ports == {"master": 5557, "web": 8089}
    assert master["spec"]["replicas"] == 1  # Locust has exactly one master
    assert service["spec"]["selector"] == master["spec"]["template"]["metadata"]["labels"]
    args = container(master, "master")["args"]
    assert "--master" in args and option(args, "--master-bind-port") == "5557"


def test_the_web_ui_workers_are_a_scalable_deployment_that_connects_to_the_master() -> None:
    worker = find(K8S, "Deployment", "compliance-loadtest-worker")
    args = container(worker, "worker")["args"]
    assert "--worker" in args
    assert option(args, "--master-host") == "compliance-loadtest-master"
    assert option(args, "--master-port") == "5557"
    assert worker["spec"]["replicas"] >= 1
    assert worker["spec"]["selector"]["matchLabels"] == worker["spec"]["template"]["metadata"]["labels"]
