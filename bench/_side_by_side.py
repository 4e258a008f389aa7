"""Locust runs made at the same time, measured over the same seconds: what the request-path benchmarks
compare.

Run one after another, two Locust runs of the same code differed by up to a third on this shared
two-core machine: the speed a core gives a Python process moves with what else the machine does, and
dividing by the CPU time a run got does not take that out (it is the speed of each CPU second that moves).
Run at the same time on the same core, the runs share whatever the machine does, and the ratio of their
requests per CPU second is steady to a percent or two.

Each run gets the wall-clock window to measure (`BENCH_T0`, `BENCH_T1`, seconds since the epoch) and
reports, from each of its processes, the requests it completed and the CPU seconds it used inside that
window; the first seconds (start, login, the users' ramp) are left out, and so is all that a run does
after the window (its final record part, its summary). A run whose test started after the window opened
fails with a request for a longer warm-up.

What sharing a core does to the comparison: each run makes only its share of the requests a core would
make, while what a run does once per wall-clock second (the record's parquet part, the resource sample)
stays the same. That work is therefore weighed by the number of runs sharing the core against the
requests: two, or three, times what it weighs for one Locust process with a core to itself. The ratios
measured side by side overstate the cost of the run folder and the record, never understate it.
"""

from __future__ import annotations

import csv
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from _nginx import USERS, free_port  # bench/ is the script's folder

WINDOW = """
import os
import time

import gevent
from locust import events
from locust.runners import MasterRunner, WorkerRunner

_T0, _T1 = float(os.environ["BENCH_T0"]), float(os.environ["BENCH_T1"])
_env = []
_reported = [0]


def _cpu():
    t = os.times()
    return t.user + t.system


def _requests():
    # A worker clears its totals each time it reports to the master; what it reported is added back.
    runner = _env[0].runner
    if isinstance(runner, MasterRunner):
        return 0  # the master's totals are its workers' requests, counted where they were made
    return _reported[0] + runner.stats.total.num_requests


@events.init.add_listener
def _keep(environment, **_kw):
    _env.append(environment)


@events.report_to_master.add_listener
def _add_reported(data, **_kw):
    total = data.get("stats_total")
    _reported[0] += total["num_requests"] if total else _env[0].runner.stats.total.num_requests


def _watch():
    if time.time() > _T0:
        print(f"BENCH_LATE by {time.time() - _T0:.1f} s", flush=True)
        return
    gevent.sleep(_T0 - time.time())
    t0, c0, n0 = time.time(), _cpu(), _requests()
    gevent.sleep(max(_T1 - time.time(), 0))
    t1, c1, n1 = time.time(), _cpu(), _requests()
    print(f"BENCH_WINDOW seconds={t1 - t0:.4f} cpu={c1 - c0:.4f} requests={n1 - n0}", flush=True)
    runner = _env[0].runner
    if not isinstance(runner, WorkerRunner):
        gevent.sleep(1.0)  # past the workers' own window, then end the run as --run-time would
        runner.quit()


@events.test_start.add_listener
def _open_window(**_kw):
    if not _env[0].runner.__dict__.get("_bench_watch"):
        _env[0].runner._bench_watch = gevent.spawn(_watch)
"""
LOCUSTFILE = WINDOW + USERS
"""The locustfile of both request-path benchmarks: the window above, then the users they compare."""


@dataclass
class Side:
    """One of the runs made side by side: its label, user class and what it adds to the command line
    (`RUN_DIR` stands for a fresh run folder)."""

    label: str
    user_class: str
    extra: tuple[str, ...] = ()


RUN_DIR = "RUN_DIR"


@dataclass
class Window:
    """What one run did inside the window, summed over its processes."""

    requests: int
    cpu_seconds: float
    seconds: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def per_cpu_second(self) -> float:
        return self.requests / self.cpu_seconds

    @property
    def cores(self) -> float:
        """CPU seconds per second: how many cores the run kept busy."""
        return self.cpu_seconds / self.seconds


