"""What the library costs in memory: per idle user, and per process that merely imports it.

Per user: one Locust process spawns SMALL and then LARGE idle users (each makes one request on start,
over its own connection, then waits an hour), once with a bare `FastHttpUser` and once with a library
user (an `ApiUser` that logs in through nginx with `--login-email`); the Locust process's resident
memory is read once every user is spawned and has settled. Memory per user is the slope
`(RSS(LARGE) - RSS(SMALL)) / (LARGE - SMALL)`, which leaves out what a process holds whatever its users.
Goal: library / bare <= 1.2.

Per process: the resident memory of a Python process after `import locust` and after
`import locust_scenarios` (the library, no run folder). Goal: the library's process <= 60 MB. Also
printed, without a goal: a process that records (what a worker of a master with `--run-dir` loads and
runs before its users start), which must not have loaded pandas.

Each figure is measured `--rounds` times, alternating; the median and the spread (min-max) are printed
with the goal and whether the median met it. Exit code 0 when both goals were met.

    python bench/bench_memory.py [--rounds 3] [--small 200] [--large 2000]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from _nginx import JSON_OK, LOGIN_OK, start_nginx, stop_nginx  # bench/ is the script's folder

PER_USER_GOAL = 1.2
IMPORT_GOAL_MB = 60.0

LOCUSTFILE = """
from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

from locust_scenarios import ApiUser


class BareUser(FastHttpUser):
    wait_time = constant(3600)

    def on_start(self):
        self.client.get("/ok", headers={"Authorization": "Bearer bench-access"})

    @task
    def ok(self):
        self.client.get("/ok")


class LibraryUser(ApiUser):
    wait_time = constant(3600)

    @task
    def ok(self):
        self.call("GET", "ops.health")
"""

RSS_AFTER_IMPORT = """
import sys
{code}
assert "pandas" not in sys.modules, "pandas was imported"
with open("/proc/self/status") as f:
    print(next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024)
"""


def rss_with_users(locustfile: Path, host: str, user_class: str, users: int) -> float:
    """The Locust process's RSS in MiB once `users` idle users are spawned and have settled."""
    args = [sys.executable, "-m", "locust", "-f", str(locustfile), user_class, "--headless", "--host", host]
    args += ["-u", str(users), "-r", "1000", "-t", "120s", "--loglevel", "INFO", "--scenario-seed", "1"]
    args += ["--login-email", "bench@loadtest.example.com", "--login-password", "bench"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            if "All users spawned" in line:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{user_class}: {users} users were not spawned in time")
        else:
            raise SystemExit(f"{user_class}: Locust ended before spawning {users} users")
        time.sleep(3.0)  # every user's on_start done, and garbage collected
        return float(psutil.Process(proc.pid).memory_info().rss) / 2**20
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# What a worker whose master has a run folder loads and runs before its users start: the run folder's
# writer, and the record's Arrow steps once on throw-away rows.
RECORDING = """
import locust_scenarios
from compliance_loadtest.plugin import record, run_output
record.warm_up()
"""


def rss_after_import(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", RSS_AFTER_IMPORT.format(code=code)], capture_output=True,
                         text=True, check=True)  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def spread(values: list[float], unit: str = "") -> str:
    return f"median {statistics.median(values):.2f}{unit} (min {min(values):.2f}, max {max(values):.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=2000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    nginx, host = start_nginx(work, JSON_OK, {"/api/auth/login": LOGIN_OK, "/health": JSON_OK})
    try:
        locustfile = work / "bench_memory_locustfile.py"
        locustfile.write_text(LOCUSTFILE)
        per_user: dict[str, list[float]] = {"BareUser": [], "LibraryUser": []}
        ratios: list[float] = []
        print(f"memory per idle user: {args.small} and {args.large} users, {args.rounds} rounds, {host}")
        for n in range(1, args.rounds + 1):
            for user_class in per_user:
                small = rss_with_users(locustfile, host, user_class, args.small)
                large = rss_with_users(locustfile, host, user_class, args.large)
                per_user[user_class].append((large - small) * 1024 / (args.large - args.small))
            ratios.append(per_user["LibraryUser"][-1] / per_user["BareUser"][-1])
            print(f"  round {n}: bare {per_user['BareUser'][-1]:.1f} KB/user, "
                  f"library {per_user['LibraryUser'][-1]:.1f} KB/user, ratio {ratios[-1]:.2f}")  # fmt: skip
        user_met = statistics.median(ratios) <= PER_USER_GOAL
        bare, library = spread(per_user["BareUser"], " KB"), spread(per_user["LibraryUser"], " KB")
        print(f"  bare: {bare}; library: {library}")
        print(f"  library/bare per user: {spread(ratios)}; goal <= {PER_USER_GOAL}: "
              f"{'met' if user_met else 'below goal'}")  # fmt: skip

        locust_mb, library_mb, recording_mb = [], [], []
        for _ in range(args.rounds):
            locust_mb.append(rss_after_import("import locust"))
            library_mb.append(rss_after_import("import locust_scenarios"))
            recording_mb.append(rss_after_import(RECORDING))
        import_met = statistics.median(library_mb) <= IMPORT_GOAL_MB
        print(f"\nprocess after `import locust`: {spread(locust_mb, ' MB')}")
        verdict = "met" if import_met else "below goal"
        print(f"process after `import locust_scenarios`: {spread(library_mb, ' MB')}; "
              f"goal <= {IMPORT_GOAL_MB:g} MB: {verdict}")  # fmt: skip
        print(f"process that records (a worker of a master with --run-dir, pandas not loaded): "
              f"{spread(recording_mb, ' MB')}; no goal")  # fmt: skip
        return 0 if user_met and import_met else 1
    finally:
        stop_nginx(nginx)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
