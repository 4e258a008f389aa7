"""The one load shape of the library: it runs the profile named by `--load-profile`.

Profiles are YAML data (`profiles/*.yaml`, or any path), validated before any load is sent; a bad
one stops Locust with exit code 2 and a message naming the file, stage and key. Without
`--load-profile` the shape takes itself out of the run at `init`, so `-u`, `-r`, `-t` and the web
UI's fields work exactly as in plain Locust. In the web UI, the `--load-profile` field is read again
when a run starts, so a profile can be chosen (or cleared) there.

Locust uses the first shape it finds and stops on two different ones; this one may be imported by any
number of locustfiles (Locust sees the same class, defined in one file, and keeps it once).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from pathlib import Path
from typing import Any

import gevent
from locust import LoadTestShape

from compliance_loadtest.capacity import (
    CapacityResult,
    CapacitySearch,
    EntrySnap,
    Snapshot,
    describe_goodput,
    judge_step,
    write_outputs,
)
from compliance_loadtest.errors import EXIT_INVALID_RUN, ProfileError
from compliance_loadtest.plugin.arrival import StagePlan, arrival_run
from compliance_loadtest.plugin.goodput import journey_counting
from compliance_loadtest.plugin.reports import fresh_reports
from compliance_loadtest.profiles import (
    ArrivalStage,
    Profile,
    Stage,
    StopCondition,
    load_profile,
    window_verdict,
)

logger = logging.getLogger(__name__)

TickResult = tuple[int, float] | tuple[int, float, list[Any] | None] | None


class LoadProfileShape(LoadTestShape):
    """Runs a load profile: each stage's users, spawn rate and user-class mix, in order, then stops.

    Arrival-rate profiles spawn the workflow class's pool first, start the profile's clock once it
    is up, and tell every process the rate of each stage. Stress profiles stop early when their
    stop condition holds and log where the backend broke (stage, users, elapsed time, reason).
    """

    use_common_options = True
    """Keeps the web UI's user count, spawn rate and run time fields usable for runs without a
    profile (the shape is then out of the run) and Locust's "options ignored" warning quiet."""

    runner: Any = None
    """The run's runner, set by Locust (and by `on_init`) before the first tick."""

    pool_warmup_timeout: float = 30.0
    """Seconds an arrival profile waits for its pool of users (spawned, `on_start` done) before
    starting its clock anyway."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.profile: Profile | None = None
        self.stopped_because: str | None = None
        """Why a stress profile stopped early (None while running or when it ran to the end)."""
        self._begun = False
        self._stage: Stage | None = None
        self._warming_since: float | None = None
        self._saved_mix: dict[type[Any], tuple[Any, Any]] = {}
        self._window: deque[tuple[float, int, int, dict[int, int]]] = deque()
        self.capacity: CapacityDriver | None = None
        """The running (or last) capacity search of a capacity profile."""

    def configure(self, profile: Profile | None) -> None:
        """Run `profile` from the next start on (None: no profile)."""
        self.profile = profile
        self.reset_time()

    def reset_time(self) -> None:
        super().reset_time()  # type: ignore[no-untyped-call]
        if self.runner is not None and gevent.getcurrent() is getattr(self.runner, "shape_greenlet", None):
            # A master restarts the clock when the first tick makes it spawn: the run goes on.
            return
        self._begun = False
        self._stage = None
        self._warming_since = None
        self.stopped_because = None
        self._window.clear()
        if self.capacity is not None:
            self.capacity.stop("a new run started")
            self.capacity = None

    def tick(self) -> TickResult:
        profile = self.profile
        if profile is None or self.runner is None:
            return None
        if not self._begun:
            self._begun = True
            self._begin(profile)
        if profile.is_arrival and self._warming_since is not None:
            return self._warm_up(profile)
        if profile.capacity is not None:
            return self._capacity_tick(profile)
        elapsed: float = self.get_run_time()  # type: ignore[no-untyped-call]
        at = profile.stage_at(elapsed)
        if at is None:
            self._end(f"profile {profile.name} completed after {elapsed:.1f}s")
            return None
        if at.stage is not self._stage:
            self._enter(profile, at.stage)
        if profile.stop_when is not None and (reason := self._stop_reason(profile.stop_when)):
            users = self.runner.user_count
            self.stopped_because = f"stage {at.stage.number}, {users} users, {elapsed:.1f}s in: {reason}"
            logger.warning("Load profile %s stopped at %s", profile.name, self.stopped_because)
            self._end(None)
            return None
        return at.stage.users, at.stage.spawn_rate, self._classes(at.stage)

    # --- stages ---------------------------------------------------------------------------------

    def _begin(self, profile: Profile) -> None:
        logger.info(
            "Load profile %s (%s, %d stages, %.0fs%s)",
            profile.name,
            profile.model,
            len(profile.stages),
            profile.duration,
            f", time scale {profile.time_scale:g}" if profile.time_scale != 1 else "",
        )
        if profile.is_arrival and profile.workflow:
            arrival_run(self.runner.environment).begin(profile.name, profile.workflow)
            self._warming_since = time.monotonic()

    def _warm_up(self, profile: Profile) -> TickResult:
        first = profile.stages[0]
        waited = time.monotonic() - (self._warming_since or 0.0)
        ready = arrival_run(self.runner.environment).ready_users()
        if ready >= first.users or waited > self.pool_warmup_timeout:
            if ready < first.users:
                logger.warning(
                    "Load profile %s: %d of %d pool users ready after %.0fs, starting anyway",
                    profile.name,
                    ready,
                    first.users,
                    waited,
                )
            self._warming_since = None
            super().reset_time()  # type: ignore[no-untyped-call]
            if profile.capacity is not None:
                self.capacity = CapacityDriver(self.runner, profile)
                self.capacity.start()
            else:
                self._start_timeline(profile)
            return self.tick()
        return first.users, first.spawn_rate, self._classes(first)

    def _capacity_tick(self, profile: Profile) -> TickResult:
        driver = self.capacity
        if driver is None or driver.done:
            self._end(f"capacity search of {profile.workflow} ended")
            return None
        stage = profile.stages[0]
        if stage is not self._stage:
            self._enter(profile, stage)
        return stage.users, stage.spawn_rate, self._classes(stage)

    def _enter(self, profile: Profile, stage: Stage) -> None:
        self._stage = stage
        logger.info(
            "Load profile %s: stage %d/%d, %d users%s for %.1fs",
            profile.name,
            stage.number,
            len(profile.stages),
            stage.users,
            f" at {stage.arrival.rate:g}->{stage.arrival.rate_end:g} iterations/s" if stage.arrival else "",
            stage.duration,
        )
        self._apply_mix(stage)

    def _start_timeline(self, profile: Profile) -> None:
        """Give every process all arrival stages with their start times, so slots change rate at
        the exact boundaries, not at the shape's next once-a-second tick."""
        if profile.workflow is None:
            return
        clock = time.time()
        plans = []
        for stage in profile.stages:
            if stage.arrival is not None:
                plans.append(
                    StagePlan(
                        number=stage.number,
                        started_at=clock,
                        duration=stage.duration,
                        arrival=stage.arrival,
                        share=1.0,  # the whole rate: arrival_run splits it among the workers
                        max_start_delay=profile.max_start_delay,
                        workflow=profile.workflow,
                    )
                )
            clock += stage.duration
        arrival_run(self.runner.environment).start_timeline(plans)

    def _end(self, message: str | None) -> None:
        if message:
            logger.info("Load profile: %s", message)
        if self.profile is not None and self.profile.is_arrival:
            arrival_run(self.runner.environment).end_stages()
        self._restore_mix()

    def _classes(self, stage: Stage) -> list[Any] | None:
        names = stage.class_names()
        if self.profile is not None and self.profile.workflow:
            names = (self.profile.workflow,)
        if not names:
            return None
        by_name = self.runner.environment.user_classes_by_name
        return [by_name[name] for name in names if name in by_name] or None

    def _apply_mix(self, stage: Stage) -> None:
        """Give the stage's classes its weights and fixed counts. Locust's dispatcher reads them
        only when its class list changes, so a new mix over the same classes restarts its picking."""
        if not stage.mix:
            return
        by_name = self.runner.environment.user_classes_by_name
        changed = False
        for share in stage.mix:
            cls: Any = by_name.get(share.name)
            if cls is None:
                continue
            self._saved_mix.setdefault(cls, (cls.weight, cls.fixed_count))
            if (cls.weight, cls.fixed_count) != (share.weight, share.fixed_count):
                cls.weight, cls.fixed_count = share.weight, share.fixed_count
                changed = True
        dispatcher = getattr(self.runner, "_users_dispatcher", None)
        if changed and dispatcher is not None and hasattr(dispatcher, "_user_gen"):
            dispatcher._user_generator = dispatcher._user_gen()
            dispatcher._try_dispatch_fixed = True

    def _restore_mix(self) -> None:
        for cls, (weight, fixed) in self._saved_mix.items():
            cls.weight, cls.fixed_count = weight, fixed
        self._saved_mix.clear()

    # --- stop condition -------------------------------------------------------------------------

    def _stop_reason(self, stop: StopCondition) -> str | None:
        """Judge the last `stop.window` seconds of requests (all entries together)."""
        total = self.runner.stats.total
        now = time.monotonic()
        snapshot = (now, total.num_requests, total.num_failures, dict(total.response_times))
        self._window.append(snapshot)
        while len(self._window) > 1 and self._window[1][0] <= now - stop.window:
            self._window.popleft()
        return window_verdict(self._window[0], snapshot, stop)


