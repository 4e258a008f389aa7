"""A master and two workers on three hosts of a real network (network namespaces, see hosts.py), the
reference backend on a fourth, run with the commands docs/distributed.md gives.

Each process listens on its own host's address only, and each host sees only its own folder and the
installed library: the load profile and the run folder
exist on the master's host alone, and a locustfile of the user's own is copied to every host, as the
docs say. The run folder must hold both workers' rows and the right verdict; a worker whose cable is
pulled mid-run, or that is killed, must make the run invalid (the analysis exits 3).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import compliance_loadtest
from compliance_loadtest import run_folder as rf
from tests.backend_process import FAST_SETTINGS
from tests.distributed.documented import documented
from tests.distributed.hosts import Network, read, stop, unavailable, wait_for_file

pytestmark = [pytest.mark.slow]

WHY_NOT = unavailable()
if WHY_NOT:
    pytestmark.append(pytest.mark.skip(reason=f"needs network namespaces: {WHY_NOT}"))

LOCUST = str(Path(sys.executable).with_name("locust"))
MASTER_PORT = 5557
BACKEND_PORT = 8000
SEED = "4242"
WORKERS = ("worker-1", "worker-2")

# A user's own locustfile, composed from the library: it names, as a measurement, the scenario seed its
# process runs with, so the record shows which seed each worker got.
SEED_PROBE = '''
from locust import constant, task

from locust_scenarios import ApiUser


class SeedProbeUser(ApiUser):
    """Reports the run's scenario seed as this process sees it, once a second."""

    wait_time = constant(1)

    @task
    def report_seed(self):
        seed = self.environment.parsed_options.scenario_seed
        self.environment.events.request.fire(
            request_type="PROBE", name=f"scenario seed {seed}", response_time=0.0, response_length=0,
            exception=None, context={"user_class": "SeedProbeUser"},
        )
