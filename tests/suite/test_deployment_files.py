"""The files that deploy and schedule the suite elsewhere parse, and say what the suite needs.

They are not run here (no cluster, no Docker engine, no GitHub runner): these tests read them as the
tools would and check the fields a typo would break.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"


def documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return docs


def find(kind: str, component: str | None = None) -> dict[str, Any]:
    for doc in documents():
        labels = doc.get("metadata", {}).get("labels", {})
        if doc["kind"] == kind and (
            component is None or labels.get("app.kubernetes.io/component") == component
        ):
            return doc
    raise AssertionError(f"no {kind} for {component} in {K8S}")


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    only: dict[str, Any] = containers[0]
    return only


def test_every_manifest_parses_and_kustomize_lists_them_all() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    for doc in documents():
        assert {"apiVersion", "kind"} <= doc.keys()
        if doc["kind"] != "Kustomization":
            assert doc["metadata"]["name"]


def test_the_master_service_exposes_the_worker_port_5557_and_the_web_ui() -> None:
    service = find("Service", "master")
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert ports["master"]["port"] == 5557
    assert ports["web"]["port"] == 8089
    master = find("Deployment", "master")
    assert master["spec"]["replicas"] == 1
    assert service["spec"]["selector"] == master["spec"]["template"]["metadata"]["labels"]
    args = container(master)["args"]
    assert "--master" in args
    assert args[args.index("--master-bind-port") + 1] == "5557"


def test_workers_are_a_scalable_deployment_that_connects_to_the_master_service() -> None:
    worker = find("Deployment", "worker")
    args = container(worker)["args"]
    assert "--worker" in args
    assert args[args.index("--master-host") + 1] == find("Service", "master")["metadata"]["name"]
    assert args[args.index("--master-port") + 1] == "5557"
    assert worker["spec"]["replicas"] >= 1
    assert worker["spec"]["selector"]["matchLabels"] == worker["spec"]["template"]["metadata"]["labels"]


def test_master_and_workers_run_the_projects_image() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    image_names = {i["name"] for i in kustomization["images"]}
    for component in ("master", "worker"):
        assert container(find("Deployment", component))["image"] in image_names


def test_the_dockerfile_installs_the_project_on_python_311_slim_with_locust_as_entrypoint() -> None:
    lines = [ln.strip() for ln in (ROOT / "Dockerfile").read_text().splitlines() if ln.strip()]
    instructions = [ln for ln in lines if not ln.startswith("#")]
    assert instructions[0] == "FROM python:3.11-slim"
    assert any(ln.startswith("RUN pip install") and '".[postgres]"' in ln for ln in instructions)
    assert 'ENTRYPOINT ["locust"]' in instructions
    locustfile = next(ln for ln in instructions if "LOCUST_LOCUSTFILE=" in ln)
    assert locustfile.endswith("/site-packages/locust_scenarios")
    # every package the pyproject installs is copied into the image
    for folder in ("locust_scenarios", "profiles", "analysis", "reference_backend"):
        assert any(ln.startswith(f"COPY {folder} ") for ln in instructions), folder
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".git" in ignored and "runs" in ignored


def test_the_workflow_is_scheduled_and_manual_and_runs_the_suite_with_workers_and_a_profile() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "performance.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert triggers["schedule"][0]["cron"]
    assert "workflow_dispatch" in triggers
    job = workflow["jobs"]["performance"]
    assert job["services"]["postgres"]["image"].startswith("postgres:")
    assert "5432:5432" in job["services"]["postgres"]["ports"]
    steps = job["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "pip install '.[postgres]'" in runs
    suite = next(s for s in steps if "compliance-loadtest" in s.get("run", ""))
    assert "--load-profile" in suite["run"] and "--workers" in suite["run"]
    assert "--baseline" in suite["run"]
    assert "postgresql://" in job["env"]["CGPT_BACKEND_DATABASE_URL"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()"
    # The analysis appends its Markdown report to $GITHUB_STEP_SUMMARY (it is set on every runner); a
    # step of the workflow's own says so when no report was written.
    summary = next(s for s in steps if "GITHUB_STEP_SUMMARY" in s.get("run", ""))
    assert summary["if"] == "always()" and "performance_report_*.md" in summary["run"]
    assert "--no-step-summary" not in suite["run"]
    assert any(s.get("uses", "").startswith("actions/cache/restore@") for s in steps)
