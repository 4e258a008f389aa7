"""`locust -f locust_scenarios` loads every user class once, registers every option once, shadows no
module, and works from the repository root and, installed, from any folder."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import compliance_loadtest
from tests.backend_process import free_port
from tests.scenarios.locust_run import EXPECTED_USER_CLASSES, REPO, clean_env, locust, running_locust

OUR_OPTIONS = ("--scenario-seed", "--login-email", "--login-password", "--api-paths", "--allow-remote-host")


def listed_classes(stdout: str) -> list[str]:
    assert "Available Users:" in stdout, stdout
    return [line.strip() for line in stdout.split("Available Users:", 1)[1].splitlines() if line.strip()]


def test_list_from_the_repository_root_names_every_user_class_once() -> None:
    proc = locust(["-f", "locust_scenarios", "--list"], cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    names = listed_classes(proc.stdout)
    assert sorted(names) == sorted(set(names)), f"listed more than once: {names}"
    assert set(EXPECTED_USER_CLASSES) <= set(names), set(EXPECTED_USER_CLASSES) - set(names)
    assert "Traceback" not in proc.stderr and "Uncaught exception" not in proc.stderr, proc.stderr


def test_installed_package_loads_from_another_folder(tmp_path: Path) -> None:
    path = compliance_loadtest.locustfile_path()
    proc = locust(["-f", path, "--list"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert set(EXPECTED_USER_CLASSES) <= set(listed_classes(proc.stdout))
    assert "Traceback" not in proc.stderr, proc.stderr


def test_locust_conf_at_the_root_points_at_the_library() -> None:
    proc = locust(["--list"], cwd=REPO)  # no -f: locust.conf says where
    assert proc.returncode == 0, proc.stderr
    assert set(EXPECTED_USER_CLASSES) <= set(listed_classes(proc.stdout))


LOAD_LIKE_LOCUST = """
import json, sys
import locust.log
from locust import events
from locust.argument_parser import get_locustfiles_locally, get_parser, parse_locustfile_option
from locust.main import merge_locustfiles_content

wanted = json.loads(sys.argv[2])
sys.argv = ["locust", "-f", sys.argv[1]]
merge_locustfiles_content(get_locustfiles_locally(parse_locustfile_option()))
parser = get_parser()
ours = [
    f"{h.__module__}.{h.__qualname__}"
    for hook in (events.init_command_line_parser, events.init, events.quit, events.request, events.test_start)
    for h in hook._handlers
    if getattr(h, "__module__", "").startswith(("locust_scenarios", "compliance_loadtest"))
]
print(json.dumps({
    "options": {o: sum(o in a.option_strings for a in parser._actions) for o in wanted},
    "listeners": ours,
    "twice_imported": sorted(
        m for m in sys.modules
        if m.startswith("locust_scenarios.") and not m.rsplit(".", 1)[1].startswith("_")
    ),
    "listener_error": locust.log.unhandled_greenlet_exception,
}))
"""


def test_every_option_and_listener_is_registered_exactly_once() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD_LIKE_LOCUST,
            compliance_loadtest.locustfile_path(),
            json.dumps(OUR_OPTIONS),
        ],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["options"] == dict.fromkeys(OUR_OPTIONS, 1)
    assert report["listeners"], "no listener of the library registered"
    duplicated = {h for h in report["listeners"] if report["listeners"].count(h) > 1}
    assert not duplicated, duplicated
    assert report["twice_imported"] == [], "scenario files imported under a dotted name too"
    assert not report["listener_error"], proc.stderr
    assert "Uncaught exception" not in proc.stderr, proc.stderr


def test_no_scenario_file_shadows_a_standard_or_installed_module(tmp_path: Path) -> None:
    root = Path(compliance_loadtest.locustfile_path())
    names = sorted(p.stem for p in root.rglob("*.py") if not p.name.startswith("_"))
    assert names, "no scenario files found"
    # Look the names up from an unrelated folder, so only the standard library and installed
    # distributions can answer (the package's own folder is not on the path there).
    probe = (
        "import importlib.util, json, sys\n"
        "names = json.loads(sys.argv[1])\n"
        "found = [n for n in names if n in sys.stdlib_module_names or importlib.util.find_spec(n)]\n"
        "print(json.dumps(found))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(names)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=clean_env(),
        check=True,
    )
    assert json.loads(proc.stdout) == []


def test_class_picker_offers_every_user_class(tmp_path: Path) -> None:
    port = free_port()
    args = ["-f", "locust_scenarios", "--class-picker", "--web-host", "127.0.0.1", "--web-port", str(port)]
    # A --host, so nothing is started; the page is all this test reads.
    args += ["--host", "http://127.0.0.1:9"]
    with running_locust(args, tmp_path / "locust.log") as proc:
        page = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                    page = resp.read().decode()
                break
            except OSError:
                time.sleep(0.2)
        match = re.search(r'"available_user_classes":\s*(\[[^\]]*\])', page)
        assert match, page[:2000] or (tmp_path / "locust.log").read_text()
        offered = json.loads(match.group(1))
        assert set(EXPECTED_USER_CLASSES) <= set(offered)
        assert len(offered) == len(set(offered))
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail("locust did not stop on SIGINT")


DOCSTRINGS = """
import inspect, json, sys
from locust.argument_parser import get_locustfiles_locally, parse_locustfile_option
from locust.main import merge_locustfiles_content

sys.argv = ["locust", "-f", sys.argv[1]]
users, *_ = merge_locustfiles_content(get_locustfiles_locally(parse_locustfile_option()))
print(json.dumps({name: inspect.cleandoc(cls.__doc__ or "") for name, cls in users.items()}))
"""


def test_every_user_class_explains_its_workflow_in_one_paragraph() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", DOCSTRINGS, compliance_loadtest.locustfile_path()],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(EXPECTED_USER_CLASSES) <= set(docs)
    for name, doc in docs.items():
        blocks = [b for b in doc.split("\n\n") if b.strip()]
        # A summary line, then one paragraph: the workflow, the endpoints, why the weights.
        assert 1 <= len(blocks) <= 2, f"{name}: {len(blocks)} paragraphs"
        assert len(doc) >= 200, f"{name}: docstring too short to explain its workflow"