# --- capacity search --------------------------------------------------------------------------------


class CapacityDriver:
    """Runs a capacity profile's search on the master (or the single process), in its own greenlet:
    each step is an arrival stage at the search's next rate, judged on the stats between two
    snapshots; the result goes to `capacity.json` and `capacity.svg` in `--run-dir` and to the log."""

    slot_settle: float = 0.5
    """Seconds a step's end waits for the users whose slots fell due just before it to start them
    (they do within the loop's latency), before its counts are taken."""

    def __init__(self, runner: Any, profile: Profile) -> None:
        assert profile.capacity is not None and profile.workflow is not None
        self.runner = runner
        self.profile = profile
        self.spec = profile.capacity
        self.search = CapacitySearch(self.spec.search)
        self.result: CapacityResult | None = None
        self.done = False
        self._greenlet: Any = None
        self._counting = journey_counting(runner.environment)
        self._cpu: Any = None

    @property
    def distributed(self) -> bool:
        from locust.runners import MasterRunner

        return isinstance(self.runner, MasterRunner)

    def start(self) -> None:
        import psutil

        self._cpu = psutil.Process()
        self._cpu.cpu_percent()
        self._counting.start(self.spec)
        self._greenlet = gevent.spawn(self._run)

    def stop(self, why: str) -> None:
        """End the search now (the run stopped first): the result says it did not finish."""
        if self._greenlet is not None and not self.done:
            self._greenlet.kill(block=True)
            self._finish(why)

    def _run(self) -> None:
        try:
            self._search()
        except Exception:
            logger.exception("capacity search failed")
            self._finish("the search failed with an error (see the log)")
            return
        self._finish(None)

    def _search(self) -> None:
        s = self.spec.search
        arrival = arrival_run(self.runner.environment)
        number = 0
        warm = s.step_duration * s.warmup
        while (rate := self.search.next_rate()) is not None:
            number += 1
            logger.info(
                "Capacity search: step %d at %.3g iterations/s for %.1fs", number, rate, s.step_duration
            )
            plan = StagePlan(
                number=number,
                started_at=time.time(),
                duration=s.step_duration,
                arrival=ArrivalStage(rate, rate),
                share=1.0,  # split among the workers live at each moment (arrival_run)
                max_start_delay=self.profile.max_start_delay,
                workflow=self.profile.workflow or "",
            )
            arrival.start_timeline([plan])
            gevent.sleep(warm)
            old = self._snapshot()
            gevent.sleep(max(s.step_duration - warm, 0.0))
            new = self._snapshot()
            # The step's slots are over (each due and untaken one dropped); a user whose slot fell due
            # just before starts it within moments. Then its own counts are complete (on a master,
            # with the workers' fresh reports), and its rate is judged on all of its slots.
            arrival.start_timeline([])
            gevent.sleep(self.slot_settle)
            self._take_counts()
            report = arrival.reports[number]
            iterations = (report.started, report.dropped, plan.duration)
            # Goodput and late starts: the iterations due in the judged window, wherever they ran.
            journeys = self._counting.window(plan.started_at + warm, plan.started_at + s.step_duration)
            pool = self.profile.stages[0].users
            step = judge_step(number, rate, old, new, self.spec, pool, iterations, journeys)
            self.search.record(step)
            verdict = "good" if step.good else ("INVALID" if step.generator_limited else "broken")
            goodput = describe_goodput(step.as_dict())
            logger.info(
                "Capacity search: step %d at %.3g/s %s: achieved %.3g/s, %d dropped%s%s",
                number,
                rate,
                verdict,
                step.achieved_rate,
                step.dropped,
                f", {goodput}" if goodput else "",
                f"; {'; '.join(step.reasons)}" if step.reasons else "",
            )
            if not step.good and self.search.next_rate() is not None:
                arrival.start_timeline([])  # no new iterations while the backlog drains
                gevent.sleep(s.cooldown)
        arrival.start_timeline([])

    def _finish(self, ended_early: str | None) -> None:
        if self.done:
            return
        self.done = True
        self._counting.stop()
        result = self.search.result(self.profile.workflow or "", self.profile.name, ended_early)
        self.result = result
        log = logger.info if result.valid else logger.error
        log("Capacity search result: %s", result.summary())
        run_dir = getattr(self.runner.environment.parsed_options, "run_dir", "") or ""
        if run_dir:
            json_path, _ = write_outputs(result, Path(run_dir))
            logger.info("Capacity search written to %s", json_path)
        if not result.valid:
            self.runner.environment.process_exit_code = EXIT_INVALID_RUN

    # --- measuring ---------------------------------------------------------------------------

    def _take_counts(self) -> None:
        """Bring the stats and the stages' iteration counts up to now: on a master, once every
        worker's report as of now has arrived (`fresh_reports`), not one up to 3 s old."""
        env = self.runner.environment
        fresh_reports(env)  # nothing to wait for in one process
        arrival = arrival_run(env)
        arrival.add_counts(arrival.scheduler.take_counts())

    def _snapshot(self) -> Snapshot:
        """The stats, iterations and load-generator CPU as of now (`_take_counts`)."""
        self._take_counts()
        arrival = arrival_run(self.runner.environment)
        started = sum(report.started for report in arrival.reports.values())
        entries = {
            (e.method or "", e.name): EntrySnap(
                e.num_requests, e.num_failures, float(e.total_response_time), dict(e.response_times)
            )
            for e in self.runner.stats.entries.values()
        }
        cpu = float(self._cpu.cpu_percent()) if self._cpu is not None else 0.0
        if self.distributed:
            cpu = max([cpu] + [float(getattr(c, "cpu_usage", 0) or 0) for c in self.runner.clients.values()])
        return Snapshot(time.time(), entries, started, cpu)


