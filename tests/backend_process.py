"""Start the reference backend as its own process on a free loopback port, for tests.

The backend runs in a subprocess, never in the test process: Locust's gevent patching and
uvicorn's asyncio do not share a process well (see ../DESIGN notes in the README).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

# Fast defaults for tests: no simulated model latency, quick report jobs.
FAST_SETTINGS = {
    "CGPT_LLM_FIRST_TOKEN_MS": "0",
    "CGPT_LLM_TOKEN_MS": "0",
    "CGPT_ADMIN": "1",
    "CGPT_REPORT_SECONDS": "0.5",
}


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
    """Run `python -m reference_backend serve` until the block ends; fail with its log if it won't start.

    The backend binds a free port itself (`--port 0`) and reports it in its ready file, so two test
    sessions on one machine never race for a port picked in advance."""
    env = {**os.environ, **FAST_SETTINGS, **(settings or {})}
    env.pop("DATABASE_URL", None)
    tag = uuid.uuid4().hex[:8]
    ready_file = tmp_dir / f"backend-{tag}.ready.json"
    args = [sys.executable, "-m", "reference_backend", "serve", "--host", "127.0.0.1", "--port", "0"]
    args += ["--ready-file", str(ready_file)]
    if database_url:
        args += ["--database-url", database_url]
    args += list(extra_args)
    log_path = tmp_dir / f"backend-{tag}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    backend = Backend("", proc, database_url, log_path)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"backend exited with {proc.returncode}:\n{backend.log()}")
            if not backend.url and ready_file.exists():
                backend.url = json.loads(ready_file.read_text())["url"]
            if backend.url:
                try:
                    with urllib.request.urlopen(backend.url + "/ready", timeout=2) as resp:
                        if resp.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"backend not ready after {ready_timeout}s:\n{backend.log()}")
            time.sleep(0.05)
        yield backend
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
