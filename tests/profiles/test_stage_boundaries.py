"""A profile's stages depend on the elapsed time alone: tick at t, without a runner."""

from __future__ import annotations

import math

import pytest

from compliance_loadtest.profiles import ArrivalStage, iter_slot_offsets, parse_profile

THREE_STAGES = """
stages:
  - {duration: 10, users: 2, spawn_rate: 1}
  - {duration: 20, users: 8, spawn_rate: 4, mix: {A: 3, B: {fixed_count: 1}}}
  - {duration: 5, users: 0, spawn_rate: 2}
"""


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [
        (0.0, (2, 1.0, ())),
        (9.999, (2, 1.0, ())),
        (10.0, (8, 4.0, ("A", "B"))),  # a boundary belongs to the stage it starts
        (29.9, (8, 4.0, ("A", "B"))),
        (30.0, (0, 2.0, ())),
        (34.9, (0, 2.0, ())),
        (35.0, None),  # over: the shape stops the run
        (1e6, None),
    ],
)
def test_tick_at_elapsed_time_returns_the_stage_running_then(elapsed: float, expected: object) -> None:
    profile = parse_profile(THREE_STAGES, source="three.yaml")
    assert profile.tick(elapsed) == expected


def test_mix_keeps_weights_and_fixed_counts_by_class_name() -> None:
    stage = parse_profile(THREE_STAGES).stages[1]
    shares = {s.name: (s.weight, s.fixed_count) for s in stage.mix}
    assert shares == {"A": (3, 0), "B": (1, 1)}


def test_profile_level_mix_applies_to_stages_without_their_own() -> None:
    profile = parse_profile("mix: {A: 2}\nstages:\n  - {duration: 1, users: 1, spawn_rate: 1}\n")
    assert profile.stages[0].class_names() == ("A",)


def test_time_scale_compresses_durations_and_speeds_up_spawning() -> None:
    profile = parse_profile(THREE_STAGES).scaled(0.1)
    assert profile.duration == pytest.approx(3.5)
    assert profile.tick(0.99) == (2, 10.0, ())
    assert profile.tick(1.0) == (8, pytest.approx(40.0), ("A", "B"))
    assert profile.tick(3.5) is None


def test_constant_rate_gives_rate_times_duration_slots_evenly_spaced() -> None:
    offsets = list(iter_slot_offsets(ArrivalStage(20, 20), 6.0))
    assert len(offsets) == 120
    assert offsets[:3] == pytest.approx([0.0, 0.05, 0.10])


def test_shares_with_phases_interleave_into_the_whole_rate() -> None:
    whole = list(iter_slot_offsets(ArrivalStage(20, 20), 6.0))
    thirds = [list(iter_slot_offsets(ArrivalStage(20, 20), 6.0, share=1 / 3, phase=i / 3)) for i in range(3)]
    assert [len(t) for t in thirds] == [40, 40, 40]
    assert sorted(x for t in thirds for x in t) == pytest.approx(whole)


@pytest.mark.parametrize(("start", "end"), [(1, 10), (10, 2), (0, 6)])
def test_ramping_rate_slots_follow_the_integral_of_the_rate(start: float, end: float) -> None:
    stage = ArrivalStage(start, end)
    duration = 12.0
    offsets = list(iter_slot_offsets(stage, duration))
    assert len(offsets) == math.ceil(stage.iterations_by(duration, duration))
    # iteration k is due when k iterations are due: at each slot the integral equals its index
    for k, offset in enumerate(offsets):
        assert stage.iterations_by(offset, duration) == pytest.approx(k, abs=1e-6)
    assert offsets == sorted(offsets)


def test_arrival_profile_tick_spawns_the_pool_of_the_workflow() -> None:
    profile = parse_profile(
        "model: arrival\nworkflow: W\nmax_users: 7\nstages:\n  - {duration: 4, rate: 3}\n"
        "  - {duration: 4, rate: 3, rate_end: 9, max_users: 12}\n"
    )
    assert profile.tick(1) == (7, 7.0, ())
    assert profile.tick(5) == (12, 12.0, ())
    arrival = profile.stages[1].arrival
    assert arrival is not None and arrival.rate_at(2, 4) == pytest.approx(6.0)