# --- selecting the profile --------------------------------------------------------------------------


def _our_shape(environment: Any) -> LoadProfileShape | None:
    if isinstance(environment.shape_class, LoadProfileShape):
        return environment.shape_class
    for shape in (environment.available_shape_classes or {}).values():
        if isinstance(shape, LoadProfileShape):
            return shape
    return None


def _shape_for_a_locustfile_without_one(environment: Any) -> LoadProfileShape:
    """The shape for a locustfile that imports the library but not `LoadProfileShape` (Locust finds
    shape classes only among a locustfile's names): without it `--load-profile`, and the web UI's
    load_profile field, would be ignored, and a headless run without `-t` would never end. Locust's
    class picker lists it as it lists the shipped one."""
    shape = LoadProfileShape()
    if environment.available_shape_classes is not None:
        environment.available_shape_classes[type(shape).__name__] = shape
    return shape


def read_profile(value: str, time_scale: float, class_names: list[str]) -> Profile:
    """Load, check against the run's user classes, and compress a profile."""
    profile = load_profile(value, known_classes=class_names)
    return profile.scaled(time_scale) if time_scale != 1 else profile


def _time_scale(raw: object) -> float:
    try:
        scale = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ProfileError("--profile-time-scale", f"must be a positive number, got {raw!r}") from None
    if not scale > 0:
        raise ProfileError("--profile-time-scale", f"must be a positive number, got {raw!r}")
    return scale


