"""The public API: what `from locust_scenarios import ...` gives, and that importing it wires the plugin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.library.locustfiles import MINE
from tests.scenarios.locust_run import REPO, clean_env
from tests.streaming.headless import run_locust, write_locustfile

EXPORTS = """
import json, types
import locust_scenarios as api

public = {n for n, v in vars(api).items() if not n.startswith("_") and n != "annotations"}
print(json.dumps({
    "all": sorted(api.__all__),
    "public": sorted(public),
    "missing": sorted(n for n in api.__all__ if not hasattr(api, n)),
    "private_modules": sorted(
        n for n in api.__all__
        if isinstance(getattr(api, n), types.ModuleType)
        and getattr(api, n).__name__.rsplit(".", 1)[-1].startswith("_")
    ),
}))
"""


def test_all_lists_exactly_what_the_package_exports() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", EXPORTS], cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["missing"] == []
    assert report["all"] == report["public"]
    assert report["private_modules"] == []
    for piece in ("ApiUser", "Api", "LoadProfileShape", "evidence", "search", "assistant", "ws_chat", "sql"):
        assert piece in report["all"]


SHAPE_ONLY = """
from locust import FastHttpUser, constant, task
from locust_scenarios import LoadProfileShape


class HealthUser(FastHttpUser):
    wait_time = constant(0.2)

    @task
    def health(self):
        self.client.get("/health")
"""

PROFILE = """
description: two users for two seconds, then one for one second
stages:
  - {duration: 2, users: 2, spawn_rate: 2}
  - {duration: 1, users: 1, spawn_rate: 2}
"""


def test_a_locustfile_that_imports_only_the_shape_gets_every_option_and_a_run_folder(tmp_path: Path) -> None:
    locustfile = write_locustfile(tmp_path, "shape_only", SHAPE_ONLY)
    profile = tmp_path / "short.yaml"
    profile.write_text(PROFILE)
    run = run_locust(
        locustfile, tmp_path, host=None, users=1, seconds=30, record=True,
        extra=["--load-profile", str(profile), "--scenario-seed", "7"],
    )  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    assert "unrecognized arguments" not in run.output
    assert "Load profile short" in run.output and "completed after" in run.output, run.output[-3000:]
    info = json.loads((run.run_dir / "run.json").read_text())
    assert info["complete"] is True and info["load_profile"] == str(profile)
    assert run.requests("GET", "/health") > 0
    assert len(run.record()) == run.requests("GET", "/health")


ARRIVAL = """
description: three iterations a second for two seconds
model: arrival
workflow: MineUser
max_users: 2
stages:
  - {duration: 2, rate: 3}
"""


@pytest.mark.parametrize("processes", [[], ["--processes", "2"]], ids=["one process", "two workers"])
def test_a_locustfile_that_imports_steps_but_not_the_shape_runs_its_profile(
    tmp_path: Path, processes: list[str]
) -> None:
    """Locust finds shape classes only among a locustfile's names: without the library's own shape,
    --load-profile was ignored and the run went on with one user until -t (forever without it)."""
    locustfile = write_locustfile(tmp_path, "mine", MINE)
    profile = tmp_path / "arrive.yaml"
    profile.write_text(ARRIVAL)
    run = run_locust(
        locustfile, tmp_path, host=None, users=1, seconds=60, record=True,
        extra=["--load-profile", str(profile), *processes],
    )  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    assert "Load profile arrive" in run.output and "completed after" in run.output, run.output[-3000:]
    assert "Shape test completed" in run.output  # the profile ended the run, not -t
    arrival = json.loads((run.run_dir / "arrival.json").read_text())
    assert arrival["stages"][0]["workflow"] == "MineUser"
    assert run.requests("GET", "/api/compliance/status") >= 3


OWN_SHAPE = (
    "from locust import LoadTestShape\n"
    + MINE
    + """

class TwoUsers(LoadTestShape):
    def tick(self):
        return (2, 2) if self.get_run_time() < 2 else None
"""
)


def test_a_profile_beside_a_shape_class_of_the_locustfiles_own_is_refused(tmp_path: Path) -> None:
    locustfile = write_locustfile(tmp_path, "own_shape", OWN_SHAPE)
    profile = tmp_path / "arrive.yaml"
    profile.write_text(ARRIVAL)
    run = run_locust(
        locustfile, tmp_path, host=None, users=1, seconds=30, extra=["--load-profile", str(profile)]
    )
    assert run.returncode == 2, run.output[-3000:]
    assert "the locustfile's shape class TwoUsers already shapes the run" in run.output
    assert "Traceback" not in run.output and run.stats == []


WIRING = """
import json, sys
import locust.log
from locust import events
from locust.argument_parser import get_locustfiles_locally, get_parser, parse_locustfile_option
from locust.main import merge_locustfiles_content

sys.argv = ["locust", "-f", sys.argv[1]]
user_classes, *_ = merge_locustfiles_content(get_locustfiles_locally(parse_locustfile_option()))
parser = get_parser()
ours = [
    f"{h.__module__}.{h.__qualname__}"
    for hook in (events.init_command_line_parser, events.init)
    for h in hook._handlers
    if getattr(h, "__module__", "").startswith("compliance_loadtest")
]
print(json.dumps({
    "run_dir_options": sum("--run-dir" in a.option_strings for a in parser._actions),
    "listeners": ours,
    "classes": sorted(user_classes),
}))
"""


def test_my_locustfile_next_to_the_library_folder_wires_the_plugin_once(tmp_path: Path) -> None:
    mine = write_locustfile(tmp_path, "mine", MINE)
    files = f"{mine},{REPO / 'locust_scenarios'}"
    command = [sys.executable, "-c", WIRING, files]
    proc = subprocess.run(command, cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["run_dir_options"] == 1
    assert report["listeners"] and len(report["listeners"]) == len(set(report["listeners"]))
    assert "MineUser" in report["classes"] and "ComplianceUser" in report["classes"]
