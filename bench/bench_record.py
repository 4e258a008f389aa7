"""What a run folder with the exact request record costs, in requests per second, next to bare Locust.

One Locust process with 20 users (wait 0) hammers a trivial nginx endpoint on loopback (`GET /ok`
answers `{"ok":true}`), for the same time in each condition:
  - `bare`: a bare `FastHttpUser` sending the same request (bearer header included, checking nothing),
  - `library`: the library's user (`self.call("GET", "bench.ok", read=False)`), no run folder,
  - `record`: the library's user with `--run-dir` and the exact request record,
  - `no-record` (on request): the library's user with `--run-dir --no-request-record`.
The conditions run side by side in each round, the order rotated from round to round (A B C, B C A,
C A B ...), and each round's ratios compare runs made a few seconds apart, so a drift in the machine's
load moves both sides of a ratio alike. With two or more CPUs, nginx runs on CPU 0 and Locust on CPU 1
(`taskset`), so the two never compete for one core. Prints each run's requests/s and CPU microseconds
per request, the median and spread (min-max) of each ratio over the rounds, and the goal:
`record / bare` >= 0.95 (the "lean load generator" goal). Exit code 0 when the goal was met.

    python bench/bench_record.py [--rounds 6] [--seconds 15] [--users 20] [--no-pin]
        [--conditions bare,library,record,no-record]
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from _nginx import JSON_OK, LOGIN_OK, USERS, start_nginx, stop_nginx  # bench/ is the script's folder

LOCUSTFILE = (
    """
import os

from locust import events

_start = {}


def _cpu():
    t = os.times()
    return t.user + t.system


@events.test_start.add_listener
def _window_opens(environment, **_kw):
    _start["cpu"] = _cpu()


@events.test_stop.add_listener
def _window_closes(environment, **_kw):
    # The steady state, from the first user to the last: what the record costs while requests are made.
    # Writing after the run (final part, summary) does not slow requests down and is left out.
    if "cpu" in _start:
        used = _cpu() - _start.pop("cpu")
        requests = environment.runner.stats.total.num_requests
        print(f"BENCH_WINDOW cpu={used:.4f} requests={requests}", flush=True)
"""
    + USERS
)

# Each condition: the user class and what it adds to the command line (RUN stands for a fresh folder).
RUN = "RUN_DIR"
CONDITIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "bare": ("BareUser", ()),
    "library": ("LibraryUser", ()),
    "record": ("LibraryUser", ("--run-dir", RUN)),
    "no-record": ("LibraryUser", ("--run-dir", RUN, "--no-request-record")),
}
# (numerator, denominator, goal or None): the goal is the issue's, never looser.
RATIOS = (("record", "bare", 0.95), ("library", "bare", None), ("no-record", "bare", None))
LOCUST_CPU, NGINX_CPU = 1, 0


@dataclass
class Run:
    requests: int
    rps: float
    cpu_us_per_request: float


def run_once(
    locustfile: Path, host: str, condition: str, args: argparse.Namespace, work: Path, n: int, pin: bool
) -> Run:
    user_class, extra = CONDITIONS[condition]
    prefix = work / f"{condition}-{n}"
    cmd = ["taskset", "-c", str(LOCUST_CPU)] if pin else []
    cmd += [sys.executable, "-m", "locust", "-f", str(locustfile), user_class, "--headless"]
    cmd += ["-u", str(args.users), "-r", str(args.users), "-t", f"{args.seconds}s", "--host", host]
    cmd += ["--only-summary", "--csv", str(prefix), "--exit-code-on-error", "0"]
    cmd += ["--login-email", "bench@loadtest.example.com", "--login-password", "bench"]
    cmd += [str(prefix) + "-run" if a == RUN else a for a in extra]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 90, check=False)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise SystemExit(f"locust ({condition}) exited {done.returncode}:\n{output[-3000:]}")
    with open(f"{prefix}_stats.csv", newline="") as f:
        total = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    if int(total["Failure Count"]):
        raise SystemExit(f"{condition}: {total['Failure Count']} failed requests; the comparison is void")
    window = re.search(r"BENCH_WINDOW cpu=([0-9.]+) requests=([0-9]+)", output)
    if not window:
        raise SystemExit(f"{condition}: the run did not report its CPU time:\n{output[-3000:]}")
    cpu_us = float(window.group(1)) / max(int(window.group(2)), 1) * 1e6
    return Run(int(total["Request Count"]), float(total["Requests/s"]), cpu_us)


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} (min {min(values):.3f}, max {max(values):.3f})"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--conditions", default="bare,library,record")
    parser.add_argument("--no-pin", action="store_true", help="let the scheduler place Locust and nginx")
    args = parser.parse_args()
    conditions = [c for c in args.conditions.split(",") if c]
    unknown = sorted(set(conditions) - set(CONDITIONS))
    if unknown or "bare" not in conditions:
        what = ", ".join(unknown) or "bare is missing"
        parser.error(f"--conditions: {what}; known: {', '.join(CONDITIONS)}")
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    runs: dict[str, list[Run]] = {c: [] for c in conditions}
    work = Path(tempfile.mkdtemp(prefix="bench-record-"))
    nginx, host = start_nginx(work, JSON_OK, {"/api/auth/login": LOGIN_OK}, cpu=NGINX_CPU if pin else None)
    placement = f"Locust on CPU {LOCUST_CPU}, nginx on CPU {NGINX_CPU}" if pin else "not pinned"
    print(f"{args.rounds} rounds, {args.users} users, {args.seconds} s per run, {host}/ok, {placement}")
    try:
        locustfile = work / "bench_locustfile.py"
        locustfile.write_text(LOCUSTFILE)
        for n in range(args.rounds):
            k = n % len(conditions)
            for condition in conditions[k:] + conditions[:k]:
                r = run_once(locustfile, host, condition, args, work, n, pin)
                runs[condition].append(r)
                print(
                    f"round {n + 1} {condition:>9}: {r.rps:8.1f} req/s  {r.requests:7d} requests  "
                    f"{r.cpu_us_per_request:6.1f} us CPU per request",
                    flush=True,
                )
    finally:
        stop_nginx(nginx)
        shutil.rmtree(work, ignore_errors=True)
    for c in conditions:
        print(
            f"{c:>9}: req/s {spread([r.rps for r in runs[c]])}; "
            f"us CPU per request {spread([r.cpu_us_per_request for r in runs[c]])}"
        )
    met = True
    for a, b, goal in RATIOS:
        if a not in runs:
            continue
        by_rps = [x.rps / y.rps for x, y in zip(runs[a], runs[b], strict=True)]
        # Requests per CPU second: the rate a load generator with a core to itself would reach.
        by_cpu = [y.cpu_us_per_request / x.cpu_us_per_request for x, y in zip(runs[a], runs[b], strict=True)]
        print(f"{a} / {b}: req/s {spread(by_rps)}; requests per CPU second {spread(by_cpu)}")
        if goal is not None:
            ok = statistics.median(by_rps) >= goal
            met = met and ok
            print(f"  goal: {a} / {b} req/s >= {goal:.2f}: {'met' if ok else 'below goal'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
