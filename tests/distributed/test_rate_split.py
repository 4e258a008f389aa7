"""An arrival rate split across workers: exactly the target together, and split again from the moment
a worker joins or is lost, mid-stage.

The split is checked on the slots themselves: worker parts that together are the target rate start
exactly the slots a single process would. The re-split runs a real master and real workers (Locust's
runners over ZeroMQ on loopback, in this process, without users: the slots are the subject).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import gevent
import pytest
from locust import User, task
from locust.env import Environment

from compliance_loadtest.plugin import arrival
from compliance_loadtest.plugin.arrival import SlotScheduler, StagePlan, arrival_run, split_timeline
from compliance_loadtest.profiles import ArrivalStage, iter_slot_offsets

T0 = 1_000.0


def whole(rate: float, rate_end: float, duration: float = 10.0) -> StagePlan:
    return StagePlan(1, T0, duration, ArrivalStage(rate, rate_end), 1.0, 5.0, "Journey")


def slots(plans: list[StagePlan], before: float = float("inf")) -> list[float]:
    return [
        p.started_at + offset
        for p in plans
        for offset in iter_slot_offsets(p.arrival, p.duration, p.share, p.phase)
        if p.started_at + offset < before
    ]


@pytest.mark.parametrize(("rate", "rate_end"), [(10, 10), (3, 17)])
def test_the_parts_of_the_rate_start_exactly_the_target_slots(rate: float, rate_end: float) -> None:
    target = slots([whole(rate, rate_end)])
    parts = split_timeline([whole(rate, rate_end)], 3)
    assert sum(part[0].share for part in parts) == pytest.approx(1.0)
    assert sorted(x for part in parts for x in slots(part)) == pytest.approx(target)


@pytest.mark.parametrize(("before", "after", "cut"), [(2, 1, 4.37), (2, 3, 6.0), (3, 2, 0.01)])
def test_a_split_again_mid_stage_continues_the_same_slots(before: int, after: int, cut: float) -> None:
    """Slots before the cut come from the old parts, from the cut on from the new ones: together they
    are the target's slots, none twice, none missing."""
    stage = whole(3, 17)
    old = split_timeline([stage], before)
    new = split_timeline([stage], after, at=T0 + cut)
    assert all(p[0].started_at == T0 + cut for p in new)
    taken = [x for part in old for x in slots(part, before=T0 + cut)] + [
        x for part in new for x in slots(part)
    ]
    assert sorted(taken) == pytest.approx(slots([stage]))


def test_after_a_resplit_the_old_slots_before_the_cut_stay_due_and_the_later_ones_are_void() -> None:
    s = SlotScheduler()
    s.set_timeline(split_timeline([whole(10, 10)], 2)[0], T0)  # slots at 0.0, 0.2, 0.4, ...
    claimed = s.claim(T0)  # a user holds the slot at 0.0
    ahead = s.claim(T0)  # and another one the slot at 0.2, past the cut below
    assert claimed is not None and ahead is not None
    s.resplit(split_timeline([whole(10, 10)], 1, at=T0 + 0.15)[0], T0 + 0.15)
    assert not s.is_void(claimed) and s.is_void(ahead)
    later = [s.claim(T0 + 0.15) for _ in range(3)]
    assert [slot.at - T0 for slot in later if slot] == pytest.approx([0.2, 0.3, 0.4])


# --- a real master and workers ------------------------------------------------------------------


def journey_class() -> type[User]:
    """A workflow class of its own for each worker: the arrival machinery patches the class it is
    given, and these workers share one process."""

    class Journey(User):
        @task
        def step(self) -> None:
            pass

    return Journey


def wait_for(check: Callable[[], bool], what: str, timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g}s: {what}")
        gevent.sleep(0.05)


@pytest.fixture
def master() -> Iterator[Environment]:
    env = Environment(user_classes=[journey_class()])
    runner = env.create_master_runner("127.0.0.1", 0)
    arrival.on_init(env, runner)
    yield env
    runner.quit()


def add_worker(master: Environment) -> Environment:
    env = Environment(user_classes=[journey_class()])
    runner = env.create_worker_runner("127.0.0.1", master.runner.server.port)
    arrival.on_init(env, runner)
    return env


def parts(workers: list[Environment]) -> list[StagePlan]:
    return [plan for w in workers for plan in arrival_run(w).scheduler.plans]


def test_the_master_splits_the_rate_again_when_a_worker_joins_and_when_one_is_lost(
    master: Environment,
) -> None:
    workers = [add_worker(master), add_worker(master)]
    wait_for(lambda: master.runner.worker_count == 2, "two workers connected")
    run = arrival_run(master)
    run.begin("split", "Journey")
    start = time.time()
    stage = StagePlan(1, start, 60.0, ArrivalStage(12, 12), 1.0, 1.0, "Journey")
    run.start_timeline([stage])
    try:
        wait_for(lambda: len(parts(workers)) == 2, "each worker has its part")
        assert sorted(p.phase for p in parts(workers)) == [0.0, 0.5]
        assert sum(p.share for p in parts(workers)) == pytest.approx(1.0)

        workers.append(add_worker(master))  # joins mid-stage: three parts from then on
        wait_for(lambda: len(run.splits) == 2 and len(parts(workers)) == 3, "a split over three workers")
        assert sum(p.share for p in parts(workers)) == pytest.approx(1.0)
        cut = parts(workers)[0].started_at
        assert all(p.started_at == cut for p in parts(workers))
        ahead = [x for x in slots([stage]) if x >= cut][:30]
        assert sorted(slots(parts(workers)))[:30] == pytest.approx(ahead)

        lost = workers.pop(1)
        lost.runner.greenlet.kill(block=True)  # no heartbeat from it any more, and no goodbye
        wait_for(lambda: len(run.splits) == 3, "a split over the two workers left")
        assert sum(p.share for p in parts(workers)) == pytest.approx(1.0)
        assert sorted(p.phase for p in parts(workers))[0] < 0.5 <= sorted(p.phase for p in parts(workers))[1]
        assert [s["workers"] for s in run.splits] == [2, 3, 2]
        assert 0 < run.splits[1]["after_s"] < run.splits[2]["after_s"] < 60
    finally:
        run.start_timeline([])
        for w in workers:
            w.runner.quit()
