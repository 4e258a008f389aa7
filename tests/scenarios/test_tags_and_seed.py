"""Tags select slices of the workflows (`-T`/`-E`) and reach the exact record; `--scenario-seed`
reproduces every simulated user's data."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from compliance_loadtest.api import Api
from tests.backend_process import Backend
from tests.scenarios.locust_run import locust, stats_of

API = Api()
AUTH = {API.name("auth.register"), API.name("auth.login")}


def test_tag_selects_only_the_bulk_tasks(scenario_backend: Backend, tmp_path: Path) -> None:
    args = [
        "-f",
        "locust_scenarios",
        "--headless",
        "-u",
        "2",
        "-r",
        "2",
        "-t",
        "3s",
        "--host",
        scenario_backend.url,
    ]
    args += [
        "-T",
        "bulk",
        "--csv",
        str(tmp_path / "run"),
        "--run-dir",
        str(tmp_path / "dir"),
        "StressTestUser",
    ]
    proc = locust(args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = {name for (_method, name), (n, _f) in stats_of(proc).rows.items() if n}
    assert names - AUTH == {API.name("evidence.bulk_create"), API.name("evidence.bulk_update")}
    record = pd.read_parquet(tmp_path / "dir" / "requests")
    bulk = record[record["name"] == API.name("evidence.bulk_create")]
    assert len(bulk) > 0
    assert set(bulk["tags"]) == {"bulk,write"}
    assert set(bulk["user_class"]) == {"StressTestUser"}


def test_excluding_write_leaves_only_reads(scenario_backend: Backend, tmp_path: Path) -> None:
    args = [
        "-f",
        "locust_scenarios",
        "--headless",
        "-u",
        "2",
        "-r",
        "2",
        "-t",
        "3s",
        "--host",
        scenario_backend.url,
    ]
    proc = locust([*args, "-E", "write", "--csv", str(tmp_path / "run"), "StressTestUser"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {key: counts for key, counts in stats_of(proc).rows.items() if key[1] not in AUTH}
    assert rows
    assert {method for method, _name in rows} == {"GET"}


SEED_PROBE = """
import json
from locust import constant, task
from locust_scenarios import ApiUser


class SeedProbeUser(ApiUser):
    wait_time = constant(1)

    def on_start(self):
        with open(OUT, "a") as f:
            f.write(json.dumps([self.rng.random(), self.fake.name(), self.fake.sentence()]) + "\\n")

    @task
    def idle(self):
        pass
"""


def seeded_users(tmp_path: Path, name: str, *seed_args: str) -> tuple[list[str], str]:
    out = tmp_path / f"{name}.jsonl"
    probe = tmp_path / f"{name}_probe.py"
    probe.write_text(f"OUT = {str(out)!r}\n{SEED_PROBE}")
    args = ["-f", str(probe), "--headless", "-u", "3", "-r", "10", "-t", "1s", "--host", "http://127.0.0.1:9"]
    proc = locust([*args, *seed_args], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return sorted(out.read_text().splitlines()), proc.stderr


def test_the_same_seed_gives_every_user_the_same_data(tmp_path: Path) -> None:
    first, _ = seeded_users(tmp_path, "a", "--scenario-seed", "11")
    again, _ = seeded_users(tmp_path, "b", "--scenario-seed", "11")
    other, _ = seeded_users(tmp_path, "c", "--scenario-seed", "12")
    assert len(first) == 3 and len(set(first)) == 3  # users differ from one another
    assert first == again
    assert first != other


def test_an_unseeded_run_prints_the_seed_that_reproduces_it(tmp_path: Path) -> None:
    first, log = seeded_users(tmp_path, "a")
    match = re.search(r"pass --scenario-seed (\d+) to reproduce", log)
    assert match, log[-2000:]
    again, _ = seeded_users(tmp_path, "b", "--scenario-seed", match.group(1))
    assert first == again
