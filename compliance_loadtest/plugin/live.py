"""The live verdict: the analysis's threshold rules judged while the run goes, and rules that stop it.

Every second (less often when an evaluation takes more than a tenth of that) the master (or the
single local process) evaluates the thresholds file over the exact request record it holds: the
`--thresholds` file, or in the web UI the shipped `analysis/thresholds.yaml` when none is given
(headless runs are judged only with one). It uses the analysis's own functions (`record_from_tables`,
`compute_stats`, `evaluate`), once over the run so far and once over a sliding window of the requests
that started in the last `--verdict-window` seconds (a rule with `abort` uses its own window), so the
figures are those the analysis computes from the same rows. The judging runs on a thread of gevent's
pool while the loop goes on: the users of the process keep sending and timing their requests.

A rule with `abort` that breaks over its window, on at least `min_samples` requests, once `after` has
passed since the start, stops the run: headless runs quit with exit code 1, the web UI stops the test.
run.json's `stopped_by` says which rule, when, and the value; the analysis reports it as a failure.

Where the rows come from: the run folder's writer (`run_output.RUN_OUTPUTS`) hands over every table it
gathers, workers' included; without `--run-dir` a local process records its own, and a master without
`--run-dir` has no rows (its workers send none), which the Verdict tab says. The web UI's Verdict tab is
`verdict_tab`. This module runs on the master or local process only; it must not start greenlets before
`on_init`, nor write into the run folder itself.
"""

from __future__ import annotations

import logging
import math
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import pandas as pd
import pyarrow as pa
from locust.runners import STATE_RUNNING, STATE_SPAWNING, MasterRunner, WorkerRunner

from analysis._load import RunData, record_from_tables
from analysis._stats import RunStats, compute_stats, entry_label
from analysis._system import SystemMetrics
from analysis._thresholds import (
    DEFAULT_MIN_SAMPLES,
    Rule,
    ThresholdResult,
    Thresholds,
    _applicable,
    evaluate,
    format_value,
    load_thresholds,
    samples_needed,
    select_entries,
)
from compliance_loadtest.errors import UsageError
from compliance_loadtest.plugin.ending import end_test
from compliance_loadtest.plugin.record import RequestRecorder
from compliance_loadtest.plugin.run_output import RUN_OUTPUTS, RunOutput, utc_iso
from compliance_loadtest.run_folder import StoppedBy

logger = logging.getLogger(__name__)

EVALUATE_EVERY_S = 1.0
"""How often the verdict is evaluated while users run."""

NOT_LIVE = SystemMetrics(sampled=False)
"""Resource rules are judged by the analysis from resources.csv, not while the run goes."""


class ThresholdsOptionError(UsageError):
    """`--thresholds` names no readable, valid thresholds file."""


@dataclass(frozen=True)
class Judged:
    """One rule on one entry (or the pooled selection) over some rows: what the Verdict tab shows."""

    rule: str
    entry: str
    limit: str
    value: float | None
    shown: str
    samples: int
    status: str
    """pass, fail, warn (a broken rule of severity warn), or not enough samples."""


@dataclass(frozen=True)
class Snapshot:
    """The verdict at one moment: over the run so far and over the window."""

    at: float
    rows: int
    so_far: tuple[Judged, ...]
    window: tuple[Judged, ...]
    window_s: float


@dataclass
class Event:
    """A moment of the timeline: a rule broke, held again, or stopped the run."""

    at: float
    rule: str
    entry: str
    what: str
    shown: str


@dataclass
class _Track:
    broken: dict[tuple[str, str], bool] = field(default_factory=dict)


def _frame(tables: Sequence[pa.Table]) -> pd.DataFrame | None:
    tables = [t for t in tables if t.num_rows]
    return record_from_tables(tables) if tables else None


def run_stats(record: pd.DataFrame | None) -> RunStats | None:
    """The analysis's statistics of some record rows (None without rows)."""
    if record is None or not len(record):
        return None
    run = RunData(
        path=Path("."),
        prefix=None,
        stats=None,
        history=None,
        failures=None,
        exceptions=None,
        locust_json=None,
        record=record,
        resources=None,
        run_info=None,
        arrival=None,
        benchmarks=None,
        perf_config=None,
        present=(),
        missing=(),
    )
    return compute_stats(run, with_timeline=False)


def _samples(stats: RunStats, rule: Rule, result: ThresholdResult) -> int:
    """Requests behind one result: the entry's, or every applicable entry's for a pooled rule."""
    keys = _applicable(stats, rule, select_entries(stats, rule.select))
    if rule.per == "entry":
        keys = [k for k in keys if entry_label(k) == result.entry]
    return sum(int(stats.rows[k]["count"]) for k in keys)


