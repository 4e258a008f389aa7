"""Resource samples of the target backend and of the load generators, once a second, with psutil.

`ProcessSampler` samples one process; `find_listening_pid` finds the process behind a loopback port;
`ResourceLog` keeps the rows of `resources.csv` and rewrites the file whole, under a temporary name
renamed, when asked (every few seconds, so a killed run keeps what was sampled up to then, and never a
cut row), and sums them up for `run.json`: memory growth of each process over the run, and whether a load
generator stayed above `SATURATED_CPU_PERCENT` for `SATURATED_SAMPLES` samples in a row (its own
measurements are then suspect). The columns and the figures' layout in run.json are the run folder's
contract (`run_folder.RESOURCE_COLUMNS`, `run_folder.ProcessResources`). This module starts no
greenlets: `run_output` calls it on a timer.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

from compliance_loadtest.run_folder import (
    RESOURCE_COLUMN_NAMES,
    ROLE_LOAD_GENERATOR,
    ROLE_TARGET,
    ProcessResources,
    write_atomically,
)

SAMPLE_INTERVAL_S = 1.0
SATURATED_CPU_PERCENT = 90.0
SATURATED_SAMPLES = 5

# One sample: the values of run_folder.RESOURCE_COLUMNS in that order.
Sample = tuple[float, str, str, int, float, float, int, int]


class ProcessSampler:
    """Samples one process; `sample()` returns None once the process is gone or cannot be read."""

    def __init__(self, pid: int, role: str, worker: str) -> None:
        self.pid = pid
        self.role = role
        self.worker = worker
        self._process = psutil.Process(pid)
        # The first cpu_percent() call only starts the measurement; it always returns 0.0.
        self._process.cpu_percent(None)
        self.gone = False

    def sample(self) -> Sample | None:
        if self.gone:
            return None
        p = self._process
        try:
            with p.oneshot():
                rss = p.memory_info().rss / 1_048_576
                cpu = p.cpu_percent(None)
                threads = p.num_threads()
                files = p.num_fds() if hasattr(p, "num_fds") else len(p.open_files())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            self.gone = True
            return None
        return (round(time.time(), 3), self.role, self.worker, self.pid, round(rss, 3), cpu, threads, files)


def is_loopback_host(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def target_address(url: str) -> tuple[str, int] | None:
    """Host and port of a target URL such as `http://127.0.0.1:8000`; None when it has no host."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if not parts.hostname:
        return None
    port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
    return parts.hostname, port


def find_listening_pid(port: int) -> int | None:
    """The process listening on a TCP port of this machine, if this user may see it."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for c in connections:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
            return int(c.pid)
    return None


class _Track:
    """Running figures of one process's samples."""

    def __init__(self, role: str, worker: str, pid: int) -> None:
        self.role = role
        self.worker = worker
        self.pid = pid
        self.samples = 0
        self.rss_first: float | None = None
        self.rss_last = 0.0
        self.rss_max = 0.0
        self.cpu_sum = 0.0
        self.cpu_max = 0.0
        self.hot_run = 0
        self.longest_hot_run = 0

    def add(self, s: Sample) -> None:
        rss, cpu = s[4], s[5]
        self.samples += 1
        if self.rss_first is None:
            self.rss_first = rss
        self.rss_last = rss
        self.rss_max = max(self.rss_max, rss)
        self.cpu_sum += cpu
        self.cpu_max = max(self.cpu_max, cpu)
        self.hot_run = self.hot_run + 1 if cpu > SATURATED_CPU_PERCENT else 0
        self.longest_hot_run = max(self.longest_hot_run, self.hot_run)

    def figures(self) -> ProcessResources:
        first = self.rss_first or 0.0
        return ProcessResources(
            role=self.role,
            worker=self.worker,
            pid=self.pid,
            samples=self.samples,
            rss_start_mb=round(first, 3),
            rss_end_mb=round(self.rss_last, 3),
            rss_max_mb=round(self.rss_max, 3),
            rss_increase_mb=round(self.rss_last - first, 3),
            cpu_mean_percent=round(self.cpu_sum / self.samples, 2) if self.samples else 0.0,
            cpu_max_percent=round(self.cpu_max, 2),
            saturated=self.role == ROLE_LOAD_GENERATOR and self.longest_hot_run >= SATURATED_SAMPLES,
        )


class ResourceLog:
    """Keeps the samples for `resources.csv` and per-process figures for run.json; `write` writes them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._rows: list[Sample] = []
        self._written = -1
        self._tracks: dict[tuple[str, str, int], _Track] = {}

    def add(self, samples: list[Sample] | list[list[Any]]) -> None:
        for s in samples:
            sample: Sample = tuple(s)  # lists arrive from workers
            key = (sample[1], sample[2], sample[3])
            track = self._tracks.get(key)
            if track is None:
                track = self._tracks[key] = _Track(*key)
            track.add(sample)
            self._rows.append(sample)

    def write(self) -> None:
        """Write every row so far, atomically; an `OSError` (a full disk) leaves the file as it was and
        the rows kept, to be written by the next call."""
        if self._written == len(self._rows):
            return
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(RESOURCE_COLUMN_NAMES)
        writer.writerows(self._rows)
        count = len(self._rows)
        write_atomically(self.path, text.getvalue())
        self._written = count

    def close(self) -> None:
        self.write()

    def processes(self) -> list[ProcessResources]:
        """Each sampled process's figures, in the order first sampled."""
        return [t.figures() for t in self._tracks.values()]

    def target(self) -> ProcessResources | None:
        return next((p for p in self.processes() if p.role == ROLE_TARGET), None)

    def load_generators(self) -> list[ProcessResources]:
        return [p for p in self.processes() if p.role == ROLE_LOAD_GENERATOR]

    def saturated_workers(self) -> list[str]:
        return sorted({p.worker for p in self.processes() if p.saturated})


def own_sampler(worker: str) -> ProcessSampler:
    """A sampler of the calling process as a load generator."""
    return ProcessSampler(os.getpid(), ROLE_LOAD_GENERATOR, worker)