'''

# Only on the master's host. Two short stages: two probes first (one on each worker), then a shipped
# user joins them.
PROFILE = """
description: Two probes, then four users, for a few seconds.
mix: {StressTestUser: 1, SeedProbeUser: 1}
stages:
  - {duration: 3, users: 2, spawn_rate: 2, mix: {SeedProbeUser: 1}}
  - {duration: 5, users: 4, spawn_rate: 4}
"""

# A threshold no backend meets: the same run must then fail.
IMPOSSIBLE = """
version: 1
rules:
  - id: impossible.mean
    description: "Every GET in under a microsecond"
    select: {request_type: GET}
    metric: mean
    op: "<"
    value: 0.001
"""


@dataclass
class Lan:
    """The network, with the reference backend serving on the `target` host."""

    net: Network
    backend: subprocess.Popen[bytes]
    backend_log: Path
    runs: int = 0
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def target_url(self) -> str:
        return f"http://{self.net['target'].address}:{BACKEND_PORT}"

    @property
    def master_address(self) -> str:
        return self.net["master"].address


@pytest.fixture(scope="module")
def lan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lan]:
    addresses = {"master": 10, "worker-1": 11, "worker-2": 12, "target": 20}
    net = Network(tmp_path_factory.mktemp("hosts"), addresses)
    net.up()
    backend: subprocess.Popen[bytes] | None = None
    try:
        target = net["target"]
        ready = target.home / "ready.json"
        log = target.home / "backend.log"
        backend = net.start(
            "target",
            [sys.executable, "-m", "reference_backend", "serve", "--host", target.address, "--allow-remote",
             "--port", str(BACKEND_PORT), "--ready-file", str(ready), "--demo-data"],
            log,
            env={**FAST_SETTINGS, "CGPT_DATABASE_URL": f"sqlite:///{target.home / 'backend.db'}"},
        )  # fmt: skip
        wait_for_file(ready, 60, backend, log)
        for name in ("master", *WORKERS):
            (net[name].home / "seed_probe.py").write_text(SEED_PROBE)
        (net["master"].home / "two-steps.yaml").write_text(PROFILE)
        lan = Lan(net, backend, log)
        yield lan
    finally:
        if backend is not None:
            stop(backend)
        net.down()


@pytest.fixture
def fresh(lan: Lan) -> Iterator[Lan]:
    """The network with every cable plugged in; whatever a test started is stopped after it."""
    for name in WORKERS:
        lan.net.plug(name)
    lan.runs += 1
    yield lan
    for process in lan.started:
        stop(process)
    lan.started.clear()


@dataclass
class Run:
    folder: Path
    master: subprocess.Popen[bytes]
    master_log: Path
    workers: dict[str, subprocess.Popen[bytes]]
    worker_logs: dict[str, Path]

    def logs(self) -> str:
        parts = [f"--- master\n{read(self.master_log)}"]
        parts += [f"--- {name}\n{read(log)}" for name, log in self.worker_logs.items()]
        return "\n".join(parts)

    def wait_master(self, timeout: float = 120) -> int:
        try:
            return self.master.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the master did not end within {timeout:.0f} s:\n{self.logs()}") from None

    def info(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.folder / rf.RUN_JSON).read_text())
        return data

    def recorded_workers(self) -> set[str]:
        """Workers with rows in the record parts written so far."""
        names: set[str] = set()
        for part in sorted((self.folder / rf.REQUESTS_DIR).glob(rf.PART_GLOB)):
            names |= set(pd.read_parquet(part, columns=["worker"])["worker"])
        return names


def start_run(
    lan: Lan,
    master: dict[str, str | None],
    *,
    drop: tuple[str, ...] = (),
    add: tuple[str, ...] = (),
    classes: tuple[str, ...] = (),
    files: tuple[str, ...] = (),
) -> Run:
    """The master and the workers with docs/distributed.md's commands, each on its own host: `master`
    gives the master's values, `files` names locustfiles of the user's own (in each host's home)."""
    net = lan.net
    master_home = net["master"].home
    folder = master_home / f"run-{lan.runs}"
    library = compliance_loadtest.locustfile_path()

    def locustfile(home: Path) -> str:
        return ",".join([library, *(str(home / f) for f in files)])

    master_command = documented("master-command").but(
        {
            "-f": locustfile(master_home),
            "--master-bind-host": lan.master_address,
            "--expect-workers": str(len(WORKERS)),
            "--expect-workers-max-wait": "60",
            "--host": lan.target_url,
            "--run-dir": str(folder),
            "--csv": str(folder / "locust"),
            "--json-file": str(folder / "locust"),
            "--html": str(folder / "locust.html"),
            **master,
        },
        drop=drop,
        add=add,
        positional=classes,
    )
    assert master_command.value("--master-bind-port") == str(MASTER_PORT)
    master_log = master_home / f"master-{lan.runs}.log"
    master_process = net.start("master", master_command.argv(program=(LOCUST,)), master_log)
    lan.started.append(master_process)
    workers: dict[str, subprocess.Popen[bytes]] = {}
    worker_logs: dict[str, Path] = {}
    for name in WORKERS:
        home = net[name].home
        worker_logs[name] = home / f"worker-{lan.runs}.log"
        worker_command = documented("worker-command").but(
            {"-f": locustfile(home), "--master-host": lan.master_address, "--master-port": str(MASTER_PORT)}
        )
        workers[name] = net.start(name, worker_command.argv(program=(LOCUST,)), worker_logs[name])
        lan.started.append(workers[name])
    return Run(folder, master_process, master_log, workers, worker_logs)


def analyse(folder: Path, thresholds: Path | None = None) -> subprocess.CompletedProcess[str]:
    """docs/distributed.md's analysis command; without `thresholds`, the shipped ones."""
    command = documented("analysis-command").but(
        {"--out": str(folder / "report")} | ({"--thresholds": str(thresholds)} if thresholds else {}),
        drop=() if thresholds else ("--thresholds",),
        add=("--report", "json", "--no-step-summary"),
        positional=(str(folder),),
    )
    return subprocess.run(
        command.argv(program=(sys.executable, "-m", "analysis")), capture_output=True, text=True, timeout=120
    )


def host_of(worker_id: str) -> str:
    """Locust names a worker `<hostname>_<hex>`."""
    return worker_id.rsplit("_", 1)[0]


def test_master_and_workers_on_separate_hosts_make_one_run_with_the_masters_profile_and_seed(
    fresh: Lan,
) -> None:
    master_home = fresh.net["master"].home
    run = start_run(
        fresh,
        {"--load-profile": str(master_home / "two-steps.yaml"), "--scenario-seed": SEED},
        add=("-t", "60s"),  # a cap, in case the profile's end went unnoticed
        files=("seed_probe.py",),
    )
    code = run.wait_master()
    worker_codes = {name: w.wait(timeout=30) for name, w in run.workers.items()}
    assert code == 0, run.logs()
    assert worker_codes == dict.fromkeys(WORKERS, 0), "the master's quit should end each worker normally"

    info = run.info()
    workers = info["workers"]
    assert workers["expected"] == 2 and workers["lost"] == [] and info["complete"] is True, workers
    assert sorted(host_of(w) for w in workers["seen"]) == list(WORKERS)
    assert all(n > 0 for n in workers["rows"].values()) and len(workers["rows"]) == 2, workers["rows"]
    assert info["host"] == fresh.target_url
    # The target is on another host: the master says so rather than sampling a process of its own.
    assert any("not on this machine's loopback" in note for note in info["notes"]), info["notes"]

    record = pd.read_parquet(run.folder / rf.REQUESTS_DIR)
    assert {host_of(w) for w in record["worker"]} == set(WORKERS)
    assert (record["worker"] == "master").sum() == 0  # a master runs no users
    # Only the profile's mix ran, though `-f` offers every shipped class: the profile read on the
    # master's host alone governed the workers.
    assert set(record["user_class"]) == {"StressTestUser", "SeedProbeUser"}
    # Each worker's users ran with the master's seed, not the one a worker draws for itself at start.
    probes = record[record["request_type"] == "PROBE"]
    assert set(probes["name"]) == {f"scenario seed {SEED}"}
    assert {host_of(w) for w in probes["worker"]} == set(WORKERS)

    passed = analyse(run.folder)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    failed = analyse(run.folder, write(master_home / "impossible.yaml", IMPOSSIBLE))
    assert failed.returncode == 1, failed.stdout + failed.stderr


@pytest.mark.parametrize("loss", ["cable pulled", "killed"])
def test_a_worker_lost_mid_run_makes_the_run_invalid(fresh: Lan, loss: str) -> None:
    run = start_run(
        fresh,
        {},
        drop=("--load-profile", "--profile-time-scale"),
        add=("-u", "4", "-r", "4", "-t", "12s"),
        classes=("StressTestUser",),
    )
    deadline = time.monotonic() + 60
    # Both workers' rows have reached the master before one of them goes.
    while {host_of(w) for w in run.recorded_workers()} != set(WORKERS):
        if time.monotonic() > deadline or run.master.poll() is not None:
            raise AssertionError(f"no rows from both workers:\n{run.logs()}")
        time.sleep(0.5)
    cut_at = time.monotonic()
    if loss == "cable pulled":
        fresh.net.unplug("worker-2")
    else:
        run.workers["worker-2"].kill()
    code = run.wait_master()
    assert code == 0, run.logs()  # --exit-code-on-error 0: the run happened; the analysis judges it
    ended_after = time.monotonic() - cut_at

    info = run.info()
    workers = info["workers"]
    lost = [w for w in workers["seen"] if host_of(w) == "worker-2"]
    assert workers["lost"] == lost and len(lost) == 1, (workers, run.logs())
    assert workers["lost_reasons"][lost[0]] in ("missing: no heartbeat", "no final report"), workers
    assert info["complete"] is False
    # What the lost worker sent before it went is kept, and the other worker went on.
    assert all(n > 0 for n in workers["rows"].values()), workers["rows"]
    assert run.workers["worker-1"].wait(timeout=30) == 0

    verdict = analyse(run.folder)
    assert verdict.returncode == 3, verdict.stdout + verdict.stderr
    report = json.loads(next((run.folder / "report").glob("*.json")).read_text())
    reasons = report["verdict"]["invalid_reasons"]
    assert any("lost" in reason and lost[0] in reason for reason in reasons), reasons
    assert ended_after < 60, f"the master took {ended_after:.0f} s to end after the loss"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