def on_init(environment: Any, runner: Any = None, web_ui: Any = None, **_kwargs: Any) -> None:
    options = environment.parsed_options
    value = (getattr(options, "load_profile", "") or "").strip() if options else ""
    shape = _our_shape(environment)
    if shape is None:
        if environment.shape_class is not None:
            # A shape class of the locustfile's own runs the run, and nothing of ours touches it.
            if value:
                raise ProfileError(
                    "--load-profile",
                    f"the locustfile's shape class {type(environment.shape_class).__name__} already "
                    "shapes the run: drop --load-profile, or that class",
                )
            return
        shape = _shape_for_a_locustfile_without_one(environment)
    if not value:
        shape.configure(None)
        if environment.shape_class is shape:
            environment.shape_class = None  # plain Locust: -u, -r, -t and the web UI's fields
    else:
        try:
            profile = read_profile(
                value,
                _time_scale(getattr(options, "profile_time_scale", 1.0)),
                [c.__name__ for c in environment.user_classes],
            )
        except ProfileError:
            shape.configure(None)
            raise
        shape.configure(profile)
        environment.shape_class = shape
        shape.runner = runner
        if getattr(options, "num_users", None) or getattr(options, "spawn_rate", None):
            logger.info("Load profile %s sets users and spawn rate; -u/-r are not used", profile.name)
    # A run stopped before its profile ended (Stop button, SIGTERM, -t) gives the classes back
    # their own weights, so a later plain run in the same web UI is plain.
    environment.events.test_stop.add_listener(lambda **_: shape._restore_mix())
    # A run stopped before its capacity search ended (-t, Stop, a signal) still writes what it found,
    # marked unfinished.
    environment.events.test_stop.add_listener(lambda **_: _stop_capacity(shape))
    if web_ui is not None:
        _hook_web_ui(environment, web_ui, shape)


