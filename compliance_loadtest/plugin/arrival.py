"""Open-model (arrival-rate) load: iterations start at a target rate, whatever the replies' latency.

Closed-loop users send less when the server slows down, which hides the slowness (coordinated
omission). Here the load shape spawns a fixed pool of users of one workflow class, and this module
makes that class's users take *start slots*: intended start times handed out at the stage's rate. A
user that is free sleeps until its slot and then runs one task (one iteration). A slot whose time
passes while every user is busy may still start late, up to the profile's `max_start_delay`; after
that it is dropped and counted.

Every process that runs users has one `SlotScheduler`. The master (or the local process) tells them
each stage through a custom message, with each process's part of the rate (`split_timeline`: worker
i of n takes the global slots i, i+n, i+2n, ...), so together they start exactly the target rate.
When a worker joins, quits or is lost (its heartbeats stop), the master splits the rest of the
timeline again over the workers then connected, from that moment on, mid-stage. Workers send their
started/dropped counts back in their stats reports; the master writes them to `arrival.json` in
`--run-dir`, with every split (when, over how many workers).

What a run reports:
- stats entry `ARRIVAL` / `dropped iterations`: one event per dropped slot;
- `intended_start` in the context of every request made during an iteration (through the user's
  `context()`, which HTTP clients merge into each request event), so the exact record can correct;
- for each such request a second entry, request type suffixed ` (corrected)` (`GET (corrected)`),
  same name, whose response time counts from the intended start: the latency a user arriving on
  schedule would have seen.

Nothing here changes a class unless an arrival-rate stage runs, and the class is restored when the
run stops. `on_init` is registered by `compliance_loadtest.plugin.install`.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import math
import os
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gevent
from locust import TaskSet

from compliance_loadtest.plugin.reports import live_workers
from compliance_loadtest.profiles import ArrivalStage
from compliance_loadtest.run_folder import ARRIVAL_JSON, temporary_name

logger = logging.getLogger(__name__)

STAGE_MESSAGE = "cgpt_arrival_stage"
READY_MESSAGE = "cgpt_arrival_ready"
REPORT_KEY = "cgpt_arrival"
DROPPED_TYPE = "ARRIVAL"
DROPPED_NAME = "dropped iterations"
CORRECTED_SUFFIX = " (corrected)"
FINAL_REPORT_DELAY = 5.0
"""Seconds after a stop at which the master writes `arrival.json` again, with the workers' last counts
(their final stats reports arrive after the stop; a headless run also rewrites it when quitting)."""
IDLE_POLL = 0.25
"""Seconds a pool user sleeps before asking again when the current stage has no slot left."""
SPLIT_CHECK = 0.5
"""Seconds between the master's looks at its workers: a worker that joined, quit or was lost (Locust
marks it missing after three heartbeats, about 3 s) gets the rate split again within this."""


@dataclass(frozen=True)
class StagePlan:
    """One arrival stage as a process runs it: when it started (epoch seconds) and its share."""

    number: int
    started_at: float
    duration: float
    arrival: ArrivalStage
    share: float
    max_start_delay: float
    workflow: str
    phase: float = 0.0
    """Where this process's slots sit between the global ones (0 to 1; see `split_timeline`)."""

    def to_message(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "started_at": self.started_at,
            "duration": self.duration,
            "rate": self.arrival.rate,
            "rate_end": self.arrival.rate_end,
            "share": self.share,
            "max_start_delay": self.max_start_delay,
            "workflow": self.workflow,
            "phase": self.phase,
        }

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> StagePlan:
        return cls(
            number=int(data["number"]),
            started_at=float(data["started_at"]),
            duration=float(data["duration"]),
            arrival=ArrivalStage(float(data["rate"]), float(data["rate_end"])),
            share=float(data["share"]),
            max_start_delay=float(data["max_start_delay"]),
            workflow=str(data["workflow"]),
            phase=float(data.get("phase", 0.0)),
        )


