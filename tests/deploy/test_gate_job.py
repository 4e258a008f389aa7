"""The gated Job's command lines are docs/distributed.md's, and they work: run as the pod would run them
(`load`, then `verdict`, the workers beside), on loopback, their exit code is the run's verdict.

Kubernetes expands `$(VAR)` in a container's args from its env; the test does the same with the values
a pod would get (its name, the ConfigMap's keys), with /config holding the ConfigMap's files and /runs a
folder of its own.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import compliance_loadtest
from tests.backend_process import Backend, free_port
from tests.deploy.manifests import GATE, container, dockerfile_env, find
from tests.distributed.documented import Command, documented
from tests.distributed.hosts import read, stop

LOCUST = str(Path(sys.executable).with_name("locust"))
IMAGE_ENTRYPOINT = ("locust",)
POD_NAME = "compliance-loadtest-gate-t3st1"


def gate() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    return (
        find(GATE, "Job", "compliance-loadtest-gate"),
        find(GATE, "Job", "compliance-loadtest-gate-workers"),
        find(GATE, "ConfigMap", "compliance-loadtest-gate"),
    )


def command_of(c: dict[str, Any]) -> Command:
    """A container's command line: its `command` (or the image's entrypoint) and `args`."""
    program = tuple(c.get("command", IMAGE_ENTRYPOINT))
    return Command.parse([*program, *c["args"]], program)


def test_the_jobs_commands_are_the_documented_ones() -> None:
    master, workers, _ = gate()
    load = command_of(container(master, "load"))
    verdict = command_of(container(master, "verdict"))
    worker = command_of(container(workers, "worker"))
    # The image gives `-f`: its LOCUST_LOCUSTFILE is the installed scenarios.
    assert dockerfile_env("LOCUST_LOCUSTFILE").endswith("/site-packages/locust_scenarios")
    master_doc = documented("master-command")
    assert load.program == master_doc.program and load.names() == [n for n in master_doc.names() if n != "-f"]
    worker_doc = documented("worker-command")
    assert worker.program == worker_doc.program
    assert worker.names() == [n for n in worker_doc.names() if n != "-f"]
    analysis_doc = documented("analysis-command")
    assert verdict.program == analysis_doc.program and verdict.names() == analysis_doc.names()
    # The run folder, and where Locust's own files and the reports go in it, as the docs lay them out.
    run = load.value("--run-dir")
    assert verdict.positional == (run,) and verdict.value("--out") == f"{run}/report"
    for name, suffix in (("--csv", "/locust"), ("--json-file", "/locust"), ("--html", "/locust.html")):
        assert load.value(name) == f"{run}{suffix}", name
        assert master_doc.value(name) == f"{master_doc.value('--run-dir')}{suffix}", name
    assert load.value("--exit-code-on-error") == "0"
    assert load.value("--load-profile") == "/config/profile.yaml"
    assert verdict.value("--thresholds") == "/config/thresholds.yaml"


def expand(words: list[str], env: Mapping[str, str], paths: Mapping[str, Path]) -> list[str]:
    """`$(VAR)` as Kubernetes expands it, then the pod's mount points as folders of this machine."""
    out = []
    for word in words:
        word = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env[m.group(1)], word)
        for mount, folder in paths.items():
            if word == mount or word.startswith(mount + "/"):
                word = str(folder) + word[len(mount) :]
        out.append(word)
    return out


def pod_env(c: dict[str, Any], config: dict[str, Any], target: str) -> dict[str, str]:
    """What the pod's env would hold: its name and address (loopback here), the ConfigMap's keys; the
    target is the test's."""
    env: dict[str, str] = {}
    pod = {"metadata.name": POD_NAME, "status.podIP": "127.0.0.1"}
    for var in c.get("env", []):
        source = var["valueFrom"]
        if "fieldRef" in source:
            env[var["name"]] = pod[source["fieldRef"]["fieldPath"]]
        else:
            env[var["name"]] = config["data"][source["configMapKeyRef"]["key"]]
    env["TARGET_HOST"] = target
    return env


@pytest.mark.slow
def test_the_jobs_commands_run_and_the_pods_exit_status_is_the_verdict(
    backend: Backend, tmp_path: Path
) -> None:
    master, workers_job, config = gate()
    paths = {"/config": tmp_path / "config", "/runs": tmp_path / "runs"}
    for folder in paths.values():
        folder.mkdir()
    for key in ("profile.yaml", "thresholds.yaml"):
        (paths["/config"] / key).write_text(config["data"][key])
    library = compliance_loadtest.locustfile_path()
    port = str(free_port())
    workers = 2  # the Job's four would only crowd this machine's two cores

    load = container(master, "load")
    env = pod_env(load, config, backend.url)
    # Squeeze the ConfigMap's four-minute profile to about seven seconds.
    env["PROFILE_TIME_SCALE"] = "0.03"
    master_argv = (
        Command.parse(["locust", *expand(load["args"], env, paths)])
        .but(
            {"--expect-workers": str(workers), "--expect-workers-max-wait": "60", "--master-bind-port": port},
            add=("-f", library),
        )
        .argv(program=(LOCUST,))
    )
    worker = container(workers_job, "worker")
    worker_argv = (
        Command.parse(["locust", *worker["args"]])
        .but({"--master-host": "127.0.0.1", "--master-port": port}, add=("-f", library))
        .argv(program=(LOCUST,))
    )
    logs = [tmp_path / "load.log", *(tmp_path / f"worker-{i}.log" for i in range(workers))]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for argv, log in zip([master_argv, *[worker_argv] * workers], logs, strict=True):
            with log.open("wb") as out:
                processes.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path))
        load_code = processes[0].wait(timeout=120)
        worker_codes = [p.wait(timeout=30) for p in processes[1:]]
    finally:
        for p in processes:
            stop(p)
    everything = "\n".join(f"--- {log.name}\n{read(log)}" for log in logs)
    assert load_code == 0, everything
    assert worker_codes == [0] * workers, everything

    run = paths["/runs"] / POD_NAME
    info = json.loads((run / "run.json").read_text())
    assert len(info["workers"]["seen"]) == workers and info["workers"]["lost"] == [], info["workers"]
    assert info["options"]["scenario_seed"] == config["data"]["scenario-seed"]
    assert info["load_profile"] == str(paths["/config"] / "profile.yaml")

    verdict = container(master, "verdict")
    verdict_env = pod_env(verdict, config, backend.url)
    judged = subprocess.run(
        [sys.executable, *expand([*verdict["command"], *verdict["args"]], verdict_env, paths)[1:],
         "--no-step-summary"],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    report = json.loads(next((run / "report").glob("performance_report_*.json")).read_text())
    assert judged.returncode == report["verdict"]["exit_code"], judged.stdout + judged.stderr
    # The ConfigMap's thresholds hold for the reference backend at this small load.
    assert judged.returncode == 0, judged.stdout + judged.stderr
    assert {"html", "md", "xml", "json"} <= {p.suffix.lstrip(".") for p in (run / "report").iterdir()}
