"""What the live verdict does to the latencies it judges: the exact record's tail with and without it.

A local Locust process (20 users, 10 ms between requests, 20 entries) requests a trivial nginx endpoint
(`GET /ok`) for `--seconds`, with `--run-dir`, once judged while it goes by the shipped thresholds
(`--thresholds analysis/thresholds.yaml`, as the web UI does by default) and once with
`--no-live-verdict`; the two alternate over `--rounds`. With two or more CPUs, the Locust process runs
on CPU 0 and nginx on CPU 1 (`taskset`), so the verdict's work competes with the users for one core.
A request in flight while the process judges takes whatever the judging holds it up into its response
time: judged on gevent's loop, a 30 s run's p99.9 went from 5 ms to 35 ms (max 46-76 ms); judged on a
thread, the users keep running.

Prints, per run, the record's request count, p50, p99, p99.9 and max, and the share over 20 ms; then the
median and spread (min-max) of the p99.9 ratio (verdict / none) over the rounds, against the goal (the
live verdict at most doubles the record's p99.9), and whether the median met it. Exit code 0 when it did.

    python bench/bench_live_verdict.py [--rounds 3] [--seconds 30]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from _nginx import start_nginx, stop_nginx  # bench/ is the script's folder

REPO = Path(__file__).resolve().parents[1]
GOAL = 2.0
"""The record's p99.9 with the live verdict / without, at most."""

LOCUSTFILE = """
import random

from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

import locust_scenarios  # noqa: F401  (the library's options and listeners: --run-dir, --thresholds)


class TailUser(FastHttpUser):
    wait_time = constant(0.01)

    @task
    def ok(self):
        self.client.get("/ok", name=f"/ok/{random.randrange(20)}")
"""


def run_once(work: Path, locustfile: Path, host: str, seconds: int, judged: bool, n: int) -> np.ndarray:
    run_dir = work / f"run-{n}-{'verdict' if judged else 'none'}"
    pin = ["taskset", "-c", "0"] if (os.cpu_count() or 1) > 1 and shutil.which("taskset") else []
    thresholds = str(REPO / "analysis" / "thresholds.yaml")
    verdict = ["--thresholds", thresholds] if judged else ["--no-live-verdict"]
    cmd = [*pin, sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-u", "20",
           "-r", "20", "-t", f"{seconds}s", "-H", host, "--run-dir", str(run_dir), "--only-summary",
           *verdict]  # fmt: skip
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=seconds + 60)
    if proc.returncode not in (0, 1):
        sys.exit(f"locust exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    times = pq.read_table(run_dir / "requests", columns=["response_time_ms"]).column(0).to_numpy()
    shutil.rmtree(run_dir)
    return np.asarray(times, dtype=np.float64)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=30)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-live-verdict-"))
    cpu = 1 if (os.cpu_count() or 1) > 1 else None
    nginx, host = start_nginx(work, cpu=cpu)
    ratios: list[float] = []
    try:
        locustfile = work / "tail_user.py"
        locustfile.write_text(LOCUSTFILE)
        print(f"20 users, 20 entries, {args.seconds} s a run, {args.rounds} rounds, {host}")
        for n in range(1, args.rounds + 1):
            p999 = {}
            for judged in (True, False):
                rt = run_once(work, locustfile, host, args.seconds, judged, n)
                q = np.percentile(rt, [50, 99, 99.9])
                p999[judged] = float(q[2])
                label = "live verdict" if judged else "none"
                print(f"  round {n}, {label:12s}: {len(rt):,} requests; p50 {q[0]:.2f}, "
                      f"p99 {q[1]:.2f}, p99.9 {q[2]:.2f}, max {rt.max():.1f} ms; "
                      f"over 20 ms: {(rt > 20).mean():.2%}")  # fmt: skip
            ratios.append(p999[True] / p999[False])
        median = statistics.median(ratios)
        met = median <= GOAL
        print(f"p99.9 live verdict / none: median {median:.2f} (min {min(ratios):.2f}, "
              f"max {max(ratios):.2f}); goal <= {GOAL:g}: {'met' if met else 'below goal'}")  # fmt: skip
        return 0 if met else 1
    finally:
        stop_nginx(nginx)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
