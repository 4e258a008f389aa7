"""The capacity search's logic and profile validation, without a run: steps judged from snapshots,
the doubling-then-bisection schedule, and bad profiles named by file and key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from compliance_loadtest.capacity import (
    CapacitySearch,
    EntrySnap,
    SearchSettings,
    Snapshot,
    judge_step,
    parse_capacity,
    render_svg,
    write_outputs,
)
from compliance_loadtest.profiles import ProfileError, parse_profile

SLOS = [
    {"id": "latency", "metric": "corrected.p95", "op": "<", "value": "250ms", "per": "all"},
    {"id": "errors", "metric": "failure_ratio", "op": "<", "value": "1%", "per": "all"},
]


def spec(**search: float):
    return parse_capacity({"search": search, "slos": SLOS}, "cap.yaml")


def snap(
    at: float, started: int, measured_ms: int, corrected_ms: int, n: int, failures: int = 0, dropped: int = 0
):
    entries = {
        ("GET", "/api/users/profile"): EntrySnap(n, failures, float(measured_ms * n), {measured_ms: n}),
        ("GET (corrected)", "/api/users/profile"): EntrySnap(
            n, failures, float(corrected_ms * n), {corrected_ms: n}
        ),
    }
    if dropped:
        entries[("ARRIVAL", "dropped iterations")] = EntrySnap(dropped, 0, 0.0, {0: dropped})
    return Snapshot(at, entries, started)


ZERO = Snapshot(0.0, {}, 0)


def test_a_step_within_every_slo_is_good() -> None:
    step = judge_step(1, 10.0, ZERO, snap(10.0, 100, 100, 120, 100), spec(), pool=20)
    assert step.good and step.reasons == () and step.generator_limited is None
    assert step.achieved_rate == pytest.approx(10.0)
    assert [f.value for f in step.slos] == [120.0, 0.0]


def test_a_step_past_the_knee_names_the_broken_slo_and_the_lagging_rate() -> None:
    step = judge_step(2, 20.0, ZERO, snap(10.0, 150, 400, 900, 150, failures=3), spec(), pool=40)
    assert not step.good and step.generator_limited is None
    assert step.reasons[0].startswith("latency: corrected.p95 < 250.0 ms broken (900")
    assert step.reasons[1].startswith("errors: failure_ratio < 1.00% broken")
    assert "achieved 15.00/s, behind the target 20.00/s" in step.reasons[2]


def test_late_starts_while_the_backend_is_fast_measure_the_generator() -> None:
    step = judge_step(3, 40.0, ZERO, snap(10.0, 200, 50, 800, 200, dropped=50), spec(), pool=1)
    assert not step.good
    assert step.generator_limited is not None and "pool of 1 users too small" in step.generator_limited


def test_a_hot_load_generator_makes_the_step_invalid() -> None:
    new = snap(10.0, 100, 100, 120, 100)
    hot = Snapshot(new.at, new.entries, new.started, loadgen_cpu=97.0)
    step = judge_step(1, 10.0, ZERO, hot, spec(), pool=20)
    assert step.generator_limited == "a load-generator process ran at 97% CPU (limit 90%)"


def fake_step(search: CapacitySearch, rate: float, capacity: float):
    n = int(rate * 10)
    corrected = 100 if rate <= capacity else 1000
    search.record(
        judge_step(len(search.steps) + 1, rate, ZERO, snap(10.0, n, corrected, corrected, n), spec(), 50)
    )


@pytest.mark.parametrize("capacity", [7.0, 20.0, 33.0])
def test_doubling_then_bisection_brackets_the_capacity(capacity: float) -> None:
    settings = SearchSettings(start_rate=2, max_rate=100, precision=0.05, max_steps=20)
    search = CapacitySearch(settings)
    rates = []
    while (rate := search.next_rate()) is not None:
        rates.append(rate)
        fake_step(search, rate, capacity)
    assert rates[:3] == [2, 4, 8]
    assert search.good is not None and search.broken is not None
    assert search.good <= capacity < search.broken
    assert (search.broken - search.good) / search.good <= 0.05
    assert capacity / search.good <= 1.10
    assert len(rates) <= 12
    result = search.result("Journey", "cap")
    assert result.valid and result.sustained_rate == search.good
    assert result.first_broken is not None and result.first_broken["slo"] == "latency"


def test_the_ceiling_is_never_passed() -> None:
    search = CapacitySearch(SearchSettings(start_rate=5, max_rate=30, max_steps=20))
    rates = []
    while (rate := search.next_rate()) is not None:
        rates.append(rate)
        fake_step(search, rate, 1000.0)
    assert rates == [5, 10, 20, 30]
    assert "ceiling" in search.stopped_because
    assert search.result("J", "cap").as_dict()["at_ceiling"] is True


def test_outputs_are_json_and_an_svg_chart(tmp_path: Path) -> None:
    search = CapacitySearch(SearchSettings(start_rate=2, max_rate=100, max_steps=20))
    while (rate := search.next_rate()) is not None:
        fake_step(search, rate, 20.0)
    result = search.result("Journey", "cap")
    json_path, svg_path = write_outputs(result, tmp_path)
    data = json.loads(json_path.read_text())
    assert data["valid"] is True and data["sustained_rate"] == result.sustained_rate
    assert {"target_rate", "achieved_rate", "dropped", "slos", "verdict"} <= set(data["steps"][0])
    assert svg_path.read_text() == render_svg(result)
    assert "knee" in svg_path.read_text()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("search: {start_rate: 0}\n", "key 'search.start_rate': must be a number above 0, got 0"),
        ("search: {speed: 3}\n", "key 'search.speed': unknown key"),
        ("search: {start_rate: 50, max_rate: 10}\n", "start_rate 50 is above max_rate 10"),
        ("", "key 'slos': a capacity profile needs a non-empty list"),
        ("stages: []\n", "key 'stages': not allowed in a capacity profile"),
    ],
)
def test_bad_capacity_profiles_name_the_file_and_key(extra: str, message: str) -> None:
    text = "model: capacity\nworkflow: J\nmax_users: 5\n" + extra
    if "slos" not in extra and message.find("slos") < 0:
        text += "slos: [{metric: p95, op: '<', value: 1s}]\n"
    with pytest.raises(ProfileError, match=r"^cap\.yaml: ") as info:
        parse_profile(text, source="cap.yaml")
    assert message in str(info.value)


def test_an_slo_the_search_cannot_judge_is_refused() -> None:
    text = "model: capacity\nworkflow: J\nmax_users: 5\nslos: [{metric: cpu_percent, op: '<', value: 80}]\n"
    with pytest.raises(ProfileError, match=r"cap.yaml: key 'slos\[0\].metric': 'cpu_percent' cannot judge"):
        parse_profile(text, source="cap.yaml")


def test_a_time_scale_shortens_the_steps_not_the_rates() -> None:
    text = "model: capacity\nworkflow: J\nmax_users: 5\n"
    text += "search: {step_duration: 20, cooldown: 10, start_rate: 3}\n"
    profile = parse_profile(text + "slos: [{metric: p95, op: '<', value: 1s}]\n", source="cap.yaml").scaled(
        0.1
    )
    assert profile.capacity is not None
    assert profile.capacity.search.step_duration == pytest.approx(2.0)
    assert profile.capacity.search.start_rate == 3
    assert profile.duration == pytest.approx(profile.capacity.search.longest)


def test_a_malformed_capacity_json_is_bad_input_for_the_analysis(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "capacity.json").write_text('{"valid": "yes", "sustained_rate": 3}')
    result = subprocess.run(
        [sys.executable, "-m", "analysis", str(run)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "capacity.json" in result.stderr and "'valid'" in result.stderr
    assert "Traceback" not in result.stderr


def test_late_first_requests_while_the_backend_is_fast_measure_the_generator() -> None:
    """All iterations started, none dropped, but most began well after their intended start: the
    pool, not the backend, was busy."""
    new = snap(10.0, 190, 50, 400, 190)
    late = Snapshot(new.at, new.entries, new.started, late_starts=(150, 190))
    old = Snapshot(0.0, {}, 0, late_starts=(0, 0))
    step = judge_step(3, 20.0, old, late, spec(), pool=1)
    assert step.generator_limited is not None and "started late" in step.generator_limited
    on_time = Snapshot(new.at, new.entries, new.started, late_starts=(2, 190))
    assert judge_step(3, 20.0, old, on_time, spec(), pool=1).generator_limited is None
