"""The embedded reference backend: started when a run is given no `--host`, stopped when Locust quits.

`locust -f locust_scenarios` with no `--host` runs against a reference backend of its own:
`python -m reference_backend serve --port 0 --ready-file F --demo-data` on 127.0.0.1, SQLite in a
temporary directory, demo data seeded. It must be started once per run, by the process that will
become the master (or the only process), and known to every process of the run.

Locust forks `--processes` workers right after parsing the command line and before any event a
locustfile can hear, so the start hooks the parse itself: when the parser built for the run returns its
options, the backend is started, `options.host` is set to its URL (so the master, the forked workers and
the web UI all see it as if `--host` had been given) and `CGPT_EMBEDDED_BACKEND` carries its URL, pid
and database to the forked workers. `--worker` processes, `--list` and the like never start one.

It stops when Locust quits (normal end, Ctrl-C, SIGTERM: all go through Locust's `quit` event), at
interpreter exit as a fallback, and on Linux the kernel stops it if the Locust process dies without
either (parent-death signal). Only the process that started it stops it.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from compliance_loadtest.errors import BackendStartError
from compliance_loadtest.plugin.guard import RemoteHostNotAllowed, check_target

__all__ = ["EmbeddedBackend", "EmbeddedBackendError", "embedded_backend"]

logger = logging.getLogger(__name__)

ENV_VAR = "CGPT_EMBEDDED_BACKEND"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0

# Options with which Locust only prints something and exits: no backend for those.
_NO_RUN_OPTIONS = ("list_commands", "show_task_ratio", "show_task_ratio_json", "help", "version", "worker")


class EmbeddedBackendError(BackendStartError):
    """The embedded backend did not start; the message carries the end of its log."""


@dataclass(frozen=True)
class EmbeddedBackend:
    """Where the run's embedded backend listens and keeps its data."""

    url: str
    pid: int
    database_url: str


@dataclass
class _Process:
    """The backend process as owned by the process that started it."""

    info: EmbeddedBackend
    popen: subprocess.Popen[bytes]
    owner_pid: int
    temp_dir: Path | None
    log_path: Path


# The one backend of this process's run (None: not started here). A run has at most one, whatever
# number of scenario modules import this; tests start Locust in subprocesses, never in-process.
_started: _Process | None = None
_parse_seen = False


def embedded_backend() -> EmbeddedBackend | None:
    """The run's embedded backend, in the master and in forked workers; None when `--host` was given."""
    if _started is not None:
        return _started.info
    raw = os.environ.get(ENV_VAR)
    if not raw:
        return None
    try:
        return EmbeddedBackend(**json.loads(raw))
    except (TypeError, ValueError):
        return None