def judge(
    stats: RunStats | None, rules: Sequence[Rule], min_samples: int = DEFAULT_MIN_SAMPLES
) -> list[Judged]:
    """Each request rule over `stats`, as the analysis's `evaluate` judges it (`min_samples`: the
    thresholds file's), with sample counts. Too few samples for the rule (or for its `abort`) is "not
    enough samples", never a rule that broke."""
    out: list[Judged] = []
    for rule in rules:
        if rule.is_system or rule.metric.startswith("extra."):
            continue
        least = max(
            samples_needed(rule, min_samples), rule.abort.min_samples if rule.abort is not None else 1
        )
        if stats is None:
            out.append(Judged(rule.id, rule.describe_selection(), rule.text(), None, "n/a", 0, "no requests"))
            continue
        for result in evaluate(stats, NOT_LIVE, [rule], min_samples):
            samples = _samples(stats, rule, result) if result.value is not None else 0
            status = "not enough samples" if result.value is None or samples < least else result.status
            shown = format_value(rule.metric, result.value)
            out.append(Judged(rule.id, result.entry, rule.text(), result.value, shown, samples, status))
    return out


class LiveVerdict:
    """Judges the run while it goes; stops it when an `abort` rule breaks over its window."""

    def __init__(self, environment: Any, runner: Any, thresholds: Thresholds, window_s: float) -> None:
        self.environment = environment
        self.runner = runner
        self.thresholds = thresholds
        self.rules = tuple(
            r for r in thresholds.rules if not r.is_system and not r.metric.startswith("extra.")
        )
        self.window_s = window_s
        self.tables: list[pa.Table] = []
        self.rows = 0
        self.started: float | None = None
        self.snapshot: Snapshot | None = None
        self.timeline: list[Event] = []
        self.stopped_by: StoppedBy | None = None
        self._track = _Track()
        self.output: RunOutput | None = RUN_OUTPUTS.get(environment)
        self.recorder: RequestRecorder | None = None
        self.is_master = isinstance(runner, MasterRunner)
        if self.output is not None:
            self.output.table_listeners.append(self.add)
        elif not self.is_master:
            self.recorder = RequestRecorder("local")
            environment.events.request.add_listener(self.recorder.on_request)
        ev = environment.events
        ev.test_start.add_listener(self.on_test_start)
        ev.test_stop.add_listener(self.on_test_stop)
        ev.quitting.add_listener(self.on_quitting)
        self.greenlet = gevent.spawn(self._loop)

    @property
    def has_rows_source(self) -> bool:
        return self.output is not None or self.recorder is not None

    # --- rows ------------------------------------------------------------------------------------

    def add(self, table: pa.Table) -> None:
        if table.num_rows:
            self.tables.append(table)
            self.rows += table.num_rows

    def _gather(self) -> None:
        """Take this process's newest rows (the writer's or our own recorder's)."""
        if self.output is not None:
            self.output.take_local_rows()
        elif self.recorder is not None and len(self.recorder):
            self.add(self.recorder.take_table())
        if len(self.tables) > 64:  # fewer, larger tables convert faster
            self.tables = [pa.concat_tables(self.tables)]

    # --- evaluation ------------------------------------------------------------------------------

    def evaluate(self, now: float | None = None, off_the_loop: bool = False) -> Snapshot:
        """Judge every request rule over the run so far and over the window ending `now`.

        `off_the_loop`: judge on a thread of gevent's pool while this greenlet waits, so the users keep
        running (see `_loop`)."""
        self._gather()
        now = time.time() if now is None else now
        tables = tuple(self.tables)
        if off_the_loop:
            so_far, window = gevent.get_hub().threadpool.apply(self._judge, (tables, now))
        else:
            so_far, window = self._judge(tables, now)
        self.snapshot = Snapshot(now, self.rows, so_far, window, self.window_s)
        self._follow(self.snapshot)
        return self.snapshot

    def _judge(self, tables: Sequence[pa.Table], now: float) -> tuple[tuple[Judged, ...], tuple[Judged, ...]]:
        """The rules over the rows of `tables`: so far, and per window. Touches no state of the run."""
        record = _frame(tables)
        min_samples = self.thresholds.min_samples
        so_far = judge(run_stats(record), self.rules, min_samples)
        window: list[Judged] = []
        by_window: dict[float, list[Rule]] = {}
        for rule in self.rules:
            by_window.setdefault(rule.abort.window_s if rule.abort else self.window_s, []).append(rule)
        for seconds, rules in by_window.items():
            recent = None
            if record is not None:
                recent = record[record["timestamp"].to_numpy() >= now - seconds].reset_index(drop=True)
            window.extend(judge(run_stats(recent), rules, min_samples))
        order = {r.id: i for i, r in enumerate(self.rules)}
        window.sort(key=lambda j: order[j.rule])
        return tuple(so_far), tuple(window)

    def _follow(self, snap: Snapshot) -> None:
        """The timeline of window results, and the stop when an abort rule broke."""
        by_id = {r.id: r for r in self.rules}
        for j in snap.window:
            if j.status == "not enough samples" or j.status == "no requests":
                continue
            # A pooled rule's entry label counts the entries seen so far: one line of its own regardless.
            key = (j.rule, j.entry if by_id[j.rule].per == "entry" else "")
            broken = j.status in ("fail", "warn")
            if broken != self._track.broken.get(key, False):
                self._track.broken[key] = broken
                what = "broke" if broken else "held again"
                self.timeline.append(Event(snap.at, j.rule, j.entry, what, j.shown))
                log = logger.warning if broken else logger.info
                log("Live verdict: rule %s %s on %s: %s (%s)", j.rule, what, j.entry, j.shown, j.limit)
            rule = by_id[j.rule]
            if (
                broken
                and rule.abort is not None
                and self.stopped_by is None
                and self._may_abort(rule, snap.at)
            ):
                self._stop(rule, j, snap.at)

    def _may_abort(self, rule: Rule, now: float) -> bool:
        assert rule.abort is not None
        started = self.started if self.started is not None else now
        return now - started >= rule.abort.after_s and self.runner.state in (STATE_SPAWNING, STATE_RUNNING)

    def _stop(self, rule: Rule, j: Judged, now: float) -> None:
        assert rule.abort is not None
        message = f"{j.shown} over the last {rule.abort.window_s:g} s ({j.samples} requests) breaks {j.limit}"
        self.stopped_by = StoppedBy(
            rule=rule.id,
            at=utc_iso(now),
            entry=j.entry,
            value=None if j.value is None or math.isnan(j.value) else float(j.value),
            window_s=rule.abort.window_s,
            samples=j.samples,
            message=message,
        )
        if self.output is not None:
            self.output.stopped_by = self.stopped_by
        self.timeline.append(Event(now, rule.id, j.entry, "stopped the run", j.shown))
        logger.error("Rule %s stopped the run: %s on %s", rule.id, message, j.entry)
        # The process's exit code says a rule stopped a run, also from the web UI: a CI job that runs it
        # with --autostart --autoquit reads the failure as a headless one does.
        self.environment.process_exit_code = 1
        end_test(self.environment)

    # --- the run's course ------------------------------------------------------------------------

    def _loop(self) -> None:
        took = 0.0
        while True:
            # The users share this process: evaluation takes at most a tenth of its time, on a thread
            # (`off_the_loop`): judged on gevent's loop, every request in flight took the whole evaluation
            # into its response time (a 30 s run's p99.9: 5 ms without the verdict, 35 ms with it).
            gevent.sleep(max(EVALUATE_EVERY_S, took * 9))
            if self.runner.state not in (STATE_SPAWNING, STATE_RUNNING):
                continue
            began = time.perf_counter()
            try:
                self.evaluate(off_the_loop=True)
            except Exception:
                logger.exception("live verdict: evaluation failed")
            took = time.perf_counter() - began

    def on_test_start(self, **_kw: Any) -> None:
        if self.started is None:
            self.started = time.time()

    def on_test_stop(self, **_kw: Any) -> None:
        # A local runner's rows are all here once its users stopped; a master's come with the workers'
        # last reports, so evaluate again a little later too.
        gevent.spawn(self._final)
        gevent.spawn_later(3.0, self._final)

    def on_quitting(self, **_kw: Any) -> None:
        self._final()

    def _final(self) -> None:
        try:
            self.evaluate()
        except Exception:
            logger.exception("live verdict: evaluation failed")


