"""Every shipped profile, run for real and time-scaled, makes Locust follow its user counts.

The runs start three at a time (a few seconds each) against the session's reference backend, with the
library's real user classes, and are judged from `--csv-full-history`'s user counts: each one-second
row must match the profile's ideal curve (each stage's target reached at its spawn rate) within one
user, somewhere within 2.5 s before to 1.5 s after the row (the shape ticks once a second and the
history's timestamps are whole seconds), the profile's start aligned to the history's by the shift
of 0 to 3 s that fits best.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from compliance_loadtest.profiles import Profile, load_profile
from tests.backend_process import Backend
from tests.profiles.runs import Run, deviations, start_locust

# Time scale per profile, so each lasts about five seconds.
SCALES = {
    "smoke": 0.08,
    "ramp": 0.015,
    "step": 0.0125,
    "spike": 0.03,
    "soak": 0.003,
    "peak": 0.008,
    "stress": 0.025,
    "arrival-constant": 0.03,
    "arrival-ramp": 0.02,
}


WAVE = 3


def classes_for(profile: Profile) -> list[str]:
    names = sorted(profile.class_names())
    return names or ["ComplianceUser"]


@pytest.fixture(scope="module")
def profile_runs(
    backend: Backend, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, tuple[Run, Profile]]]:
    tmp = tmp_path_factory.mktemp("profile-runs")
    runs: dict[str, tuple[Run, Profile]] = {}
    names = list(SCALES)
    for wave in range(0, len(names), WAVE):  # a few at a time: the machine has two cores
        started = []
        for name in names[wave : wave + WAVE]:
            scale = SCALES[name]
            profile = load_profile(name).scaled(scale)
            args = [
                *classes_for(profile),
                "--headless",
                "--host", backend.url,
                "--load-profile", name,
                "--profile-time-scale", str(scale),
                "--run-dir", str(tmp / f"{name}-run"),
                "--stop-timeout", "2",
            ]  # fmt: skip
            runs[name] = (start_locust(tmp, name, args), profile)
            started.append(name)
        for name in started:
            run, profile = runs[name]
            run.finish(timeout=profile.duration + 60)
    yield runs


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCALES))
def test_shipped_profile_run_follows_its_user_counts(
    name: str, profile_runs: dict[str, tuple[Run, Profile]]
) -> None:
    run, profile = profile_runs[name]
    assert run.returncode == 0, run.output()[-3000:]
    assert f"Load profile {name} (" in run.output()
    history = run.history()
    bad, judged = deviations(profile, history)
    assert bad == [], run.output()[-2000:]
    assert judged >= 2, f"the run froze throughout; nothing could be judged:\n{run.output()[-2000:]}"
    # The shape ticks once a second, so a compressed stage shorter than that may be skipped; the
    # busiest part of the profile is still reached, unless the load generator froze (a gap in its
    # once-a-second history: an overloaded machine), when only the rows it wrote can be judged.
    stamps = [int(row["Timestamp"]) for row in history]
    froze = any(b - a > 2 for a, b in pairwise(stamps))
    if not froze:
        peak = max(s.users for s in profile.stages)
        assert max(int(row["User Count"]) for row in history) >= 0.75 * peak
    assert sum(int(row["Total Request Count"]) for row in history[-1:]) > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["arrival-constant", "arrival-ramp"])
def test_shipped_arrival_profile_reports_every_stage(
    name: str, profile_runs: dict[str, tuple[Run, Profile]]
) -> None:
    run, profile = profile_runs[name]
    report = json.loads((Path(str(run.csv_prefix) + "-run") / "arrival.json").read_text())
    assert [s["stage"] for s in report["stages"]] == [s.number for s in profile.stages]
    assert all(s["started"] > 0 for s in report["stages"])
    assert report["stages"][0]["workflow"] == profile.workflow
