"""What the scenario library's request path costs, in requests per second, next to a bare FastHttpUser.

One Locust process (no --processes) hammers a trivial nginx endpoint on loopback
(`location /ok { return 200 '{"ok":true}'; }`) with the same users and duration, alternating round by
round:
  - `bare`: a plain `FastHttpUser` sending the same request, bearer header included (any authenticated
    client sends it), and checking nothing,
  - `library`: an `ApiUser` doing `self.call("GET", "bench.ok")`: the API layer (path and stat
    name), the bearer header, the safety guard, `catch_response`, the status check, JSON parsing and
    the required-field check.
Both load the same library modules (options and listeners), so only the request path differs. Prints
each run's requests per second and the median of the per-round ratios `library / bare`, which must stay
>= 0.90.

    python bench/bench_scenarios.py [--rounds 3] [--seconds 10] [--users 10]
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _nginx import JSON_OK, start_nginx  # bench/ is the script's folder

TARGET_RATIO = 0.90

LOCUSTFILE = """
import os

from locust import constant, events, task
from locust.contrib.fasthttp import FastHttpUser

from compliance_loadtest.api import Api
from locust_scenarios import ApiUser


_cpu = []


@events.test_start.add_listener
def _cpu_at_start(**_kw):
    t = os.times()
    _cpu.append(t.user + t.system)


@events.test_stop.add_listener
def _cpu_at_stop(**_kw):
    t = os.times()
    print(f"BENCH_CPU_SECONDS={t.user + t.system - _cpu[0]:.4f}", flush=True)


class BenchApi(Api):
    PATHS = {**Api.PATHS, "bench.ok": "/ok"}
    REQUIRED_FIELDS = {**Api.REQUIRED_FIELDS, "bench.ok": ("ok",)}


class BareUser(FastHttpUser):
    wait_time = constant(0)
    headers = {"Authorization": "Bearer bench-access-token"}

    @task
    def ok(self):
        self.client.get("/ok", headers=self.headers)


class LibraryUser(ApiUser):
    wait_time = constant(0)
    api_class = BenchApi

    def on_start(self):
        # nginx has no login: take a token as a login would leave it.
        self._set_tokens({"access_token": "bench-access-token", "refresh_token": "bench-refresh-token"})

    @task
    def ok(self):
        self.call("GET", "bench.ok")
"""


@dataclass
class Run:
    requests: int
    rps: float
    cpu_seconds: float

    @property
    def per_cpu_second(self) -> float:
        return self.requests / self.cpu_seconds


def run_once(locustfile: Path, host: str, user_class: str, users: int, seconds: int, work: Path) -> Run:
    prefix = work / f"{user_class}-{time.monotonic_ns()}"
    args = [sys.executable, "-m", "locust", "-f", str(locustfile), user_class, "--headless"]
    args += ["-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--host", host]
    args += ["--only-summary", "--csv", str(prefix), "--exit-code-on-error", "0"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60)
    if proc.returncode != 0:
        raise SystemExit(f"locust {user_class} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    with open(f"{prefix}_stats.csv", newline="") as f:
        total = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    if int(total["Failure Count"]):
        raise SystemExit(f"{user_class}: {total['Failure Count']} failed requests; the comparison is void")
    cpu = re.search(r"BENCH_CPU_SECONDS=([0-9.]+)", proc.stdout + proc.stderr)
    if not cpu:
        raise SystemExit(f"{user_class}: the run did not report its CPU time")
    return Run(int(total["Request Count"]), float(total["Requests/s"]), float(cpu.group(1)))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--users", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-scenarios-"))
    nginx, host = start_nginx(work, JSON_OK)
    try:
        locustfile = work / "bench_locustfile.py"
        locustfile.write_text(LOCUSTFILE)
        rps_ratios, cpu_ratios = [], []
        print(f"{args.rounds} rounds, {args.users} users, {args.seconds} s per run, one process, {host}/ok")
        for n in range(1, args.rounds + 1):
            bare = run_once(locustfile, host, "BareUser", args.users, args.seconds, work)
            library = run_once(locustfile, host, "LibraryUser", args.users, args.seconds, work)
            rps_ratios.append(library.rps / bare.rps)
            cpu_ratios.append(library.per_cpu_second / bare.per_cpu_second)
            print(
                f"round {n}: bare {bare.rps:7.0f} req/s ({bare.per_cpu_second:7.0f} per CPU s)   "
                f"library {library.rps:7.0f} req/s ({library.per_cpu_second:7.0f} per CPU s)   "
                f"ratio {rps_ratios[-1]:.3f} ({cpu_ratios[-1]:.3f} per CPU s)"
            )
        median = statistics.median(rps_ratios)
        verdict = "ok" if median >= TARGET_RATIO else f"below {TARGET_RATIO}"
        print(f"median ratio library/bare, requests per second: {median:.3f} ({verdict})")
        # On a shared machine wall-clock rates move with other processes' load; requests per CPU second
        # of the Locust process measure the same cost without that noise.
        print(f"median ratio library/bare, requests per CPU second: {statistics.median(cpu_ratios):.3f}")
        return 0 if median >= TARGET_RATIO else 1
    finally:
        nginx.send_signal(signal.SIGQUIT)
        try:
            nginx.wait(timeout=10)
        except subprocess.TimeoutExpired:
            nginx.kill()
            nginx.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
