"""The command line: `seed` builds a data set with progress and prints a login that works against `serve`;
`serve` refuses remote hosts and bad settings with exit code 2, binds port 0 and writes its ready file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.backend.clients import User
from tests.backend_process import FAST_SETTINGS, Backend, postgres_schema, run_backend

ENV = {**os.environ, **FAST_SETTINGS}


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reference_backend", *args],
        capture_output=True,
        text=True,
        env=env or ENV,
        timeout=timeout,
    )


def _seed_and_use(tmp_path: Path, url: str, db_arg: str) -> None:
    done = run_cli(
        "seed",
        "--database-url",
        url,
        "--orgs",
        "3",
        "--users-per-org",
        "2",
        "--evidence",
        "2500",
        "--seed",
        "7",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["organizations"], result["users"], result["evidence"]) == (3, 6, 2500)
    assert "evidence" in done.stderr and "100.0%" in done.stderr  # the progress bar reached the end
    with run_backend(tmp_path, database_url=db_arg) as b:
        status, tokens = b.request(
            "POST", "/api/auth/login", {"email": result["email"], "password": result["password"]}
        )
        assert status == 200
        user = User(b, result["email"], "", result["organization_id"], tokens["access_token"], "")
        assert (
            user.ok("GET", "/api/evidence/stats")["total_evidence_items"] == 834
        )  # 2500 over 3 orgs: 834, 833, 833
        assert user.ok("GET", "/api/evidence/search?q=access+review")["total_count"] > 0
        assert user.ok("GET", "/api/evidence?framework=GDPR")["total_count"] > 0
    again = run_cli("seed", "--database-url", url, "--orgs", "1", "--evidence", "1", "--seed", "7")
    assert again.returncode == 2 and "already holds data of seed 7" in again.stderr


def test_seed_sqlite_then_serve_and_log_in(tmp_path: Path) -> None:
    path = tmp_path / "seeded.sqlite3"
    _seed_and_use(tmp_path, str(path), str(path))


@pytest.mark.postgres
def test_seed_postgres_then_serve_and_log_in(tmp_path: Path) -> None:
    with postgres_schema() as url:
        _seed_and_use(tmp_path, url, url)


def test_serve_refuses_remote_host_and_bad_settings() -> None:
    remote = run_cli("serve", "--host", "0.0.0.0", "--port", "0")
    assert remote.returncode == 2 and "--allow-remote" in remote.stderr
    bad = run_cli("serve", "--port", "0", env={**ENV, "CGPT_RATE_LIMIT": "lots"})
    assert bad.returncode == 2 and "CGPT_RATE_LIMIT" in bad.stderr
    bad = run_cli("serve", "--port", "0", env={**ENV, "CGPT_FAULTS": '[{"path": "/x", "error_rate": 5}]'})
    assert bad.returncode == 2 and "error_rate" in bad.stderr
    assert run_cli("seed").returncode == 2


def test_port_zero_ready_file_and_demo_data(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reference_backend",
            "serve",
            "--port",
            "0",
            "--ready-file",
            str(ready),
            "--demo-data",
            "--demo-evidence",
            "50",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "backend did not start"
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        assert info["pid"] == proc.pid and info["url"].startswith("http://127.0.0.1:")
        assert info["database_url"].startswith("sqlite:///")
        b = Backend(info["url"], proc, None, tmp_path / "none.log")
        status, tokens = b.request(
            "POST", "/api/auth/login", {"email": "demo@example.com", "password": "demo-password-123"}
        )
        assert status == 200
        status, stats = b.request("GET", "/api/evidence/stats", token=tokens["access_token"])
        assert stats["total_evidence_items"] == 50
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert f"Reference backend ready at {info['url']}" in out
    assert "Demo user: demo@example.com" in out
