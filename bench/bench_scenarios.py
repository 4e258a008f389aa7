"""What the scenario library's request path costs, in requests per second, next to a bare FastHttpUser.

A trivial nginx endpoint on loopback (`GET /ok` answers `{"ok":true}`) is loaded by the same number of
users for the same time, alternating round by round, in three comparisons:
  - `one process`: a bare `FastHttpUser` sending the same request (bearer header included, checking
    nothing) against a library user doing `self.call("GET", "bench.ok")`: the API layer (path and stat
    name), the bearer header, the safety guard, the status check, JSON parsing and the required-field
    check, its tags and context on the request event. Goal: library / bare >= 0.97.
  - `record on`: the same library user with `--run-dir` (the exact request record, resource samples,
    run.json) against the bare user in plain Locust. Goal: >= 0.95.
  - `--processes 2`: both as above, each run with `--processes 2`. Goal: >= 0.95.
Both users log in through nginx (`--login-email`), so the library user takes its token the way it always
does. Each comparison prints each round's requests/s and requests per CPU second of the Locust
process(es), the median of the per-round ratios with their spread (min-max), its goal, and whether the
median met it. Exit code 0 when every comparison met its goal.

    python bench/bench_scenarios.py [--rounds 5] [--seconds 10] [--users 20] [--only NAME]
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _nginx import JSON_OK, LOGIN_OK, USERS, start_nginx, stop_nginx  # bench/ is the script's folder

LOCUSTFILE = (
    """
import os

from locust import events

_cpu = []


@events.test_start.add_listener
def _cpu_at_start(**_kw):
    t = os.times()
    _cpu.append(t.user + t.system)


@events.test_stop.add_listener
def _cpu_at_stop(**_kw):
    if _cpu:
        t = os.times()
        print(f"BENCH_CPU_SECONDS={t.user + t.system - _cpu[0]:.4f}", flush=True)
"""
    + USERS
)

COMPARISONS = {
    "one process": ((), ("--no-run-dir",), 0.97),
    "record on": ((), ("--run-dir",), 0.95),
    "--processes 2": (("--processes", "2"), ("--no-run-dir",), 0.95),
}


@dataclass
class Run:
    requests: int
    rps: float
    cpu_seconds: float

    @property
    def per_cpu_second(self) -> float:
        return self.requests / self.cpu_seconds


def run_once(
    locustfile: Path, host: str, user_class: str, users: int, seconds: int, work: Path, extra: tuple[str, ...]
) -> Run:
    prefix = work / f"{user_class}-{time.monotonic_ns()}"
    args = [sys.executable, "-m", "locust", "-f", str(locustfile), user_class, "--headless"]
    args += ["-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--host", host]
    args += ["--only-summary", "--csv", str(prefix), "--exit-code-on-error", "0", "--scenario-seed", "1"]
    args += ["--login-email", "bench@loadtest.example.com", "--login-password", "bench"]
    for option in extra:
        args += ["--run-dir", str(prefix) + "-run"] if option == "--run-dir" else []
        args += [] if option in ("--run-dir", "--no-run-dir") else [option]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 90)
    if proc.returncode != 0:
        raise SystemExit(f"locust {user_class} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    with open(f"{prefix}_stats.csv", newline="") as f:
        total = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    if int(total["Failure Count"]):
        raise SystemExit(f"{user_class}: {total['Failure Count']} failed requests; the comparison is void")
    cpu = re.findall(r"BENCH_CPU_SECONDS=([0-9.]+)", proc.stdout + proc.stderr)
    if not cpu:
        raise SystemExit(f"{user_class}: the run did not report its CPU time")
    return Run(int(total["Request Count"]), float(total["Requests/s"]), sum(float(c) for c in cpu))


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} (min {min(values):.3f}, max {max(values):.3f})"


def compare(name: str, locustfile: Path, host: str, args: argparse.Namespace, work: Path) -> bool:
    both, library_only, goal = COMPARISONS[name]
    rps_ratios, cpu_ratios = [], []
    print(f"\n{name}: {args.rounds} rounds, {args.users} users, {args.seconds} s per run, {host}/ok")
    for n in range(1, args.rounds + 1):
        bare = run_once(locustfile, host, "BareUser", args.users, args.seconds, work, both)
        library = run_once(
            locustfile, host, "LibraryUser", args.users, args.seconds, work, both + library_only
        )
        rps_ratios.append(library.rps / bare.rps)
        cpu_ratios.append(library.per_cpu_second / bare.per_cpu_second)
        print(
            f"  round {n}: bare {bare.rps:7.0f} req/s ({bare.per_cpu_second:7.0f} per CPU s)   "
            f"library {library.rps:7.0f} req/s ({library.per_cpu_second:7.0f} per CPU s)   "
            f"ratio {rps_ratios[-1]:.3f} ({cpu_ratios[-1]:.3f} per CPU s)"
        )
    met = statistics.median(rps_ratios) >= goal
    print(f"  library/bare requests per second: {spread(rps_ratios)}; goal >= {goal:.2f}: "
          f"{'met' if met else 'below goal'}")  # fmt: skip
    # On a shared machine wall-clock rates move with other processes' load; requests per CPU second of
    # the Locust process measure the same cost with less of that noise.
    print(f"  library/bare requests per CPU second: {spread(cpu_ratios)}")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--only", choices=sorted(COMPARISONS), action="append")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-scenarios-"))
    nginx, host = start_nginx(work, JSON_OK, {"/api/auth/login": LOGIN_OK})
    try:
        locustfile = work / "bench_locustfile.py"
        locustfile.write_text(LOCUSTFILE)
        results = {name: compare(name, locustfile, host, args, work) for name in args.only or COMPARISONS}
        print("\n" + ", ".join(f"{name}: {'met' if ok else 'below goal'}" for name, ok in results.items()))
        return 0 if all(results.values()) else 1
    finally:
        stop_nginx(nginx)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
