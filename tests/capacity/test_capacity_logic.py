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
    JourneyCounts,
    JourneyTally,
    SearchSettings,
    Snapshot,
    add_taken,
    describe_goodput,
    goodput_rules,
    judge_step,
    parse_capacity,
    render_svg,
    rules_from_message,
    window,
    write_outputs,
)
from compliance_loadtest.errors import ProfileError
from compliance_loadtest.profiles import parse_profile

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
    late = JourneyCounts(seen=190, late=150)
    step = judge_step(3, 20.0, ZERO, new, spec(), pool=1, journeys=late)
    assert step.generator_limited is not None and "started late" in step.generator_limited
    on_time = JourneyCounts(seen=190, late=2)
    assert judge_step(3, 20.0, ZERO, new, spec(), pool=1, journeys=on_time).generator_limited is None


GOODPUT_SLOS = [
    {"id": "journey", "metric": "goodput", "op": ">=", "value": "90%", "limits": {"response_time_ms": 300}},
    {
        "id": "worst-step",
        "metric": "goodput",
        "op": ">=",
        "value": "80%",
        "per": "entry",
        "limits": {"response_time_ms": 300},
    },
]
PROFILE, ASK = "GET /api/users/profile", "POST /api/assistant/ask"


def journeys(tallies: list[JourneyTally], iterations: range) -> None:
    """Ten iterations of a two-step journey, spread over the tallies (processes) round robin: the
    profile lookup failed in iteration 0, the question took 500 ms (over 300) in iterations 1-3."""
    for i in iterations:
        tally = tallies[i % len(tallies)]
        at = 100.0 + i
        for step, ms in ((PROFILE, 50.0), (ASK, 500.0 if i in (1, 2, 3) else 100.0)):
            kind, name = step.split(" ", 1)
            tally.observe(
                kind,
                name,
                "",
                intended=at,
                started=at,
                response_time=ms,
                corrected=ms,
                failed=i == 0 and step == PROFILE,
            )
        # a stream measure of the reply is not a step of its own
        tally.observe(
            "LLM",
            "SSE inter-token latency",
            "ai",
            intended=at,
            started=at,
            response_time=5,
            corrected=5,
            failed=False,
        )


def test_goodput_per_journey_step_and_for_the_whole_journey() -> None:
    capacity = parse_capacity({"slos": GOODPUT_SLOS}, "cap.yaml")
    tally = JourneyTally(capacity.slos)
    journeys([tally], range(10))
    counts = tally.window(100.0, 110.0)
    step = judge_step(1, 1.0, ZERO, Snapshot(10.0, {}, 10), capacity, pool=5, journeys=counts)
    journey, worst = step.slos
    # 4 of 10 iterations had a step that broke the SLO; each step alone broke it in 1 and 3 of 10
    assert (journey.value, journey.entry, journey.held) == (pytest.approx(0.6), "whole journey", False)
    assert (worst.value, worst.entry, worst.held) == (pytest.approx(0.7), ASK, False)
    assert step.goodput == pytest.approx(0.6)
    assert step.step_goodput == {PROFILE: pytest.approx(0.9), ASK: pytest.approx(0.7)}
    figures = step.as_dict()
    assert figures["step_goodput"] == {PROFILE: 0.9, ASK: 0.7}
    assert figures["slos"][0]["steps"] == [
        {"step": PROFILE, "iterations": 10, "goodput": 0.9},
        {"step": ASK, "iterations": 10, "goodput": 0.7},
    ]
    assert not step.good and any(
        r.startswith("worst-step: goodput >= 80.00% broken (0.7 at POST") for r in step.reasons
    )
    assert describe_goodput(figures) == f"goodput 60.0% ({PROFILE} 90.0%, {ASK} 70.0%)"


def test_workers_tallies_summed_on_the_master_give_the_same_goodput() -> None:
    """Each worker counts its own iterations (the SLOs reach it as plain data) and reports what changed
    since its last report; the master's sum judges the step as one process would, and a window
    holds only the iterations due in it, whenever their counts arrived."""
    capacity = parse_capacity({"slos": GOODPUT_SLOS}, "cap.yaml")
    workers = [JourneyTally(rules_from_message(goodput_rules(capacity))) for _ in range(2)]
    master: dict[int, JourneyCounts] = {}
    journeys(workers, range(6))
    for worker in workers:  # a report mid-step, then the rest
        add_taken(master, worker.take())
    journeys(workers, range(6, 10))
    for worker in workers:
        add_taken(master, worker.take())
    alone = JourneyTally(capacity.slos)
    journeys([alone], range(10))
    assert window(master, 100.0, 110.0) == alone.window(100.0, 110.0)
    counts = window(master, 100.0, 110.0)
    step = judge_step(1, 1.0, ZERO, Snapshot(10.0, {}, 10), capacity, pool=5, journeys=counts)
    assert [f.value for f in step.slos] == [pytest.approx(0.6), pytest.approx(0.7)]
    assert window(master, 104.0, 110.0).seen == 6
    assert window(master, 104.0, 110.0).goodput("journey") == pytest.approx(1.0)
