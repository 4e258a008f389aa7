"""Without --host the library starts the reference backend once (master or local process), shows its
URL, and stops it when Locust quits: at the run's end, on SIGTERM, on Ctrl-C, and if Locust is killed."""

from __future__ import annotations

import json
import re
import signal
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.backend_process import free_port
from tests.scenarios.locust_run import locust, running_locust, stats_from_json_file, stats_of

ANNOUNCE = re.compile(r"Embedded reference backend at (http://127\.0\.0\.1:\d+) \(pid (\d+)\)")


def announced(log: str) -> tuple[str, int]:
    found = ANNOUNCE.findall(log)
    assert len(found) == 1, f"expected one embedded backend, log says {found}:\n{log[-3000:]}"
    return found[0][0], int(found[0][1])


def gone(pid: int, within: float = 15.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def backends_below(pid: int) -> list[psutil.Process]:
    out = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "reference_backend" in " ".join(child.cmdline()):
                out.append(child)
        except psutil.NoSuchProcess:
            pass
    return out


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_headless_run_starts_serves_and_stops_the_backend(tmp_path: Path) -> None:
    args = ["-f", "locust_scenarios", "--headless", "-u", "2", "-r", "2", "-t", "4s", "--only-summary"]
    proc = locust([*args, "--csv", str(tmp_path / "run"), "ComplianceUser"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    _url, pid = announced(proc.stderr)
    assert gone(pid), "the embedded backend outlived the run"
    stats = stats_of(proc)
    # Each user's onboarding; its rare task of onboarding another organisation may add one more.
    assert stats.requests("POST", "/api/business-profiles") >= 2
    assert stats.total_failures == 0, stats.failures


def test_processes_share_one_backend_started_by_the_master(tmp_path: Path) -> None:
    args = ["-f", "locust_scenarios", "--headless", "--processes", "2", "-u", "4", "-r", "4", "-t", "5s"]
    args += ["--only-summary", "--json-file", str(tmp_path / "run"), "PeakTrafficScenario"]
    with running_locust(args, tmp_path / "locust.log") as proc:
        wait_for(lambda: bool(backends_below(proc.pid)), "the embedded backend")
        time.sleep(2)  # workers forked and running: none of them may start another
        assert len(backends_below(proc.pid)) == 1
        code = proc.wait(timeout=60)
    log = (tmp_path / "locust.log").read_text()
    assert code == 0, log[-3000:]
    _url, pid = announced(log)
    assert gone(pid)
    stats = stats_from_json_file(tmp_path / "run")
    assert stats.requests("GET", "/api/users/dashboard") > 0, "the forked workers did not reach the backend"
    assert stats.total_failures == 0, stats.failures


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_locust_stops_the_backend(tmp_path: Path, sig: signal.Signals) -> None:
    args = ["-f", "locust_scenarios", "--headless", "-u", "2", "-r", "2", "-t", "60s", "ComplianceUser"]
    log_path = tmp_path / "locust.log"
    with running_locust(args, log_path) as proc:
        wait_for(lambda: "All users spawned" in log_path.read_text(), "users to spawn")
        _url, pid = announced(log_path.read_text())
        proc.send_signal(sig)
        proc.wait(timeout=30)
    assert gone(pid), f"the embedded backend outlived Locust after {sig.name}"


def test_web_ui_shows_the_embedded_backend_as_host_and_stops_it(tmp_path: Path) -> None:
    port = free_port()
    args = ["-f", "locust_scenarios", "--web-host", "127.0.0.1", "--web-port", str(port)]
    log_path = tmp_path / "locust.log"
    with running_locust(args, log_path) as proc:
        wait_for(lambda: bool(ANNOUNCE.search(log_path.read_text())), "the embedded backend")
        url, pid = announced(log_path.read_text())
        page = ""

        def page_loaded() -> bool:
            nonlocal page
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                    page = resp.read().decode()
                return True
            except OSError:
                return False

        wait_for(page_loaded, "the web UI")
        assert f'"host": "{url}"' in page
        with urllib.request.urlopen(f"{url}/ready", timeout=5) as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert gone(pid)


def test_killed_locust_leaves_no_backend_behind(tmp_path: Path) -> None:
    args = ["-f", "locust_scenarios", "--headless", "-u", "1", "-r", "1", "-t", "60s", "ComplianceUser"]
    log_path = tmp_path / "locust.log"
    with running_locust(args, log_path) as proc:
        wait_for(lambda: bool(ANNOUNCE.search(log_path.read_text())), "the embedded backend")
        _url, pid = announced(log_path.read_text())
        proc.kill()
        proc.wait()
    assert gone(pid), "the backend survived SIGKILL of Locust"


def test_a_backend_that_cannot_start_ends_the_run_with_exit_1_its_log_and_no_password() -> None:
    # Port 1 on loopback: nothing listens, so the backend's start-up fails at once and it exits.
    unreachable = "postgresql://loadtest:s3cret-pw@127.0.0.1:1/none"
    args = ["-f", "locust_scenarios", "--headless", "-u", "1", "-r", "1", "-t", "5s", "ComplianceUser"]
    proc = locust([*args, "--backend-database-url", unreachable])
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "compliance scenarios: the reference backend exited with code" in proc.stderr
    assert "before it was ready; end of its log:" in proc.stderr
    assert "PostgreSQL is unreachable" in proc.stderr  # the end of the backend's own log
    assert "s3cret-pw" not in proc.stdout + proc.stderr
    assert not ANNOUNCE.search(proc.stderr)


def test_a_worker_never_starts_a_backend(tmp_path: Path) -> None:
    args = ["-f", "locust_scenarios", "--worker", "--master-port", str(free_port())]
    with running_locust(args, tmp_path / "locust.log") as proc:
        time.sleep(3)  # time to import the scenarios and try the master
        assert proc.poll() is None, (tmp_path / "locust.log").read_text()
        assert backends_below(proc.pid) == []
        assert not ANNOUNCE.search((tmp_path / "locust.log").read_text())


PROBE = """
import json, os
from locust import constant, task
from locust_scenarios import ApiUser
from compliance_loadtest.plugin.embedded import embedded_backend


class BackendProbeUser(ApiUser):
    wait_time = constant(0.5)

    def on_start(self):
        info = embedded_backend()
        with open(OUT, "a") as f:
            row = [os.getpid(), self.host, info and info.url, info and info.database_url]
            f.write(json.dumps(row) + "\\n")

    @task
    def ready(self):
        self.call("GET", "ops.ready")
"""


def test_forked_workers_know_the_embedded_backend_and_its_database(tmp_path: Path) -> None:
    out = tmp_path / "seen.jsonl"
    probe = tmp_path / "backend_probe.py"
    probe.write_text(f"OUT = {str(out)!r}\n{PROBE}")
    args = ["-f", str(probe), "--headless", "--processes", "2", "-u", "4", "-r", "4", "-t", "3s"]
    proc = locust(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    url, pid = announced(proc.stderr)
    assert gone(pid)
    seen = [json.loads(line) for line in out.read_text().splitlines()]
    assert len({worker_pid for worker_pid, *_ in seen}) == 2, seen  # both forked workers ran users
    assert {(host, info_url) for _, host, info_url, _ in seen} == {(url, url)}
    databases = {database for *_, database in seen}
    assert len(databases) == 1 and databases.pop().startswith("sqlite:///")