def run_side_by_side(
    locustfile: Path,
    host: str,
    sides: Sequence[Side],
    *,
    users: int,
    seconds: float,
    warmup: float,
    work: Path,
    cpu: int | None,
    tag: str,
) -> list[Window]:
    """Start every side at once (in the order given) and measure each over the same window, which opens
    `warmup` seconds after the start and lasts `seconds`. With `cpu`, every run is kept on that CPU."""
    t0 = time.time() + warmup
    env = {**os.environ, "BENCH_T0": f"{t0:.3f}", "BENCH_T1": f"{t0 + seconds:.3f}"}
    cap = math.ceil(warmup + seconds) + 30  # --run-time only as a backstop: the window ends the run
    procs = []
    for side in sides:
        prefix = work / f"{tag}-{side.label}"
        cmd = ["taskset", "-c", str(cpu)] if cpu is not None else []
        cmd += [sys.executable, "-m", "locust", "-f", str(locustfile), side.user_class, "--headless"]
        cmd += ["-u", str(users), "-r", str(users), "-t", f"{cap}s", "--host", host]
        cmd += ["--only-summary", "--csv", str(prefix), "--exit-code-on-error", "0"]
        cmd += ["--login-email", "bench@loadtest.example.com", "--login-password", "bench"]
        cmd += [str(prefix) + "-run" if a == RUN_DIR else a for a in side.extra]
        if "--processes" in side.extra:  # each run's workers must find their own master
            port = str(free_port())
            cmd += ["--master-bind-port", port, "--master-port", port]
        out = open(f"{prefix}.out", "w+")  # noqa: SIM115 - read back once the run has ended
        # A session of its own: a run that fails or hangs is ended with its worker processes.
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        procs.append((side, prefix, out, proc))
    try:
        return [_window_of(side, prefix, out, proc, cap + 60) for side, prefix, out, proc in procs]
    finally:
        for _, _, out, proc in procs:
            out.close()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _window_of(
    side: Side, prefix: Path, out: IO[str], proc: subprocess.Popen[bytes], timeout: float
) -> Window:
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        code = -1
    out.seek(0)
    output = out.read()
    if code != 0:
        raise SystemExit(f"locust ({side.label}) exited {code}:\n{output[-3000:]}")
    late = re.search(r"BENCH_LATE by ([0-9.]+) s", output)
    if late:
        raise SystemExit(f"{side.label}: its test started {late.group(1)} s after the window opened; "
                         f"raise --warmup")  # fmt: skip
    with open(f"{prefix}_stats.csv", newline="") as f:
        total = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    if int(total["Failure Count"]):
        raise SystemExit(f"{side.label}: {total['Failure Count']} failed requests; the comparison is void")
    found = re.findall(r"BENCH_WINDOW seconds=([0-9.]+) cpu=([0-9.]+) requests=([0-9]+)", output)
    if not found:
        raise SystemExit(f"{side.label}: the run did not report its window:\n{output[-3000:]}")
    return Window(
        requests=sum(int(n) for _, _, n in found),
        cpu_seconds=sum(float(c) for _, c, _ in found),
        seconds=max(float(s) for s, _, _ in found),
    )


def spread(values: Sequence[float], fmt: str = ".3f") -> str:
    """The median, interquartile range and min-max of `values`."""
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return (
        f"median {statistics.median(values):{fmt}}, interquartile range {q1:{fmt}}-{q3:{fmt}} "
        f"({q3 - q1:{fmt}}), min-max {min(values):{fmt}}-{max(values):{fmt}}"
    )


def verdict(ratios: Sequence[float], goal: float) -> tuple[bool, list[str]]:
    """Whether the median ratio met `goal`, and the lines that say so: the goal, and whether the spread
    (the interquartile range of the per-round ratios) is smaller than the effect measured (1 - median)."""
    median = statistics.median(ratios)
    q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    width, effect = q3 - q1, 1 - median
    met = median >= goal
    lines = [f"goal >= {goal:.2f}: median {median:.3f}, {'met' if met else 'below goal'}"]
    if width < effect:
        lines.append(f"spread {width:.3f} (interquartile range) < effect {effect:.3f} (1 - median): shown")
    else:
        lines.append(f"spread {width:.3f} (interquartile range) wider than effect {effect:.3f} (1 - median): "
                     f"not shown")  # fmt: skip
    if met and q1 >= goal:
        lines.append(f"the lower quartile {q1:.3f} is at or above the goal too")
    elif met:
        lines.append(f"the lower quartile {q1:.3f} is below the goal: met by the median only")
    return met, lines