def _stop_capacity(shape: LoadProfileShape) -> None:
    if shape.capacity is not None:
        shape.capacity.stop("the run stopped before the search ended")


def _hook_web_ui(environment: Any, web_ui: Any, shape: LoadProfileShape) -> None:
    """Read the form's `load_profile` when a run starts in the web UI, before Locust's handler."""
    from flask import jsonify, request
    from werkzeug.datastructures import ImmutableMultiDict

    def choose_profile() -> Any:
        if request.method != "POST" or not (request.endpoint or "").endswith("swarm"):
            return None
        if "load_profile" not in request.form:
            return None  # a client that does not send the field keeps the current choice
        if getattr(environment.runner, "shape_greenlet", None) is not None:
            return None  # a profile is running: Locust refuses to edit it, and so do we
        value = request.form.get("load_profile", "").strip()
        picker = bool(getattr(web_ui, "userclass_picker_is_active", False))
        if picker:
            names = request.form.getlist("user_classes") or [c.__name__ for c in environment.user_classes]
        else:
            names = [c.__name__ for c in environment.user_classes]
        shape_name = type(shape).__name__
        if not value:
            shape.configure(None)
            environment.shape_class = None
            if picker and request.form.get("shape_class") == shape_name:
                return jsonify(
                    {
                        "success": False,
                        "message": f"{shape_name} runs a load profile: choose one in the load_profile field",
                        "host": environment.host,
                    }
                )
            return None
        try:
            scale = _time_scale(
                request.form.get("profile_time_scale", environment.parsed_options.profile_time_scale)
            )
            profile = read_profile(value, scale, names)
        except ProfileError as exc:
            logger.error("Bad load profile: %s", exc)
            return jsonify(
                {"success": False, "message": f"Bad load profile: {exc}", "host": environment.host}
            )
        shape.configure(profile)
        shape.runner = environment.runner
        environment.shape_class = shape
        if picker:
            # The class picker's form also chooses a shape ("Default" = none); a chosen profile
            # implies this one, so the user does not have to pick both.
            form = request.form.copy()
            form["shape_class"] = shape_name
            request.form = ImmutableMultiDict(form)
        return None

    web_ui.app.before_request(choose_profile)
