"""The reference backend for tests: the library's launcher (`compliance_loadtest.backend`) with fast
settings, plus a wait for `/ready` and a plain urllib client.

The backend runs in a subprocess, never in the test process: Locust's gevent patching and
uvicorn's asyncio do not share a process well (see ../DESIGN notes in the README).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from compliance_loadtest.backend import launch_backend
from compliance_loadtest.errors import BackendStartError

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

# Fast defaults for tests: no simulated model latency, quick report jobs.
FAST_SETTINGS = {
    "CGPT_LLM_FIRST_TOKEN_MS": "0",
    "CGPT_LLM_TOKEN_MS": "0",
    "CGPT_ADMIN": "1",
    "CGPT_REPORT_SECONDS": "0.5",
}


def sigint_default() -> None:
    """`preexec_fn` of a child that a test stops with SIGINT: a test run started in the background hands
    its children SIGINT ignored, and Python then never turns the signal into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Backend:
    url: str
    process: subprocess.Popen[bytes]
    database_url: str | None
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def request(
        self, method: str, path: str, body: object = None, token: str | None = None
    ) -> tuple[int, object]:
        """A plain urllib request, for test set-up and assertions outside Locust."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            status = exc.code
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextmanager
def run_backend(
    tmp_dir: Path,
    database_url: str | None = None,
    settings: Mapping[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
    ready_timeout: float = 60.0,
) -> Iterator[Backend]:
    """Run `python -m reference_backend serve` until the block ends; BackendStartError with its log if it
    does not serve, or its `/ready` does not answer 200, within `ready_timeout` seconds.

    Each backend gets a folder of its own in `tmp_dir` (ready file, log, SQLite database unless
    `database_url`), so several can share one `tmp_dir`. The backend binds a free port itself and
    reports it in its ready file, so two test sessions on one machine never race for a port."""
    data_dir = tmp_dir / f"backend-{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + ready_timeout
    with launch_backend(
        data_dir=data_dir,
        database_url=database_url,
        settings={**FAST_SETTINGS, **(settings or {})},
        extra_args=extra_args,
        ready_timeout=ready_timeout,
    ) as launched:
        backend = Backend(launched.url, launched.process, launched.database_url, launched.log_path)
        _wait_until_ready(backend, deadline)
        yield backend


def _wait_until_ready(backend: Backend, deadline: float) -> None:
    """Serving is not ready: `/ready` also answers 200 only once the database can be reached."""
    while True:
        if backend.process.poll() is not None:
            raise BackendStartError(
                f"the reference backend exited with code {backend.process.returncode}:\n{backend.log()}"
            )
        try:
            with urllib.request.urlopen(backend.url + "/ready", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise BackendStartError(f"{backend.url}/ready did not answer 200 in time:\n{backend.log()}")
        time.sleep(0.05)


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema, dropped afterwards; yields a URL whose search_path is that schema."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
