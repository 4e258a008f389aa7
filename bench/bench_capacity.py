"""Capacity search against a backend whose capacity is known: found against true, and the wall time.

For each configured capacity (SLOTS requests served at once, each held SERVICE_MS), one reference
backend on loopback and one capacity search of a one-request journey (`GET /api/users/profile`),
REPEATS times, in one process and (side by side, `--processes 1,2`) with a master and workers: the
rate split among them, goodput judged on the master from their counts. The true capacity is
SLOTS / SERVICE_MS requests (= iterations) per second. Printed per configuration and process count:
the true capacity, the median and spread (min..max) of the found sustained rate, of the first
step's goodput and of the search's wall time, the error of the median, and whether the issue's goal
holds: found within 10% of the true capacity.

    flock /tmp/loadtest.lock python bench/bench_capacity.py [--repeats 3] [--step 3] [--processes 1,2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compliance_loadtest import locustfile_path
from tests.backend_process import free_port, run_backend

CONFIGS = ((2, 100.0), (4, 80.0))  # (slots, service ms): 20/s and 50/s
GOAL = 0.10

LOCUSTFILE = """
from locust import task
from locust_scenarios import ApiUser, dashboards


class ProfileLookupJourney(ApiUser):
    @task
    def look_up_profile(self):
        dashboards.profile(self)
"""

PROFILE = """\
model: capacity
workflow: ProfileLookupJourney
max_users: {pool}
search: {{start_rate: 5, max_rate: 160, step_duration: {step}, cooldown: {cooldown}, precision: 0.05,
  max_steps: 12}}
slos:
  - {{id: latency, metric: corrected.p95, op: "<", value: {limit}ms, per: all}}
  - {{id: errors, metric: failure_ratio, op: "<", value: 1%, per: all}}
  - {{id: goodput, metric: goodput, op: ">=", value: 50%, limits: {{response_time_ms: {goodput_ms}}}}}
"""


def search_once(
    work: Path, url: str, label: str, service_ms: float, step: float, processes: int
) -> tuple[float | None, float | None, float]:
    """(sustained rate or None when invalid, the first step's goodput, wall seconds)."""
    profile = work / f"{label}.yaml"
    limit = int(service_ms * 2.5)
    profile.write_text(
        PROFILE.format(pool=60, step=step, cooldown=step / 2, limit=limit, goodput_ms=limit * 4)
    )
    run_dir = work / f"{label}-run"
    cmd = [
        sys.executable, "-m", "locust", "-f", f"{locustfile_path()},{work / 'journey.py'}",
        "ProfileLookupJourney", "--headless", "--host", url, "--only-summary", "--stop-timeout", "2",
        "--load-profile", str(profile), "--run-dir", str(run_dir),
    ]  # fmt: skip
    if processes > 1:
        port = str(free_port())
        cmd += ["--processes", str(processes), "--master-bind-port", port, "--master-port", port]
    started = time.monotonic()
    subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    wall = time.monotonic() - started
    result = json.loads((run_dir / "capacity.json").read_text())
    first = result["steps"][0]["goodput"] if result["steps"] else None
    return (result["sustained_rate"] if result["valid"] else None), first, wall


def spread(values: list[float], fmt: str) -> str:
    if not values:
        return "n/a"
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"median {mid:{fmt}} (min {low:{fmt}}, max {high:{fmt}})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--step", type=float, default=3.0, help="seconds each step holds")
    parser.add_argument(
        "--processes", default="1", help="process counts side by side, e.g. 1,2 (2: a master and 2 workers)"
    )
    parser.add_argument(
        "--configs", default=",".join(f"{s}x{ms:g}" for s, ms in CONFIGS), help="SLOTSxSERVICE_MS, ..."
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
    configs = [(int(c.split("x")[0]), float(c.split("x")[1])) for c in args.configs.split(",")]
    all_met = True
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as tmp:
        work = Path(tmp)
        (work / "journey.py").write_text(LOCUSTFILE)
        for slots, service_ms in configs:
            true = slots / (service_ms / 1000)
            settings = {"CGPT_CAPACITY_SLOTS": str(slots), "CGPT_SERVICE_MS": str(service_ms)}
            found: dict[int, list[float]] = {n: [] for n in counts}
            goodputs: dict[int, list[float]] = {n: [] for n in counts}
            walls: dict[int, list[float]] = {n: [] for n in counts}
            with run_backend(work, settings=settings) as backend:
                for i in range(args.repeats):
                    for n in counts:  # interleaved, so a slow spell of the machine hits both
                        label = f"c{slots}-p{n}-{i}"
                        rate, goodput, wall = search_once(work, backend.url, label, service_ms, args.step, n)
                        walls[n].append(wall)
                        if rate is not None:
                            found[n].append(rate)
                        if goodput is not None:
                            goodputs[n].append(goodput)
            for n in counts:
                how = "one process" if n == 1 else f"{n} workers"
                if not found[n]:
                    print(f"true capacity {true:g}/s, {how}: every search was invalid; goal: below goal")
                    all_met = False
                    continue
                error = abs(statistics.median(found[n]) - true) / true
                met = error <= GOAL and len(found[n]) == args.repeats
                all_met &= met
                print(
                    f"true capacity {true:5.1f}/s ({slots} slots x {service_ms:g} ms), {how}: found "
                    f"{spread(found[n], '.2f')}/s, {len(found[n])}/{args.repeats} valid, error {error:.1%}; "
                    f"first step's goodput {spread(goodputs[n], '.3f')}; "
                    f"wall time {spread(walls[n], '.1f')} s; goal within {GOAL:.0%}: "
                    f"{'met' if met else 'below goal'}"
                )
    print(
        f"goal (found within {GOAL:.0%} of the true capacity, every configuration): "
        f"{'met' if all_met else 'below goal'}"
    )
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