def split_timeline(
    plans: Sequence[StagePlan], processes: int, at: float | None = None
) -> list[list[StagePlan]]:
    """Each of `processes` processes' part of a timeline of whole-rate stages, from `at` on (None: from
    its start). Process i takes the global slots i, i+n, i+2n, ... (share 1/n, phase i/n), so together
    the processes start exactly the timeline's slots, interleaved. Split at `at`, the stage under way
    continues from its rate at `at`, and the first slot after `at` is the next global slot: with
    the slots before `at` taken under the previous split, the sum is still exactly the timeline."""
    parts: list[list[StagePlan]] = [[] for _ in range(processes)]
    for plan in plans:
        end = plan.started_at + plan.duration
        if at is not None and end <= at:
            continue
        whole, extra = plan, 0.0
        if at is not None and plan.started_at < at:
            elapsed = at - plan.started_at
            due = plan.arrival.iterations_by(elapsed, plan.duration)
            extra = math.ceil(due) - due  # how far the next global slot is past `at`, in slots
            rest = ArrivalStage(plan.arrival.rate_at(elapsed, plan.duration), plan.arrival.rate_end)
            whole = replace(plan, started_at=at, duration=end - at, arrival=rest)
        for i, part in enumerate(parts):
            part.append(replace(whole, share=1.0 / processes, phase=(i + extra) / processes))
    return parts


@dataclass(frozen=True)
class Slot:
    """An intended start time (epoch seconds), the stage it belongs to and the timeline it came from."""

    at: float
    stage: int
    timeline: int = 0


@dataclass
class SlotScheduler:
    """Hands out start slots for one process, stage after stage of a timeline. Depends only on the
    times it is given, so its behaviour (late starts, drops, stage changes) is testable without a
    runner; and stage boundaries do not wait for the shape's once-a-second tick."""

    on_drop: Callable[[int], None] = field(default=lambda stage: None)
    plans: list[StagePlan] = field(default_factory=list)
    current: int = 0
    next_index: int = 0
    started: dict[int, int] = field(default_factory=dict)
    dropped: dict[int, int] = field(default_factory=dict)
    timeline: int = 0
    """Which timeline the plans are (each `set_timeline` or `resplit` makes a new one)."""
    backlog: list[tuple[Slot, float]] = field(default_factory=list)
    """Untaken slots of the timeline before a re-split, due before it, with their `max_start_delay`."""
    void_from: dict[int, float] = field(default_factory=dict)
    """Timeline -> the time from which its slots are void: a re-split gave them to the new one."""

    def set_timeline(self, plans: list[StagePlan], now: float) -> None:
        """Run `plans` (in order) from now on; the old timeline's due, untaken slots are dropped."""
        self.finish(now)
        self._new_timeline(plans)

    def resplit(self, plans: list[StagePlan], cut: float) -> None:
        """Run `plans`, this process's new part of the rate from `cut` on (see `split_timeline`).
        The old timeline's untaken slots before `cut` stay due, within their `max_start_delay`; its
        slots from `cut` on are void, also one a user already claimed (`is_void`)."""
        while (due := self._peek()) is not None and due[0].at < cut:
            self.next_index += 1
            self.backlog.append((due[0], due[1].max_start_delay))
        self.void_from[self.timeline] = cut
        self._new_timeline(plans)

    def _new_timeline(self, plans: list[StagePlan]) -> None:
        self.plans = list(plans)
        self.current = 0
        self.next_index = 0
        self.timeline += 1

    def is_void(self, slot: Slot) -> bool:
        """Whether a re-split gave `slot`'s time to the processes' new parts (it must not start)."""
        cut = self.void_from.get(slot.timeline)
        return cut is not None and slot.at >= cut

    def finish(self, now: float) -> None:
        """Drop every slot that is due by `now` and was never taken, and hand out no more."""
        for slot, _delay in self.backlog:
            if slot.at < now:
                self._drop(slot.stage)
        self.backlog.clear()
        while (due := self._peek()) is not None and due[0].at < now:
            self.next_index += 1
            self._drop(due[0].stage)
        self.plans = []

    def claim(self, now: float) -> Slot | None:
        """The next slot for a user free at `now`, or None when the timeline has none left. Slots
        more than their stage's `max_start_delay` overdue are dropped on the way."""
        while self.backlog:
            slot, delay = self.backlog.pop(0)
            if slot.at < now - delay:
                self._drop(slot.stage)
                continue
            return slot
        while (due := self._peek()) is not None:
            slot, plan = due
            self.next_index += 1
            if slot.at < now - plan.max_start_delay:
                self._drop(slot.stage)
                continue
            return slot
        return None

    def _peek(self) -> tuple[Slot, StagePlan] | None:
        while self.current < len(self.plans):
            plan = self.plans[self.current]
            offset = plan.arrival.slot_offset(self.next_index, plan.duration, plan.share, plan.phase)
            if offset is not None:
                return Slot(plan.started_at + offset, plan.number, self.timeline), plan
            self.current += 1
            self.next_index = 0
        return None

    def mark_started(self, stage: int) -> None:
        self.started[stage] = self.started.get(stage, 0) + 1

    def take_counts(self) -> dict[str, list[int]]:
        """Counts since the last call, keyed by stage number (as text: they travel as JSON-ish)."""
        stages = set(self.started) | set(self.dropped)
        counts = {str(n): [self.started.get(n, 0), self.dropped.get(n, 0)] for n in sorted(stages)}
        self.started.clear()
        self.dropped.clear()
        return counts

    def _drop(self, stage: int) -> None:
        self.dropped[stage] = self.dropped.get(stage, 0) + 1
        self.on_drop(stage)