def _set_parent_death_signal() -> None:
    """In the child before exec: ask Linux to SIGTERM it when the Locust process dies."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def start(options: Any) -> EmbeddedBackend:
    """Start the backend for a run with these parsed options and wait until it serves."""
    global _started
    if _started is not None:
        return _started.info
    database_url = getattr(options, "backend_database_url", "") or ""
    temp_dir = Path(tempfile.mkdtemp(prefix="cgpt-embedded-"))
    if not database_url:
        database_url = f"sqlite:///{temp_dir / 'backend.db'}"
    ready_file = temp_dir / "ready.json"
    log_path = temp_dir / "backend.log"
    env = {k: v for k, v in os.environ.items() if k not in (ENV_VAR, "DATABASE_URL")}
    env["CGPT_DATABASE_URL"] = database_url  # through the environment: never visible in `ps`
    env["CGPT_DEMO_EVIDENCE"] = str(getattr(options, "backend_demo_evidence", 500))
    first_token = getattr(options, "backend_llm_first_token_ms", None)
    if first_token is not None:
        env["CGPT_LLM_FIRST_TOKEN_MS"] = str(first_token)
    per_token = getattr(options, "backend_llm_token_ms", None)
    if per_token is not None:
        env["CGPT_LLM_TOKEN_MS"] = str(per_token)
    args = [
        sys.executable,
        "-m",
        "reference_backend",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--ready-file",
        str(ready_file),
        "--demo-data",
    ]
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            # Its own session: a terminal's Ctrl-C reaches Locust only, which stops the backend after
            # the last request, not before.
            start_new_session=True,
            preexec_fn=_set_parent_death_signal if sys.platform.startswith("linux") else None,
        )
    process = _Process(EmbeddedBackend("", popen.pid, database_url), popen, os.getpid(), temp_dir, log_path)
    try:
        url = _wait_ready(process, ready_file)
    except BaseException:
        _stop(process)
        raise
    process.info = EmbeddedBackend(url, popen.pid, database_url)
    _started = process
    os.environ[ENV_VAR] = json.dumps(asdict(process.info))
    atexit.register(stop)
    return process.info


def _wait_ready(process: _Process, ready_file: Path) -> str:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if ready_file.exists():
            url = _read_ready_file(ready_file)
            if url:
                return url
        code = process.popen.poll()
        if code is not None:
            raise EmbeddedBackendError(
                f"the embedded reference backend exited with code {code} before it was ready; "
                f"end of its log:\n{_log_tail(process.log_path)}"
            )
        if time.monotonic() > deadline:
            raise EmbeddedBackendError(
                f"the embedded reference backend was not ready after {READY_TIMEOUT_S:.0f} s; "
                f"end of its log:\n{_log_tail(process.log_path)}"
            )
        time.sleep(0.05)


def _read_ready_file(path: Path) -> str | None:
    """The URL from the ready file: JSON with `url` (or `host` and `port`), or a bare URL or port."""
    text = path.read_text(encoding="utf-8", errors="replace").strip()
    if not text:
        return None  # being written
    try:
        data = json.loads(text)
    except ValueError:
        data = text
    if isinstance(data, dict):
        if data.get("url"):
            return str(data["url"]).rstrip("/")
        if data.get("port"):
            return f"http://{data.get('host') or '127.0.0.1'}:{int(data['port'])}"
        return None
    if isinstance(data, int):
        return f"http://127.0.0.1:{data}"
    if isinstance(data, str) and data.startswith("http"):
        return data.rstrip("/")
    return None


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop() -> None:
    """Stop the embedded backend if this process started it; safe to call more than once."""
    global _started
    process = _started
    if process is None or process.owner_pid != os.getpid():
        return
    _started = None
    _stop(process)


def _stop(process: _Process) -> None:
    popen = process.popen
    if popen.poll() is None:
        popen.terminate()
        try:
            popen.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
    if process.temp_dir is not None:
        shutil.rmtree(process.temp_dir, ignore_errors=True)


def _after_parse(options: Any) -> None:
    """Check the target, or start the embedded backend, once per process, before Locust forks."""
    global _parse_seen
    if _parse_seen:
        return
    _parse_seen = True
    if any(getattr(options, name, False) for name in _NO_RUN_OPTIONS):
        return
    if getattr(options, "host", None):
        try:
            check_target(options.host, allow_remote=bool(getattr(options, "allow_remote_host", False)))
        except RemoteHostNotAllowed as exc:
            sys.stderr.write(f"compliance scenarios: {exc}\n")
            sys.exit(2)
        return
    if os.environ.get(ENV_VAR):
        # A process forked by a run that already has one (never start a second).
        options.host = json.loads(os.environ[ENV_VAR])["url"]
        return
    try:
        info = start(options)
    except EmbeddedBackendError as exc:
        sys.stderr.write(f"compliance scenarios: {exc}\n")
        sys.exit(1)
    options.host = info.url


def hook_parse(parser: Any) -> None:
    """Start the backend (or check `--host`) when Locust parses its command line: before it forks."""
    parse_args = parser.parse_args

    def parse_args_then_prepare_target(*args: Any, **kwargs: Any) -> Any:
        options = parse_args(*args, **kwargs)
        if not args and kwargs.get("args") is None:
            # Only the parse of the real command line (Locust's main), not one of a list given by code.
            _after_parse(options)
        return options

    parser.parse_args = parse_args_then_prepare_target


def on_init(environment: Any, **_kwargs: Any) -> None:
    """Say where the embedded backend is; stop it at `quit`, after every listener added before this one."""
    environment.events.quit.add_listener(_stop_on_quit)
    if _started is not None and _started.owner_pid == os.getpid():
        logger.info(
            "Embedded reference backend at %s (pid %d); pass --host to test another backend",
            _started.info.url,
            _started.info.pid,
        )


def _stop_on_quit(**_kwargs: Any) -> None:
    stop()
