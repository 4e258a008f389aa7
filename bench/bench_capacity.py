"""Capacity search against a backend whose capacity is known: found against true, and the wall time.

For each configured capacity (SLOTS requests served at once, each held SERVICE_MS), one reference
backend on loopback and one capacity search of a one-request journey (`GET /api/users/profile`),
REPEATS times. The true capacity is SLOTS / SERVICE_MS requests (= iterations) per second. Printed
per configuration: the true capacity, the median and spread (min..max) of the found sustained rate
and of the search's wall time, the error of the median, and whether the issue's goal holds: found
within 10% of the true capacity.

    flock /tmp/loadtest.lock python bench/bench_capacity.py [--repeats 3] [--step 3]
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
from tests.backend_process import run_backend

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
"""


def search_once(
    work: Path, url: str, label: str, service_ms: float, step: float
) -> tuple[float | None, float]:
    profile = work / f"{label}.yaml"
    profile.write_text(PROFILE.format(pool=60, step=step, cooldown=step / 2, limit=int(service_ms * 2.5)))
    run_dir = work / f"{label}-run"
    cmd = [
        sys.executable, "-m", "locust", "-f", f"{locustfile_path()},{work / 'journey.py'}",
        "ProfileLookupJourney", "--headless", "--host", url, "--only-summary", "--stop-timeout", "2",
        "--load-profile", str(profile), "--run-dir", str(run_dir),
    ]  # fmt: skip
    started = time.monotonic()
    subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    wall = time.monotonic() - started
    result = json.loads((run_dir / "capacity.json").read_text())
    return (result["sustained_rate"] if result["valid"] else None), wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--step", type=float, default=3.0, help="seconds each step holds")
    args = parser.parse_args()
    all_met = True
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as tmp:
        work = Path(tmp)
        (work / "journey.py").write_text(LOCUSTFILE)
        for slots, service_ms in CONFIGS:
            true = slots / (service_ms / 1000)
            settings = {"CGPT_CAPACITY_SLOTS": str(slots), "CGPT_SERVICE_MS": str(service_ms)}
            found: list[float] = []
            walls: list[float] = []
            with run_backend(work, settings=settings) as backend:
                for i in range(args.repeats):
                    rate, wall = search_once(work, backend.url, f"c{slots}-{i}", service_ms, args.step)
                    walls.append(wall)
                    if rate is not None:
                        found.append(rate)
            if not found:
                print(f"capacity {true:g}/s: every search was invalid")
                all_met = False
                continue
            median = statistics.median(found)
            error = abs(median - true) / true
            met = error <= GOAL and len(found) == args.repeats
            all_met &= met
            print(
                f"true capacity {true:5.1f}/s ({slots} slots x {service_ms:g} ms): "
                f"found median {median:6.2f}/s "
                f"(min {min(found):.2f}, max {max(found):.2f}, {len(found)}/{args.repeats} valid), error "
                f"{error:.1%}; wall time median {statistics.median(walls):.1f}s "
                f"(min {min(walls):.1f}, max {max(walls):.1f}); goal within {GOAL:.0%}: "
                f"{'met' if met else 'NOT met'}"
            )
    print(
        f"goal (found within {GOAL:.0%} of the true capacity, every configuration): "
        f"{'met' if all_met else 'NOT met'}"
    )
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
