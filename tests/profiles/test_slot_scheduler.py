"""Start slots on time alone: on-time and late starts, drops, shares, and stop conditions."""

from __future__ import annotations

import pytest

from compliance_loadtest.plugin.arrival import SlotScheduler, StagePlan, corrected_response_time
from compliance_loadtest.profiles import ArrivalStage, StopCondition, window_verdict

T0 = 1_000.0


def plan(rate: float = 10.0, duration: float = 2.0, delay: float = 0.5, share: float = 1.0) -> StagePlan:
    return StagePlan(1, T0, duration, ArrivalStage(rate, rate), share, delay, "W")


def test_free_users_get_consecutive_slots_on_schedule() -> None:
    s = SlotScheduler()
    s.set_timeline([plan()], T0 - 1)
    slots = [s.claim(T0 - 1) for _ in range(3)]
    assert [slot.at for slot in slots if slot] == pytest.approx([T0, T0 + 0.1, T0 + 0.2])
    assert s.dropped == {}


def test_a_slot_overdue_within_the_grace_starts_late_and_beyond_it_is_dropped() -> None:
    drops: list[int] = []
    s = SlotScheduler(on_drop=drops.append)
    s.set_timeline([plan(delay=0.5)], T0)
    # nobody was free for 0.75 s: slots at 0.0, 0.1, 0.2 are more than 0.5 s overdue
    slot = s.claim(T0 + 0.75)
    assert slot is not None and slot.at == pytest.approx(T0 + 0.3)
    assert s.dropped == {1: 3} and drops == [1, 1, 1]


def test_stage_end_drops_the_due_slots_nobody_took_and_no_more() -> None:
    s = SlotScheduler()
    s.set_timeline([plan(rate=10, duration=2)], T0)
    s.claim(T0)
    s.finish(T0 + 1.0)  # slots at 0.1 .. 0.9 were due and never taken
    assert s.dropped == {1: 9}
    assert s.claim(T0 + 1.0) is None


def test_slots_run_on_into_the_next_stage_at_its_own_rate() -> None:
    s = SlotScheduler()
    first = plan(rate=2, duration=1, delay=10)
    second = StagePlan(2, T0 + 1, 1.0, ArrivalStage(4, 4), 1.0, 10, "W")
    s.set_timeline([first, second], T0)
    slots = [s.claim(T0) for _ in range(7)]
    assert [x.stage for x in slots if x] == [1, 1, 2, 2, 2, 2]
    assert [x.at - T0 for x in slots if x] == pytest.approx([0.0, 0.5, 1.0, 1.25, 1.5, 1.75])
    assert slots[-1] is None


def test_an_exhausted_stage_hands_out_nothing() -> None:
    s = SlotScheduler()
    s.set_timeline([plan(rate=2, duration=1, delay=10)], T0)
    assert [s.claim(T0) is not None for _ in range(3)] == [True, True, False]


def test_counts_are_reported_once_as_deltas() -> None:
    s = SlotScheduler()
    s.set_timeline([plan(delay=0.0)], T0)
    s.mark_started(1)
    s.claim(T0 + 0.25)  # drops 0.0, 0.1, 0.2
    assert s.take_counts() == {"1": [1, 3]}
    assert s.take_counts() == {}


def test_corrected_latency_counts_from_the_intended_start() -> None:
    assert corrected_response_time(start_time=10.5, intended_start=10.0, response_time=20.0) == pytest.approx(
        520.0
    )
    assert corrected_response_time(start_time=10.0, intended_start=10.2, response_time=20.0) == 20.0


STOP = StopCondition(failure_ratio=0.1, p95_ms=500, window=10, min_requests=10)


def test_stop_condition_judges_only_the_window_and_needs_enough_requests() -> None:
    old = (0.0, 100, 50, {10: 100})  # half failed before the window: not judged again
    assert window_verdict(old, (10.0, 105, 55, {10: 105}), STOP) is None  # 5 requests: too few
    assert window_verdict(old, (10.0, 200, 55, {10: 200}), STOP) is None  # 5% failed, all fast


def test_stop_condition_names_the_failure_ratio_it_saw() -> None:
    verdict = window_verdict((0.0, 0, 0, {}), (10.0, 40, 8, {10: 40}), STOP)
    assert verdict == "failure ratio 0.200 > 0.1 (8 of 40 requests)"


def test_stop_condition_names_the_p95_of_the_window_only() -> None:
    old = (0.0, 100, 0, {2000: 100})  # slow requests before the window do not count
    assert window_verdict(old, (10.0, 200, 0, {2000: 100, 10: 100}), STOP) is None
    new = (10.0, 120, 0, {2000: 100, 10: 10, 900: 10})  # half of the window's 20 took 900 ms
    assert window_verdict(old, new, STOP) == "p95 900 ms > 500 ms over the last 10s"
