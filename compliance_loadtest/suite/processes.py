"""The suite's child processes and the signals that stop them.

Every process the suite starts is its own child, in a session of its own so a terminal's Ctrl-C
reaches only the suite, which then stops them in order (master first, so it can tell the workers to
quit and write its reports; then workers; then the backend). On Linux each child is also told to
receive SIGTERM should the suite die, so none is orphaned. SIGINT and SIGTERM only set flags
(`Signals`); the suite's loops notice them and stop the children themselves.

Nothing here imports Locust.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import psutil

from compliance_loadtest.backend import parent_death_signal

__all__ = ["LOOPBACK", "Child", "Children", "Signals", "child_env", "free_port"]

LOOPBACK = "127.0.0.1"
STOP_TIMEOUT_S = 15.0

# The order processes are stopped in: the master first (it tells the workers to quit and writes its
# reports), then workers, then the backend, so no request of a stopping worker meets a closed port.
_STOP_ORDER = {"master": 0, "worker": 1, "backend": 2}

_Handler = Callable[[int, FrameType | None], Any] | int | None


@dataclass
class Child:
    """One process the suite started, with its log file."""

    role: str
    """`master`, `worker-N` or `backend`: what it is, and when it is stopped."""
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Children:
    """The processes of a run; stops them in order and leaves none behind."""

    def __init__(self, log_dir: Path, forced: Callable[[], bool] = lambda: False) -> None:
        self.log_dir = log_dir
        self.forced = forced
        """Asked while waiting for a process to end: True kills it at once (a second Ctrl-C)."""
        self.started: list[Child] = []
        self.descendants: dict[int, psutil.Process] = {}

    def start(self, role: str, args: Sequence[str], env: Mapping[str, str]) -> Child:
        """Start `args` in a session of its own, output to `<log_dir>/<role>.log`."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{role}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                list(args),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,
                preexec_fn=parent_death_signal(),
            )
        return self.adopt(role, process, log_path)

    def adopt(self, role: str, process: subprocess.Popen[bytes], log_path: Path) -> Child:
        """Take a process started elsewhere (the backend's launcher) into the run: stopped in its turn."""
        child = Child(role, process, log_path)
        self.started.append(child)
        return child

    def remember_descendants(self) -> None:
        """Note grandchildren (e.g. a backend a Locust process started) so they are stopped too."""
        for child in self.started:
            with contextlib.suppress(psutil.Error):
                for p in psutil.Process(child.pid).children(recursive=True):
                    self.descendants.setdefault(p.pid, p)

    def stop(self, child: Child, timeout: float, *, force: bool = False, sig: int = signal.SIGTERM) -> None:
        """Send `sig` (SIGKILL when forced), wait up to `timeout` seconds, then SIGKILL."""
        self.remember_descendants()
        if child.alive():
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGKILL if force else sig)
        deadline = time.monotonic() + timeout
        while child.alive() and time.monotonic() < deadline and not self.forced():
            time.sleep(0.05)
        if child.alive():
            child.process.kill()
        child.process.wait()

    def stop_all(self, *, force: bool = False) -> None:
        """Stop every process still running, master first and backend last, then any grandchild."""
        self.remember_descendants()
        for child in sorted(self.started, key=lambda c: _STOP_ORDER.get(c.role.split("-")[0], 1)):
            self.stop(child, 0 if force else STOP_TIMEOUT_S, force=force)
        for p in self.descendants.values():
            with contextlib.suppress(psutil.Error):
                if p.is_running():
                    p.terminate()
        _gone, alive = psutil.wait_procs(list(self.descendants.values()), timeout=5)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()


class Signals:
    """SIGINT/SIGTERM only set flags here; the suite's loops notice them and stop the children in order.
    A second signal forces: the children are killed at once."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.forced = False
        self._previous: dict[int, _Handler] = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is not None:
            self.forced = True
        self.received = signum

    def __enter__(self) -> Signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def check(self) -> None:
        """Raise KeyboardInterrupt once a signal has come: the caller's loop unwinds to the stopping."""
        if self.received is not None:
            raise KeyboardInterrupt


def free_port() -> int:
    """A loopback port free right now (for the master's bind port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def child_env(extra: Mapping[str, str], drop: Sequence[str] = ()) -> dict[str, str]:
    """This process's environment minus Locust's own settings (the suite decides those) and `drop`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_") and k not in drop}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env
