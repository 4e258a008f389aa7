"""What writing the exact request record costs in requests per second.

One Locust process of the library's own user (an `ApiUser` logged in through nginx, one `call` per task)
hammers a trivial nginx endpoint on loopback with the same users and duration, alternating, round by
round, the order rotated each round:
  - `no-record`: --run-dir with --no-request-record (resource samples, run.json, Locust's files),
  - `record`: --run-dir with the exact record,
  - with --plain also `plain`: no --run-dir (plain Locust plus the library's options).
Prints each run's requests per second and CPU microseconds per request, and the median ratios
`record / no-record` (the cost of the record itself, which must stay >= 0.95) and `record / plain`
(everything the run folder costs). On a machine shared with other work the wall-clock rate swings with
the neighbours' load; requests per CPU-second of the load generator (CPU time and requests counted from
test start to test stop) is the rate a load generator with a core to itself would reach, and is the
figure to compare there.

    python bench/bench_record.py [--rounds 5] [--seconds 15] [--users 10] [--plain]
"""

from __future__ import annotations

import argparse
import re
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _nginx import JSON_OK, LOGIN_OK, start_nginx  # bench/ is the script's folder

LOCUSTFILE = """
import os

from locust import constant, events, task

from locust_scenarios import Api, ApiUser

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
    # Writing after the run (final part, reports) does not slow requests down and is left out.
    if "cpu" in _start:
        used = _cpu() - _start.pop("cpu")
        requests = environment.runner.stats.total.num_requests
        print(f"BENCH_WINDOW cpu={used:.4f} requests={requests}", flush=True)


class BenchApi(Api):
    PATHS = {**Api.PATHS, "bench.ok": "/ok"}
    REQUIRED_FIELDS = {**Api.REQUIRED_FIELDS, "bench.ok": ("ok",)}


class OkUser(ApiUser):
    wait_time = constant(0)
    api_class = BenchApi

    @task
    def ok(self):
        self.call("GET", "bench.ok", read=False)
"""

CONDITIONS = ("plain", "no-record", "record")


def final_figures(output: str) -> tuple[int, float, float]:
    """Requests and requests per second (Locust's final `Aggregated` row), and the CPU seconds the
    load generator used for the requests of the steady state (requests counted in the same window)."""
    rows = [line for line in output.splitlines() if line.strip().startswith("Aggregated") and "|" in line]
    window = re.search(r"BENCH_WINDOW cpu=([0-9.]+) requests=([0-9]+)", output)
    if not rows or not window:
        raise SystemExit(f"no final statistics in Locust's output:\n{output[-3000:]}")
    fields = rows[-1].split("|")
    cpu_per_request = float(window.group(1)) / max(int(window.group(2)), 1)
    return int(fields[0].split()[1]), float(fields[2].split()[0]), cpu_per_request


def run_once(
    work: Path, locustfile: Path, url: str, condition: str, n: int, users: int, seconds: int
) -> float:
    cmd = [
        sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--only-summary",
        "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "-H", url,
        "--login-email", "bench@loadtest.example.com", "--login-password", "bench",
    ]  # fmt: skip
    if condition != "plain":
        cmd += ["--run-dir", str(work / f"run-{condition}-{n}")]
    if condition == "no-record":
        cmd += ["--no-request-record"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise SystemExit(f"locust exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    return final_figures(done.stdout + done.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--plain", action="store_true", help="also run without --run-dir at all")
    args = parser.parse_args()
    conditions = CONDITIONS if args.plain else CONDITIONS[1:]
    rps: dict[str, list[float]] = {c: [] for c in conditions}
    cpu_us: dict[str, list[float]] = {c: [] for c in conditions}
    with tempfile.TemporaryDirectory(prefix="bench-record-") as tmp:
        work = Path(tmp)
        locustfile = work / "ok_user.py"
        locustfile.write_text(LOCUSTFILE)
        nginx, url = start_nginx(work, JSON_OK, {"/api/auth/login": LOGIN_OK})
        try:
            for n in range(args.rounds):
                # Rotate the order each round so drift in the machine's load does not favour one condition.
                k = n % len(conditions)
                order = conditions[k:] + conditions[:k]
                for condition in order:
                    count, per_s, cpu = run_once(
                        work, locustfile, url, condition, n, args.users, args.seconds
                    )
                    rps[condition].append(per_s)
                    cpu_us[condition].append(cpu * 1e6)
                    print(
                        f"round {n + 1} {condition:>9}: {per_s:8.1f} req/s  {count:7d} requests  "
                        f"{cpu_us[condition][-1]:6.1f} us CPU per request",
                        flush=True,
                    )
        finally:
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(timeout=10)
    for c in conditions:
        print(
            f"median {c:>9}: {statistics.median(rps[c]):8.1f} req/s  "
            f"{statistics.median(cpu_us[c]):6.1f} us CPU per request"
        )
    pairs = [("record", "no-record", 0.95)]
    if args.plain:
        pairs.append(("record", "plain", None))
    met = True
    for a, b, goal in pairs:
        by_rps = [x / y for x, y in zip(rps[a], rps[b], strict=True)]
        # Requests per CPU-second: the rate the load generator would reach with a core to itself.
        by_cpu = [y / x for x, y in zip(cpu_us[a], cpu_us[b], strict=True)]
        print(f"ratio {a} / {b}: req/s {spread(by_rps)}; requests per CPU-second {spread(by_cpu)}")
        if goal is not None:
            ok = statistics.median(by_rps) >= goal
            met = met and ok
            print(f"  the record's own cost: goal >= {goal:.2f}: {'met' if ok else 'below goal'}")
    return 0 if met else 1


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} (min {min(values):.3f}, max {max(values):.3f})"


if __name__ == "__main__":
    sys.exit(main())