def live_verdict_of(environment: Any) -> LiveVerdict | None:
    """The environment's live verdict, if it has one."""
    return LIVE_VERDICTS.get(environment)


LIVE_VERDICTS: weakref.WeakKeyDictionary[Any, LiveVerdict] = weakref.WeakKeyDictionary()


def on_init(environment: Any, runner: Any = None, **_kw: Any) -> None:
    """Start the live verdict on the master or local process (an `init` listener); the web UI's tabs are
    added from it by `verdict_tab.add_verdict_tab`."""
    opts = environment.parsed_options
    if runner is None or isinstance(runner, WorkerRunner) or opts is None:
        return
    path = getattr(opts, "thresholds", "") or None
    if getattr(opts, "no_live_verdict", False) or (path is None and getattr(opts, "headless", False)):
        return  # headless runs are judged while they go only when given a thresholds file
    from analysis.errors import ThresholdsError

    try:
        thresholds = load_thresholds(path)
    except ThresholdsError as exc:
        raise ThresholdsOptionError(f"--thresholds: {exc}") from None
    window = float(getattr(opts, "verdict_window", 30.0) or 30.0)
    if window <= 0:
        raise ThresholdsOptionError(f"--verdict-window must be more than 0 seconds, not {window:g}")
    verdict = LiveVerdict(environment, runner, thresholds, window)
    LIVE_VERDICTS[environment] = verdict
    if not verdict.has_rows_source:
        logger.warning("Live verdict: a distributed run needs --run-dir for the exact record it judges")
    aborting = [r.id for r in verdict.rules if r.abort is not None]
    if aborting:
        logger.info("Live verdict: %s may stop the run", ", ".join(aborting))