@dataclass
class StageReport:
    """One stage's line of `arrival.json`."""

    number: int
    duration: float
    rate: float
    rate_end: float
    workflow: str
    started: int = 0
    dropped: int = 0

    def as_dict(self) -> dict[str, Any]:
        target = (self.rate + self.rate_end) / 2
        return {
            "stage": self.number,
            "workflow": self.workflow,
            "duration_s": round(self.duration, 3),
            "target_rate": round(target, 6),
            "rate_start": self.rate,
            "rate_end": self.rate_end,
            "started": self.started,
            "dropped": self.dropped,
            "achieved_rate": round(self.started / self.duration, 6) if self.duration > 0 else 0.0,
        }


class ArrivalRun:
    """The arrival-rate machinery of one Locust process (local, master or worker)."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self.scheduler = SlotScheduler(on_drop=self._fire_dropped)
        self.reports: dict[int, StageReport] = {}
        self.profile_name: str | None = None
        self._instrumented: dict[type[Any], dict[str, Any]] = {}
        self._ready: set[int] = set()
        self._ready_by_worker: dict[str, int] = {}
        self.workflow: str | None = None
        """The workflow of the arrival profile under way (master or local), None outside one."""
        self.timeline: list[StagePlan] = []
        """The stages at their whole rate, as the master splits them among its workers."""
        self.split_over: tuple[str, ...] = ()
        """The workers the timeline was last split over (master)."""
        self.splits: list[dict[str, Any]] = []
        """Every split of the rate: when (seconds after the profile's clock started) and over how many
        workers."""
        self._clock_started: float | None = None
        self._watcher: Any = None

    # --- master or local: stages ------------------------------------------------------------

    def begin(self, profile_name: str, workflow: str) -> None:
        """An arrival profile starts (master or local): forget the previous run's stages and have
        every process make `workflow` wait for slots before its pool of users is spawned."""
        self.profile_name = profile_name
        self.workflow = workflow
        self.reports.clear()
        self.splits.clear()
        self._clock_started = None
        self.scheduler.take_counts()
        self._ready.clear()
        self._ready_by_worker.clear()
        self.environment.runner.send_message(STAGE_MESSAGE, {"workflow": workflow, "stages": []})

    def on_worker_connect(self, client_id: str) -> None:
        """A worker joins while an arrival profile runs (master): it makes the workflow wait for slots
        before Locust gives it users (this message reaches it first), and gets its part of the rate
        at the next split check."""
        if self.workflow is None:
            return
        message = {"workflow": self.workflow, "stages": []}
        self.environment.runner.send_message(STAGE_MESSAGE, message, client_id=client_id)
        self.split_over = ()  # also a worker that reconnects: its timeline was just emptied

    def ready_users(self) -> int:
        """Pool users done with `on_start` and waiting for slots, in every process."""
        return len(self._ready) + sum(self._ready_by_worker.values())

    def on_ready_message(self, node_id: str, data: dict[str, Any]) -> None:
        self._ready_by_worker[node_id] = int(data.get("ready", 0))

    def _user_ready(self, user: Any) -> None:
        """A pool user asks for its first slot: it is ready (its `on_start`, e.g. a login, is over)."""
        key = id(user)
        if key in self._ready:
            return
        self._ready.add(key)
        from locust.runners import WorkerRunner

        if isinstance(self.environment.runner, WorkerRunner):
            self.environment.runner.send_message(READY_MESSAGE, {"ready": len(self._ready)})

    def start_timeline(self, plans: list[StagePlan]) -> None:
        """The profile's clock starts: tell every user-running process all its stages at once, each
        its part of the rate (`plans` are at their whole rate). Empty: no more slots anywhere."""
        for plan in plans:
            self.reports[plan.number] = StageReport(
                plan.number, plan.duration, plan.arrival.rate, plan.arrival.rate_end, plan.workflow
            )
        self.timeline = list(plans)
        self.split(None)
        if plans and self._watcher is None and self._is_master:
            self._watcher = gevent.spawn(self._keep_split)

    def end_stages(self) -> None:
        self.workflow = None
        self.timeline = []
        if self.reports:
            self.environment.runner.send_message(STAGE_MESSAGE, {"workflow": None, "stages": []})

    @property
    def _is_master(self) -> bool:
        from locust.runners import MasterRunner

        return isinstance(self.environment.runner, MasterRunner)

    def live_workers(self) -> tuple[str, ...]:
        """The workers that get a part of the rate (master), in the order of their index."""
        runner = self.environment.runner
        if not self._is_master:
            return ("",)
        return tuple(sorted(live_workers(runner), key=runner.get_worker_index))

    def split(self, at: float | None) -> None:
        """Send every live worker its part of the rest of the timeline, from `at` on (None: all of
        it, a new timeline)."""
        runner = self.environment.runner
        workers = self.live_workers()
        self.split_over = workers
        if not self.timeline:
            runner.send_message(STAGE_MESSAGE, {"workflow": None, "stages": []})
            return
        if not workers:
            return
        since = at if at is not None else self.timeline[0].started_at
        if self._clock_started is None:
            self._clock_started = since
        self.splits.append({"after_s": round(since - self._clock_started, 3), "workers": len(workers)})
        for worker, part in zip(workers, split_timeline(self.timeline, len(workers), at), strict=True):
            message: dict[str, Any] = {
                "workflow": self.timeline[0].workflow,
                "stages": [plan.to_message() for plan in part],
            }
            if at is not None:
                message["cut"] = at
            runner.send_message(STAGE_MESSAGE, message, client_id=worker or None)

    def _keep_split(self) -> None:
        """Split the rest of the timeline again whenever the live workers change (master)."""
        try:
            while self.timeline:
                gevent.sleep(SPLIT_CHECK)
                now = time.time()
                if not self.timeline or now >= max(p.started_at + p.duration for p in self.timeline):
                    return
                workers = self.live_workers()
                if workers and workers != self.split_over:
                    logger.info(
                        "Arrival rate: %d worker(s) now, %d before: the rest of the timeline is split "
                        "again over them",
                        len(workers),
                        len(self.split_over),
                    )
                    self.split(now)
        finally:
            self._watcher = None

    def add_counts(self, counts: dict[str, list[int]]) -> None:
        for key, (started, dropped) in counts.items():
            report = self.reports.get(int(key))
            if report is not None:
                report.started += started
                report.dropped += dropped

    def write_report(self) -> Path | None:
        """Write `arrival.json` into `--run-dir` (master or local process only)."""
        if not self.reports:
            return None
        from locust.runners import WorkerRunner

        if isinstance(self.environment.runner, WorkerRunner):
            return None
        self.add_counts(self.scheduler.take_counts())
        run_dir = getattr(self.environment.parsed_options, "run_dir", "") or ""
        if not run_dir:
            return None
        path = Path(run_dir) / ARRIVAL_JSON
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "profile": self.profile_name,
            "dropped_entry": {"request_type": DROPPED_TYPE, "name": DROPPED_NAME},
            "corrected_suffix": CORRECTED_SUFFIX,
            "stages": [r.as_dict() for _, r in sorted(self.reports.items())],
            "splits": list(self.splits),
        }
        tmp = path.with_name(temporary_name(path.name))
        tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    # --- every process that runs users ------------------------------------------------------

    def on_stage_message(self, data: dict[str, Any]) -> None:
        now = time.time()
        workflow = data.get("workflow")
        if workflow:
            user_class = self._user_class(str(workflow))
            if user_class is None:
                logger.error("arrival-rate profile: this process has no user class %r", workflow)
                return
            if not data.get("stages"):
                self._ready.clear()  # a new profile run prepares its pool
            self.instrument(user_class)
        plans = [StagePlan.from_message(stage) for stage in data.get("stages") or []]
        if data.get("cut") is not None:
            self.scheduler.resplit(plans, float(data["cut"]))
        else:
            self.scheduler.set_timeline(plans, now)

    def _user_class(self, name: str) -> type | None:
        env = self.environment
        classes = {c.__name__: c for c in env.user_classes}
        classes.update(env.available_user_classes or {})
        return classes.get(name)

    def instrument(self, user_class: type[Any]) -> None:
        """Make `user_class` take start slots: a slot-fed `wait_time`, one task per slot, and
        `intended_start` in its `context()`. Undone by `restore()`."""
        if user_class in self._instrumented:
            return
        saved = {
            name: user_class.__dict__[name]
            for name in ("wait_time", "context")
            if name in user_class.__dict__
        }
        saved["tasks"] = user_class.tasks
        self._instrumented[user_class] = saved
        scheduler = self.scheduler
        original_context = user_class.context
        user_ready = self._user_ready

        def wait_time(user: Any) -> float:
            user_ready(user)
            slot = getattr(user, "_cgpt_slot", None)
            if slot is None:
                slot = scheduler.claim(time.time())
                if slot is None:
                    return IDLE_POLL
                user._cgpt_slot = slot
            return max(0.0, slot.at - time.time())

        def context(user: Any) -> dict[str, Any]:
            ctx = dict(original_context(user))
            intended = getattr(user, "_cgpt_intended_start", None)
            if intended is not None:
                ctx["intended_start"] = intended
            return ctx

        user_class.wait_time = wait_time
        user_class.context = context
        user_class.tasks = [_one_iteration(task, scheduler) for task in user_class.tasks]

    def restore(self) -> None:
        for user_class, saved in self._instrumented.items():
            for name in ("wait_time", "context"):
                if name in saved:
                    setattr(user_class, name, saved[name])
                elif name in user_class.__dict__:
                    delattr(user_class, name)
            user_class.tasks = saved["tasks"]
        self._instrumented.clear()

    def _fire_dropped(self, stage: int) -> None:
        self.environment.events.request.fire(
            request_type=DROPPED_TYPE,
            name=DROPPED_NAME,
            response_time=0,
            response_length=0,
            exception=None,
            context={"arrival_stage": stage},
            start_time=time.time(),
            response=None,
            url=None,
        )


def _one_iteration(task: Any, scheduler: SlotScheduler) -> Callable[[Any], None]:
    """Wrap a task so it runs only at a start slot, with the slot's time as `intended_start`."""
    if getattr(task, "_cgpt_arrival_iteration", False):
        return task  # type: ignore[no-any-return]

    def iteration(user: Any) -> None:
        while True:
            while getattr(user, "_cgpt_slot", None) is None:
                user.wait()  # the slot-fed wait_time claims a slot and sleeps until it is due
            slot: Slot = user._cgpt_slot
            user._cgpt_slot = None
            if not scheduler.is_void(slot):
                break  # else a re-split gave its time to the new parts of the rate: take another
        user._cgpt_intended_start = slot.at
        scheduler.mark_started(slot.stage)
        try:
            if inspect.isclass(task) and issubclass(task, TaskSet):
                task(user).run()
            else:
                task(user)
        finally:
            user._cgpt_intended_start = None

    if inspect.isclass(task):
        iteration.__name__ = task.__name__
        iteration.__dict__.update({k: v for k, v in vars(task).items() if k.startswith("locust_")})
    else:
        functools.update_wrapper(iteration, task)
    iteration._cgpt_arrival_iteration = True  # type: ignore[attr-defined]
    return iteration


# --- per-process wiring --------------------------------------------------------------------------

_runs: weakref.WeakKeyDictionary[Any, ArrivalRun] = weakref.WeakKeyDictionary()


def arrival_run(environment: Any) -> ArrivalRun:
    """The arrival machinery of this environment (created and wired at `init`)."""
    run = _runs.get(environment)
    if run is None:
        run = _runs[environment] = ArrivalRun(environment)
    return run


def corrected_response_time(start_time: float, intended_start: float, response_time: float) -> float:
    """Milliseconds from the intended start to the end of the reply; never below the measured time."""
    return max(0.0, (start_time - intended_start) * 1000.0) + response_time


def on_init(environment: Any, runner: Any = None, **_kwargs: Any) -> None:
    if runner is None:
        return
    run = arrival_run(environment)
    from locust.runners import MasterRunner, WorkerRunner

    if isinstance(runner, MasterRunner):
        runner.register_message(
            READY_MESSAGE, lambda environment, msg, **_: run.on_ready_message(msg.node_id, msg.data)
        )
        environment.events.worker_connect.add_listener(
            lambda client_id, **_: run.on_worker_connect(client_id)
        )
    else:
        runner.register_message(STAGE_MESSAGE, lambda environment, msg, **_: run.on_stage_message(msg.data))

    def on_request(
        request_type: str,
        name: str,
        response_time: float,
        response_length: int = 0,
        exception: BaseException | None = None,
        context: dict[str, Any] | None = None,
        start_time: float | None = None,
        **_kw: Any,
    ) -> None:
        intended = context.get("intended_start") if context else None
        if intended is None or request_type.endswith(CORRECTED_SUFFIX):
            return
        started = start_time if start_time is not None else time.time() - response_time / 1000.0
        ctx = {k: v for k, v in (context or {}).items() if k != "intended_start"}
        environment.events.request.fire(
            request_type=request_type + CORRECTED_SUFFIX,
            name=name,
            response_time=corrected_response_time(started, float(intended), response_time),
            response_length=response_length,
            exception=exception,
            context=ctx,
            start_time=started,
            response=None,
            url=None,
        )

    environment.events.request.add_listener(on_request)

    def on_test_stop(**_kw: Any) -> None:
        run.scheduler.finish(time.time())
        run.restore()
        run.write_report()
        if isinstance(runner, MasterRunner):
            gevent.spawn_later(FINAL_REPORT_DELAY, run.write_report)

    environment.events.test_stop.add_listener(on_test_stop)
    environment.events.quitting.add_listener(lambda **_: run.write_report())

    if isinstance(runner, WorkerRunner):
        environment.events.report_to_master.add_listener(
            lambda client_id, data, **_: data.__setitem__(REPORT_KEY, run.scheduler.take_counts())
        )
    if isinstance(runner, MasterRunner):
        environment.events.worker_report.add_listener(
            lambda client_id, data, **_: run.add_counts(data.get(REPORT_KEY) or {})
        )
