"""Real `locust -f locust_scenarios` runs for the profile tests, and reading what they wrote."""

from __future__ import annotations

import csv
import itertools
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from compliance_loadtest import locustfile_path
from compliance_loadtest.profiles import Profile

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
    with_scenarios: bool = True,
) -> Run:
    """Start `locust -f locust_scenarios[,extra files] ARGS` in `tmp` (so no locust.conf applies);
    `with_scenarios=False` leaves the library's folder out (the extra files alone)."""
    files = ",".join([*([SCENARIOS] if with_scenarios else []), *locustfiles])
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
    max_shift: float = 3.0,
    min_stage: float = 1.5,
    max_gap: float = 1.5,
) -> tuple[list[str], int]:
    """Where a run's history departs from its profile (empty when it follows it), and how many
    rows and stages could be judged.

    - Each row's user count matches the ideal curve somewhere in [t - lag, t + lead] within
      `tolerance` users (the shape ticks once a second; the history writes whole-second rows).
    - Each stage of at least `min_stage` seconds shows its user count, within `tolerance`, in some
      row from its start to `lag` after its end.

    The history is written once a second by the process that runs the shape; a longer gap means
    that process got no CPU (an overloaded machine), its shape did not tick, and stages may have
    passed unseen. So a row right after such a gap, and a stage overlapping one, are not judged.
    The profile's start is the first row's time plus the shift (0 to `max_shift` s, in half
    seconds) that fits best: the history starts with Locust, the profile once its shape ticks."""
    if not history:
        return ["no history rows"], 0
    curve = ideal_users(profile, profile.duration + lead + 1)
    first = float(history[0]["Timestamp"])
    rows = [(float(row["Timestamp"]) - first, int(row["User Count"])) for row in history]
    gaps = [(a, b) for (a, _), (b, _) in itertools.pairwise(rows) if b - a > max_gap]
    best: tuple[list[str], int] | None = None
    for half_seconds in range(int(max_shift * 2) + 1):
        shift = half_seconds / 2
        bad = []
        judged = 0
        previous = None
        for when, actual in rows:
            t = when - shift
            after_gap = previous is not None and when - previous > max_gap
            previous = when
            if t > profile.duration + 1:
                break
            if after_gap:
                continue
            judged += 1
            near = [u for (ct, u) in curve if t - lag <= ct <= t + lead]
            if not any(abs(actual - u) <= tolerance for u in near):
                bad.append(f"t={t:.1f}s: {actual} users, profile asks {min(near):.0f}..{max(near):.0f}")
        start = 0.0
        for stage in profile.stages:
            end = start + stage.duration
            lo, hi = start + shift - 1, end + shift + 1
            froze = any(a < hi and b > lo for a, b in gaps)
            seen = [n for when, n in rows if start - 0.5 <= when - shift <= end + lag]
            if stage.duration >= min_stage and seen and not froze:
                judged += 1
                if all(abs(n - stage.users) > tolerance for n in seen):
                    bad.append(f"stage {stage.number} ({stage.users} users) never seen: {seen}")
            start = end
        if best is None or len(bad) < len(best[0]):
            best = (bad, judged)
    assert best is not None
    return best
