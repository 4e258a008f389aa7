"""The one launcher of the reference backend (`compliance_loadtest.backend`), which the suite, the
embedded backend, the tests and the benchmarks start it with: it serves on loopback, its database URL
is in its environment and not its command line, a start that fails says why with the end of its log,
and nothing it started outlives it."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import psutil
import pytest

from compliance_loadtest.backend import launch_backend
from compliance_loadtest.errors import BackendStartError, exit_code_for

FAST = {"CGPT_LLM_FIRST_TOKEN_MS": "0", "CGPT_LLM_TOKEN_MS": "0"}


def test_it_serves_on_loopback_with_the_database_in_its_environment_not_its_argv(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'own.db'}"
    with launch_backend(data_dir=tmp_path / "data", database_url=database_url, settings=FAST) as backend:
        assert backend.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{backend.url}/ready", timeout=5) as resp:
            assert resp.status == 200
        server = psutil.Process(backend.pid)
        assert database_url not in " ".join(server.cmdline())
        assert server.environ()["CGPT_DATABASE_URL"] == database_url
        assert backend.database_url == database_url
        ready = json.loads((tmp_path / "data" / "ready.json").read_text())
        assert ready["url"] == backend.url and ready["pid"] == backend.pid
    assert backend.process.returncode is not None, "leaving the block stops it"
    assert (tmp_path / "own.db").exists()


def test_without_a_data_dir_it_keeps_sqlite_in_a_folder_it_removes_when_it_stops() -> None:
    backend = launch_backend(settings=FAST)
    database = Path(backend.database_url.removeprefix("sqlite:///"))
    assert database.exists()
    backend.stop()
    backend.stop()  # a second stop does nothing
    assert not database.parent.exists()


def test_a_backend_that_exits_early_is_an_error_carrying_its_log(tmp_path: Path) -> None:
    with pytest.raises(BackendStartError, match=r"exited with code 2 before it was ready") as caught:
        launch_backend(data_dir=tmp_path, extra_args=("--no-such-option",))
    message = str(caught.value)
    assert f"end of its log ({tmp_path / 'backend.log'})" in message
    assert "unrecognized arguments: --no-such-option" in message
    assert exit_code_for(caught.value) == 1


def test_one_not_ready_in_time_is_stopped_and_reported(tmp_path: Path) -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(BackendStartError, match=r"was not ready after 0 s; end of its log"):
        launch_backend(data_dir=tmp_path, ready_timeout=0.0)
    assert {p.pid for p in psutil.Process().children(recursive=True)} == before


def test_what_the_check_hook_raises_while_waiting_stops_the_backend_and_propagates(tmp_path: Path) -> None:
    started: list[int] = []
    before = {p.pid for p in psutil.Process().children()}  # backends other tests of the session keep

    def interrupted() -> None:
        started.extend(p.pid for p in psutil.Process().children() if p.pid not in before)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        launch_backend(data_dir=tmp_path, check=interrupted)
    assert started, "the hook runs while the backend starts"
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in started)
