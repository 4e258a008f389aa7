"""Starting the reference backend as a process of its own: the one launcher every caller uses.

    with launch_backend(data_dir=tmp, demo_data=True) as backend:
        ...  # backend.url, backend.pid, backend.database_url

`python -m reference_backend serve --host 127.0.0.1 --port 0 --ready-file F` binds a free port itself
and, once it serves, writes `{"url", "pid", "database_url"}` to F by rename (so F is never read half
written). `launch_backend` starts it, waits for that file, and raises `BackendStartError` with the end
of the backend's log if it exits first or is not ready in time. The Locust plugin (the embedded
backend), the suite runner, the tests and the benchmarks all start it through here.

The database URL travels in the environment (`CGPT_DATABASE_URL`), never in argv: `ps` shows argv to
every user of the machine, and a PostgreSQL URL may hold a password.

This module imports neither Locust nor gevent (Locust's import monkey-patches the process); it is
standard library only, safe in the suite runner, the analysis and tests.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from compliance_loadtest.errors import BackendStartError

__all__ = ["BackendProcess", "launch_backend", "parent_death_signal"]

LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
LOG_TAIL_LINES = 30

# Variables the backend would otherwise read its database from; the launcher decides it.
_DATABASE_VARS = ("DATABASE_URL", "CGPT_DATABASE_URL")


class BackendProcess:
    """A started reference backend that serves: where it listens, its database, how to stop it.

    A context manager: leaving the block stops it. Only the process that launched it should stop it.
    """

    def __init__(
        self,
        *,
        url: str,
        pid: int,
        database_url: str,
        process: subprocess.Popen[bytes],
        log_path: Path,
        owned_dir: Path | None = None,
    ) -> None:
        self.url = url
        """Base URL without a trailing slash, e.g. `http://127.0.0.1:41234`."""
        self.pid = pid
        """Process id of the server (the one to sample for resource use)."""
        self.database_url = database_url
        """The database it uses, as given (it may hold a password: never log it)."""
        self.process = process
        self.log_path = log_path
        """Its stdout and stderr."""
        self._owned_dir = owned_dir

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last `lines` lines of its log, for error messages."""
        return _log_tail(self.log_path, lines)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds; safe to call more than once."""
        _terminate(self.process, timeout)
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
            self._owned_dir = None

    def __enter__(self) -> BackendProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"BackendProcess(url={self.url!r}, pid={self.pid})"


def launch_backend(
    *,
    data_dir: Path | None = None,
    database_url: str | None = None,
    demo_data: bool = False,
    settings: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    ready_timeout: float = READY_TIMEOUT_S,
    check: Callable[[], None] | None = None,
    new_session: bool = True,
    die_with_parent: bool = True,
) -> BackendProcess:
    """Start `python -m reference_backend serve` on a free loopback port and wait until it serves.

    data_dir        its ready file, log and (by default) SQLite database; None: a temporary folder of
                    its own, removed when it stops
    database_url    `postgresql://...`, `sqlite:///path` or a path; None: SQLite in `data_dir`
    demo_data       seed a demo organisation at start (`--demo-data`)
    settings        `CGPT_*` variables for the backend, over `environ`
    extra_args      more `serve` options (e.g. `--admin`)
    environ         the environment to start from (default this process's)
    log_path        where its output goes (default `data_dir/backend.log`)
    check           called while waiting; what it raises (e.g. KeyboardInterrupt on a signal) stops
                    the backend and propagates
    new_session     its own session, so a terminal's Ctrl-C reaches only the caller, which stops it
                    in its own time
    die_with_parent on Linux, the kernel sends it SIGTERM if the launching thread dies without stopping it

    Raises BackendStartError, with the end of its log, when it exits before it is ready or is not
    ready within `ready_timeout` seconds; the process is stopped first.
    """
    owned_dir = None
    if data_dir is None:
        data_dir = owned_dir = Path(tempfile.mkdtemp(prefix="cgpt-backend-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    if database_url is None:
        database_url = f"sqlite:///{data_dir / 'backend.db'}"
    if log_path is None:
        log_path = data_dir / "backend.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    ready_file = data_dir / "ready.json"
    ready_file.unlink(missing_ok=True)

    env = {k: v for k, v in (os.environ if environ is None else environ).items() if k not in _DATABASE_VARS}
    env.update(settings or {})
    env["CGPT_DATABASE_URL"] = database_url
    env["PYTHONUNBUFFERED"] = "1"  # the log tail of a failed start is up to date
    args = [sys.executable, "-m", "reference_backend", "serve", "--host", LOOPBACK, "--port", "0"]
    args += ["--ready-file", str(ready_file)]
    if demo_data:
        args.append("--demo-data")
    args += list(extra_args)

    with log_path.open("ab") as log:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=new_session,
            preexec_fn=parent_death_signal() if die_with_parent else None,
        )
    try:
        ready = _wait_ready(process, ready_file, log_path, ready_timeout, check, owned=owned_dir is not None)
    except BaseException:
        _terminate(process, STOP_TIMEOUT_S)
        if owned_dir is not None:
            shutil.rmtree(owned_dir, ignore_errors=True)
        raise
    return BackendProcess(
        url=str(ready["url"]).rstrip("/"),
        pid=int(ready.get("pid") or process.pid),
        database_url=database_url,
        process=process,
        log_path=log_path,
        owned_dir=owned_dir,
    )


def parent_death_signal(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` asking Linux to send the child `sig` when the thread that started it dies; None
    elsewhere.

    `prctl` is looked up here, in the parent: between fork and exec the child may only call what
    needs no lock another thread could hold, and `dlopen`/`dlsym` take one.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def set_parent_death_signal() -> None:
        prctl(pr_set_pdeathsig, int(sig))

    return set_parent_death_signal


def _wait_ready(
    process: subprocess.Popen[bytes],
    ready_file: Path,
    log_path: Path,
    timeout: float,
    check: Callable[[], None] | None,
    *,
    owned: bool,
) -> dict[str, Any]:
    # A log in a folder removed on failure is only quoted, not pointed to.
    where = "" if owned else f" ({log_path})"
    deadline = time.monotonic() + timeout
    while (ready := _read_ready_file(ready_file)) is None:
        if check is not None:
            check()
        code = process.poll()
        if code is not None:
            raise BackendStartError(
                f"the reference backend exited with code {code} before it was ready; "
                f"end of its log{where}:\n{_log_tail(log_path)}"
            )
        if time.monotonic() > deadline:
            raise BackendStartError(
                f"the reference backend was not ready after {timeout:.0f} s; "
                f"end of its log{where}:\n{_log_tail(log_path)}"
            )
        time.sleep(0.05)
    return ready


def _read_ready_file(path: Path) -> dict[str, Any] | None:
    """The backend's ready file, `{"url", "pid", "database_url"}`; None until it is there."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # not there yet (the backend writes it whole, by rename)
    return data if isinstance(data, dict) and data.get("url") else None


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()
