"""Real `locust -f locust_scenarios` runs for the profile tests, and reading what they wrote."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from locust_scenarios import locustfile_path
from locust_scenarios._profiles import Profile

SCENARIOS = locustfile_path()


@dataclass
class Run:
    """A Locust process started in the background; `finish()` waits for it."""

    process: subprocess.Popen[bytes]
    log: Path
    csv_prefix: Path | None

    def finish(self, timeout: float = 90.0) -> Run:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"locust did not stop by itself within {timeout}s:\n{self.output()}"
            ) from None
        return self

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def history(self) -> list[dict[str, str]]:
        """The Aggregated rows of `--csv-full-history` (one a second)."""
        assert self.csv_prefix is not None
        with open(f"{self.csv_prefix}_stats_history.csv", newline="") as f:
            return [row for row in csv.DictReader(f) if row["Name"] == "Aggregated"]

    def stats(self) -> dict[tuple[str, str], dict[str, str]]:
        """`--csv` stats rows keyed by (type, name)."""
        assert self.csv_prefix is not None
        with open(f"{self.csv_prefix}_stats.csv", newline="") as f:
            return {(row["Type"], row["Name"]): row for row in csv.DictReader(f)}


def start_locust(
    tmp: Path,
    label: str,
    args: Sequence[str],
    *,
    locustfiles: Sequence[str] = (),
    csv_history: bool = True,
    env: dict[str, str] | None = None,
) -> Run:
    """Start `locust -f locust_scenarios[,extra files] ARGS` in `tmp` (so no locust.conf applies)."""
    files = ",".join([SCENARIOS, *locustfiles])
    prefix = tmp / label if csv_history else None
    cmd = [sys.executable, "-m", "locust", "-f", files, "--only-summary", *args]
    if prefix is not None:
        cmd += ["--csv", str(prefix), "--csv-full-history"]
    log = tmp / f"{label}.log"
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("CGPT_LOAD_PROFILE", None)
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, cwd=tmp, stdout=out, stderr=subprocess.STDOUT, env=full_env)
    return Run(process, log, prefix)


def ideal_users(profile: Profile, until: float, dt: float = 0.05) -> list[tuple[float, float]]:
    """The user count a profile asks for over time: each stage's target, reached at its spawn rate."""
    points: list[tuple[float, float]] = [(t / 10, 0.0) for t in range(-30, 0)]  # before the start
    users = 0.0
    t = 0.0
    while t <= until:
        tick = profile.tick(t)
        target = 0 if tick is None else tick[0]
        rate = 1e9 if tick is None else tick[1]
        step = rate * dt
        users = min(users + step, target) if users < target else max(users - step, target)
        points.append((t, users))
        t += dt
    return points


def deviations(
    profile: Profile,
    history: list[dict[str, str]],
    lag: float = 2.5,
    lead: float = 1.5,
    tolerance: float = 1.0,
) -> list[str]:
    """History rows whose user count matches the ideal curve nowhere in [t - lag, t + lead] within
    `tolerance` users. Lag and lead cover the shape's one-second tick, the history's one-second
    rows and their whole-second timestamps."""
    if not history:
        return ["no history rows"]
    start = float(history[0]["Timestamp"])
    curve = ideal_users(profile, profile.duration + lead + 1)
    bad = []
    for row in history:
        t = float(row["Timestamp"]) - start
        if t > profile.duration + 1:
            break
        actual = int(row["User Count"])
        near = [u for (ct, u) in curve if t - lag <= ct <= t + lead]
        if not any(abs(actual - u) <= tolerance for u in near):
            bad.append(f"t={t:.0f}s: {actual} users, profile asks {min(near):.0f}..{max(near):.0f}")
    return bad
