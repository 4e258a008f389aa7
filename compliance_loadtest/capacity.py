"""Capacity search: the highest arrival rate of a journey that still meets its SLOs.

A capacity profile (`model: capacity`) names a workflow (the journey, a user class), a pool of users,
a `search` block (first rate, ceiling, how long each step holds) and `slos`: rules in the analysis's
thresholds language (`corrected.p95 < 500ms`, `failure_ratio < 1%`, `goodput >= 95%`, `ttft.p95`, ...).
The search raises the open-model rate step by step, doubling until a step breaks, then bisecting
between the last good and the first broken rate until they are within `precision` of each other.

Each step is judged on its own requests (the Locust stats entries' change between two snapshots,
the first taken after a warm-up), by the SLOs and by two knee signals of its own: the achieved rate
falling behind the target, and dropped iterations. Goodput is judged on iterations: every process
that runs users keeps a `JourneyTally` of its iterations' requests (grouped by intended start), per
whole journey and per journey step (each named request the iteration makes); a master sums its
workers' tallies. A step whose iterations were late while the
backend's own (uncorrected) latency met every latency SLO, or whose load generator ran hot, measured
the generator rather than the backend: the search stops and its result is invalid (exit 3).

This module holds the search's logic and its outputs (`capacity.json`, `capacity.svg`); it imports
neither Locust nor gevent, so everything in it is testable with plain numbers. The Locust side (the
load shape driving the steps) is in `compliance_loadtest.plugin.shape`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compliance_loadtest.errors import ProfileError
from compliance_loadtest.run_folder import CAPACITY_JSON, CAPACITY_SVG, temporary_name

if TYPE_CHECKING:
    from analysis._thresholds import Rule

__all__ = [
    "CORRECTED_SUFFIX",
    "LATE_START_MS",
    "LLM_TYPE",
    "CapacityResult",
    "CapacitySearch",
    "CapacitySpec",
    "EntrySnap",
    "JourneyCounts",
    "JourneyTally",
    "SearchSettings",
    "Snapshot",
    "StepGoodput",
    "StepResult",
    "add_taken",
    "describe_goodput",
    "goodput_rules",
    "judge_step",
    "parse_capacity",
    "render_svg",
    "rules_from_message",
    "window",
    "write_outputs",
]

CORRECTED_SUFFIX = " (corrected)"
DROPPED_TYPE = "ARRIVAL"
LLM_TYPE = "LLM"
SEARCH_KEYS = frozenset(
    {
        "start_rate",
        "max_rate",
        "step_duration",
        "warmup",
        "cooldown",
        "precision",
        "max_steps",
        "min_achieved",
        "max_dropped_ratio",
        "max_loadgen_cpu",
    }
)
LATENCY_STATS = ("mean", "median", "max", "min")
LATE_START_MS = 50.0
"""An iteration whose first request starts this much after its intended start waited for the load
generator (a free pool user, or CPU), not for the backend."""
LATE_SHARE = 0.05
WHOLE_JOURNEY = "whole journey"
BUCKET_S = 0.25
"""Iterations are counted by when they were due, to this many seconds."""


@dataclass(frozen=True)
class SearchSettings:
    """How the search steps. Durations are seconds (scaled by --profile-time-scale); rates are
    iterations of the workflow per second (not scaled: they are the load)."""

    start_rate: float = 1.0
    """Rate of the first step."""
    max_rate: float = 100.0
    """The ceiling: no step ever runs above it; a search that passes it reports it as a lower bound."""
    step_duration: float = 20.0
    """How long each step holds its rate."""
    warmup: float = 0.25
    """Share of each step left out of its judgement, while queues settle at the new rate."""
    cooldown: float = 5.0
    """Seconds without new iterations after a broken step, so its backlog does not spill into the next."""
    precision: float = 0.05
    """Bisection stops once (first broken - last good) / last good is at most this."""
    max_steps: int = 12
    """At most this many steps, whatever else happens."""
    min_achieved: float = 0.9
    """A step whose iterations started at less than this share of its target rate is past the knee."""
    max_dropped_ratio: float = 0.01
    """A step that dropped more than this share of its iterations is past the knee."""
    max_loadgen_cpu: float = 90.0
    """A load-generator process above this CPU percent measures itself: the result is invalid."""

    def scaled(self, factor: float) -> SearchSettings:
        return replace(self, step_duration=self.step_duration * factor, cooldown=self.cooldown * factor)

    @property
    def longest(self) -> float:
        """The most seconds a search can take (every step broken and cooled down)."""
        return self.max_steps * (self.step_duration + self.cooldown)


@dataclass(frozen=True)
class CapacitySpec:
    """A capacity profile's search settings and SLOs (thresholds-language rules)."""

    search: SearchSettings
    slos: tuple[Rule, ...]

    def scaled(self, factor: float) -> CapacitySpec:
        return replace(self, search=self.search.scaled(factor))


def parse_capacity(data: Mapping[str, Any], source: str) -> CapacitySpec:
    """The `search` and `slos` of a capacity profile; ProfileError naming the file and key."""
    from analysis._thresholds import parse_rule
    from analysis.errors import ThresholdsError

    raw = data.get("search", {}) or {}
    if not isinstance(raw, Mapping):
        raise ProfileError(source, "must be a mapping of search settings", key="search")
    unknown = sorted(set(raw) - SEARCH_KEYS)
    if unknown:
        raise ProfileError(
            source, f"unknown key; allowed keys: {', '.join(sorted(SEARCH_KEYS))}", key=f"search.{unknown[0]}"
        )
    values: dict[str, Any] = {}
    for key, value in raw.items():
        whole = key == "max_steps"
        ok_type = isinstance(value, int) if whole else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type or not math.isfinite(value) or value <= 0:
            kind = "a whole number above 0" if whole else "a number above 0"
            raise ProfileError(source, f"must be {kind}, got {value!r}", key=f"search.{key}")
        values[key] = value if whole else float(value)
    settings = SearchSettings(**values)
    for key in ("warmup", "min_achieved", "max_dropped_ratio"):
        if getattr(settings, key) >= 1:
            raise ProfileError(
                source, f"is a share below 1, got {getattr(settings, key)!r}", key=f"search.{key}"
            )
    if settings.start_rate > settings.max_rate:
        raise ProfileError(
            source,
            f"start_rate {settings.start_rate:g} is above max_rate {settings.max_rate:g}",
            key="search.start_rate",
        )
    raw_slos = data.get("slos")
    if not isinstance(raw_slos, list) or not raw_slos:
        raise ProfileError(
            source, "a capacity profile needs a non-empty list of SLOs (thresholds rules)", key="slos"
        )
    rules = []
    for index, raw_rule in enumerate(raw_slos):
        try:
            rule = parse_rule(raw_rule, index, source, id_prefix="slo-")
        except ThresholdsError as exc:
            raise ProfileError(source, str(exc).replace("rules[", "slos["), key=f"slos[{index}]") from None
        if why := _unsupported(rule.metric):
            raise ProfileError(source, why, key=f"slos[{index}].metric")
        if rule.metric == "goodput" and isinstance(raw_rule, Mapping) and "per" not in raw_rule:
            # Goodput is of the whole journey unless the SLO asks for each step (`per: entry`).
            rule = replace(rule, per="all")
        rules.append(rule)
    return CapacitySpec(settings, tuple(rules))


def _unsupported(metric: str) -> str | None:
    head, _, stat = metric.partition(".")
    if metric in ("count", "failures", "failure_ratio", "goodput", "rps"):
        return None
    if head in ("corrected", "ttft", "itl"):
        metric = stat or "mean"
    if metric in LATENCY_STATS or _percent(metric) is not None:
        return None
    return (
        f"{metric!r} cannot judge a capacity step; use failure_ratio, failures, goodput, rps, "
        "p<N>/mean/median/max, corrected.<stat>, ttft.<stat> or itl.<stat>"
    )


def _percent(stat: str) -> float | None:
    if stat.startswith("p"):
        try:
            q = float(stat[1:])
        except ValueError:
            return None
        return q / 100 if 0 < q <= 100 else None
    return None


# --- measuring a step -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntrySnap:
    """One Locust stats entry at a moment: counts and its response-time histogram {ms: count}."""

    count: int
    failures: int
    total_ms: float
    histogram: Mapping[int, int]

    def minus(self, old: EntrySnap | None) -> EntrySnap:
        if old is None:
            return self
        hist = {ms: n - old.histogram.get(ms, 0) for ms, n in self.histogram.items()}
        return EntrySnap(
            self.count - old.count,
            self.failures - old.failures,
            self.total_ms - old.total_ms,
            {ms: n for ms, n in hist.items() if n > 0},
        )


@dataclass(frozen=True)
class Snapshot:
    """Everything a step is judged on, cumulative since the run started, at wall time `at`."""

    at: float
    entries: Mapping[tuple[str, str], EntrySnap]
    """(request type, name) -> entry."""
    started: int
    """Iterations started."""
    loadgen_cpu: float = 0.0
    """Highest CPU percent of a load-generator process since the previous snapshot."""


@dataclass(frozen=True)
class JourneyCounts:
    """What iterations' requests said, cumulative. A step is one named request of the journey
    ("GET /api/users/profile"); per goodput SLO, only the requests the SLO selects count."""

    seen: int = 0
    """Iterations with a request that ended."""
    late: int = 0
    """Of those, the ones whose first request started over LATE_START_MS after the intended start."""
    bad: Mapping[str, int] = field(default_factory=dict)
    """SLO id -> iterations with a selected request that failed or passed the SLO's limits."""
    step_seen: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """SLO id -> step -> iterations that made that step."""
    step_bad: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """SLO id -> step -> iterations in which that step failed or passed the SLO's limits."""

    def plus(self, other: JourneyCounts) -> JourneyCounts:
        return self._combined(other, 1)

    def minus(self, other: JourneyCounts) -> JourneyCounts:
        return self._combined(other, -1)

    def _combined(self, other: JourneyCounts, sign: int) -> JourneyCounts:
        def flat(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
            return {k: a.get(k, 0) + sign * b.get(k, 0) for k in dict.fromkeys([*a, *b])}

        def nested(a: Mapping[str, Mapping[str, int]], b: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
            return {k: flat(a.get(k, {}), b.get(k, {})) for k in dict.fromkeys([*a, *b])}

        return JourneyCounts(
            self.seen + sign * other.seen,
            self.late + sign * other.late,
            flat(self.bad, other.bad),
            nested(self.step_seen, other.step_seen),
            nested(self.step_bad, other.step_bad),
        )

    def as_message(self) -> dict[str, Any]:
        """Plain dicts and ints, as a worker's report to the master carries them."""
        return {
            "seen": self.seen,
            "late": self.late,
            "bad": dict(self.bad),
            "step_seen": {k: dict(v) for k, v in self.step_seen.items()},
            "step_bad": {k: dict(v) for k, v in self.step_bad.items()},
        }

    @classmethod
    def from_message(cls, data: Mapping[str, Any]) -> JourneyCounts:
        def nested(key: str) -> dict[str, dict[str, int]]:
            return {str(k): {str(s): int(n) for s, n in v.items()} for k, v in (data.get(key) or {}).items()}

        return cls(
            int(data.get("seen", 0)),
            int(data.get("late", 0)),
            {str(k): int(n) for k, n in (data.get("bad") or {}).items()},
            nested("step_seen"),
            nested("step_bad"),
        )

    def goodput(self, slo: str) -> float | None:
        """The whole journey's goodput: the share of iterations whose every selected step met the SLO."""
        return None if self.seen <= 0 else max(0.0, 1.0 - self.bad.get(slo, 0) / self.seen)

    def step_goodput(self, slo: str) -> tuple[StepGoodput, ...]:
        """Each step's goodput, in the order the journey makes them: the share of the iterations that
        made the step in which it met the SLO."""
        seen, bad = self.step_seen.get(slo, {}), self.step_bad.get(slo, {})
        return tuple(
            StepGoodput(step, n, max(0.0, 1.0 - bad.get(step, 0) / n)) for step, n in seen.items() if n > 0
        )


@dataclass(frozen=True)
class StepGoodput:
    """One journey step's goodput under one SLO in one capacity step."""

    step: str
    iterations: int
    goodput: float

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "iterations": self.iterations, "goodput": round(self.goodput, 6)}


class _Bucket:
    """The counts of the iterations due in one bucket of time, as a tally adds to them."""

    def __init__(self) -> None:
        self.seen = 0
        self.late = 0
        self.bad: dict[str, int] = {}
        self.step_seen: dict[str, dict[str, int]] = {}
        self.step_bad: dict[str, dict[str, int]] = {}

    def frozen(self) -> JourneyCounts:
        return JourneyCounts(
            self.seen,
            self.late,
            dict(self.bad),
            {k: dict(v) for k, v in self.step_seen.items()},
            {k: dict(v) for k, v in self.step_bad.items()},
        )


def bucket_of(intended: float) -> int:
    return math.floor(intended / BUCKET_S)


def window(buckets: Mapping[int, JourneyCounts], start: float, end: float) -> JourneyCounts:
    """The counts of the iterations due from `start` to `end` (epoch seconds, to a bucket)."""
    total = JourneyCounts()
    for bucket, counts in buckets.items():
        if start <= bucket * BUCKET_S < end:
            total = total.plus(counts)
    return total


class JourneyTally:
    """Counts one process's iterations from its request events, for the goodput SLOs and the
    late-start check. An iteration is known by its intended start (each slot has its own) and counted
    in the bucket of time it was due in, so a step is judged on the iterations due in its window
    whenever their requests ended or their counts reached the master. `take()` gives what changed
    since its last call (a worker's report to the master)."""

    max_iterations: int = 100_000
    """Iterations remembered at most; the oldest half is forgotten past it (they are long over)."""
    max_buckets: int = 20_000
    """Buckets kept at most (over an hour of BUCKET_S); the oldest half is forgotten past it."""

    def __init__(self, slos: Sequence[Rule]) -> None:
        self.rules = tuple(r for r in slos if r.metric == "goodput")
        self._buckets: dict[int, _Bucket] = {}
        self._changed: set[int] = set()
        self._reported: dict[int, JourneyCounts] = {}
        self._iterations: dict[float, set[tuple[str, str]]] = {}

    def observe(
        self,
        request_type: str,
        name: str,
        group: str,
        *,
        intended: float,
        started: float,
        response_time: float,
        corrected: float,
        failed: bool,
    ) -> None:
        """One request of the iteration that was due at `intended` (epoch seconds): it started at
        `started`, took `response_time` ms, `corrected` ms from the intended start."""
        key = bucket_of(intended)
        counts = self._buckets.get(key)
        if counts is None:
            _forget_oldest(self._buckets, self.max_buckets)
            _forget_oldest(self._reported, self.max_buckets)
            counts = self._buckets[key] = _Bucket()
        self._changed.add(key)
        marks = self._iterations.get(intended)
        if marks is None:  # the iteration's first request: how late did it start?
            _forget_oldest(self._iterations, self.max_iterations)
            marks = self._iterations[intended] = set()
            counts.seen += 1
            if (started - intended) * 1000.0 > LATE_START_MS:
                counts.late += 1
        is_llm = request_type == LLM_TYPE
        is_ttft = is_llm and name.endswith("time to first token")
        # A reply's other stream measures (inter-token latency, total) are not steps of their own.
        step = f"{request_type} {name}" if not is_llm or is_ttft else None
        for rule in self.rules:
            if not any(sel.matches(request_type, name, group, "") for sel in rule.select):
                continue
            bad = failed
            if not is_llm:
                bad = bad or corrected > rule.limits.get("response_time_ms", math.inf)
            elif is_ttft:
                bad = bad or response_time > rule.limits.get("ttft_ms", math.inf)
            if step is not None and (rule.id, "made " + step) not in marks:
                marks.add((rule.id, "made " + step))
                steps = counts.step_seen.setdefault(rule.id, {})
                steps[step] = steps.get(step, 0) + 1
            if not bad:
                continue
            if (rule.id, "") not in marks:
                marks.add((rule.id, ""))
                counts.bad[rule.id] = counts.bad.get(rule.id, 0) + 1
            if step is not None and (rule.id, step) not in marks:
                marks.add((rule.id, step))
                steps = counts.step_bad.setdefault(rule.id, {})
                steps[step] = steps.get(step, 0) + 1

    def counts(self) -> dict[int, JourneyCounts]:
        """Every bucket's counts, by bucket (`bucket_of` the intended start)."""
        return {key: bucket.frozen() for key, bucket in self._buckets.items()}

    def window(self, start: float, end: float) -> JourneyCounts:
        """The counts of the iterations due from `start` to `end`."""
        return window(self.counts(), start, end)

    def take(self) -> dict[str, Any]:
        """What changed since the last call, as plain data: {bucket (text): counts' increments}."""
        out = {}
        for key in sorted(self._changed):
            if (bucket := self._buckets.get(key)) is None:
                continue
            now = bucket.frozen()
            out[str(key)] = now.minus(self._reported.get(key, JourneyCounts())).as_message()
            self._reported[key] = now
        self._changed.clear()
        return out


def add_taken(buckets: dict[int, JourneyCounts], taken: Mapping[str, Any]) -> None:
    """Add a worker's `JourneyTally.take()` to the master's buckets."""
    for key, counts in taken.items():
        bucket = int(key)
        buckets[bucket] = buckets.get(bucket, JourneyCounts()).plus(JourneyCounts.from_message(counts))


def _forget_oldest(items: dict[Any, Any], most: int) -> None:
    if len(items) >= most:
        for old in sorted(items)[: most // 2]:
            del items[old]


def goodput_rules(spec: CapacitySpec) -> list[dict[str, Any]]:
    """The goodput SLOs as plain data, for the workers, who count the iterations (`JourneyTally`)."""
    return [
        {
            "id": r.id,
            "op": r.op,
            "value": r.value,
            "per": r.per,
            "limits": dict(r.limits),
            "select": [{k: list(v) for k, v in vars(sel).items()} for sel in r.select],
        }
        for r in spec.slos
        if r.metric == "goodput"
    ]


def rules_from_message(data: Sequence[Mapping[str, Any]]) -> tuple[Rule, ...]:
    """`goodput_rules`' data back as rules."""
    from analysis._thresholds import Rule, Selector

    return tuple(
        Rule(
            id=str(r["id"]),
            metric="goodput",
            op=str(r["op"]),
            value=float(r["value"]),
            per="all" if r.get("per") == "all" else "entry",
            limits={str(k): float(v) for k, v in (r.get("limits") or {}).items()},
            select=tuple(
                Selector(**{str(k): tuple(str(x) for x in v) for k, v in sel.items()})
                for sel in r.get("select") or [{}]
            ),
        )
        for r in data
    )


def _pooled(entries: Sequence[EntrySnap]) -> EntrySnap:
    hist: dict[int, int] = {}
    for e in entries:
        for ms, n in e.histogram.items():
            hist[ms] = hist.get(ms, 0) + n
    return EntrySnap(
        sum(e.count for e in entries),
        sum(e.failures for e in entries),
        sum(e.total_ms for e in entries),
        hist,
    )


def _stat(entry: EntrySnap, stat: str) -> float | None:
    total = sum(entry.histogram.values())
    if total == 0:
        return None
    if stat == "mean":
        return entry.total_ms / entry.count if entry.count else None
    if stat == "max":
        return float(max(entry.histogram))
    if stat == "min":
        return float(min(entry.histogram))
    q = 0.5 if stat == "median" else _percent(stat)
    if q is None:
        return None
    rank, seen = q * total, 0
    for ms in sorted(entry.histogram):
        seen += entry.histogram[ms]
        if seen >= rank:
            return float(ms)
    return float(max(entry.histogram))


def _matches(rule: Rule, request_type: str, name: str) -> bool:
    return any(s.matches(request_type, name, "", "") for s in rule.select)


def _selected(
    rule: Rule, entries: Mapping[tuple[str, str], EntrySnap], quantity: str | None
) -> dict[str, tuple[str, str]]:
    """The entries a rule's metric reads, label -> key: corrected, LLM measures or plain requests."""
    out: dict[str, tuple[str, str]] = {}
    for rtype, name in entries:
        if rtype == DROPPED_TYPE:
            continue
        corrected = rtype.endswith(CORRECTED_SUFFIX)
        base = rtype[: -len(CORRECTED_SUFFIX)] if corrected else rtype
        if quantity == "corrected" and not corrected:
            continue
        if quantity in ("ttft", "itl"):
            wanted = "time to first token" if quantity == "ttft" else "inter-token latency"
            if corrected or base != LLM_TYPE or not name.endswith(wanted):
                continue
        if quantity is None and (corrected or base == LLM_TYPE):
            continue
        if _matches(rule, base, name):
            out[f"{rtype} {name}"] = (rtype, name)
    return out


@dataclass(frozen=True)
class SloFigure:
    """One SLO's figure in one step."""

    slo: str
    text: str
    value: float | None
    held: bool | None
    """None when the step had nothing the SLO selects."""
    entry: str | None = None
    """The entry judged (the worst one, for a per-entry SLO)."""
    limit: float = 0.0
    op: str = "<"
    steps: tuple[StepGoodput, ...] = ()
    """A goodput SLO's figure for each journey step."""

    @property
    def excess(self) -> float:
        """How far past its limit (above 1 = broken); ranks the SLOs one step broke."""
        if self.value is None:
            return 0.0
        if self.op in ("<", "<="):
            return self.value / self.limit if self.limit > 0 else math.inf
        return self.limit / self.value if self.value > 0 else math.inf

    def as_dict(self) -> dict[str, Any]:
        return {
            "slo": self.slo,
            "rule": self.text,
            "value": self.value,
            "held": self.held,
            "entry": self.entry,
            **({"steps": [s.as_dict() for s in self.steps]} if self.steps else {}),
        }


_OPS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _slo_figure(
    rule: Rule, old: Snapshot, new: Snapshot, seconds: float, counts: JourneyCounts | None
) -> SloFigure:
    metric = rule.metric
    if metric == "goodput":
        if counts is None:
            return _judged(rule, None, WHOLE_JOURNEY)
        steps = counts.step_goodput(rule.id)
        if rule.per == "all":
            return replace(_judged(rule, counts.goodput(rule.id), WHOLE_JOURNEY), steps=steps)
        if not steps:
            return SloFigure(rule.id, rule.text(), None, None, limit=rule.value, op=rule.op)
        figures = [_judged(rule, s.goodput, s.step) for s in steps]
        lowest = min(figures, key=lambda f: (f.held is not False, f.value))
        return replace(lowest, steps=steps)
    head, _, stat = metric.partition(".")
    quantity = head if head in ("corrected", "ttft", "itl") else None
    stat = (stat or "mean") if quantity else metric
    entries = {
        label: new.entries[key].minus(old.entries.get(key))
        for label, key in _selected(rule, new.entries, quantity).items()
    }
    entries = {k: e for k, e in entries.items() if e.count > 0}
    if not entries:
        return SloFigure(rule.id, rule.text(), None, None, limit=rule.value, op=rule.op)
    groups = {f"all of {len(entries)}": _pooled(list(entries.values()))} if rule.per == "all" else entries
    worst: SloFigure | None = None
    for label, entry in groups.items():
        value = _entry_value(entry, stat, seconds)
        figure = _judged(rule, value, label)
        if (
            worst is None
            or (figure.held is False and worst.held is not False)
            or (figure.held == worst.held and _worse(rule, figure.value, worst.value))
        ):
            worst = figure
    assert worst is not None
    return worst


def _entry_value(entry: EntrySnap, stat: str, seconds: float) -> float | None:
    if stat == "count":
        return float(entry.count)
    if stat == "failures":
        return float(entry.failures)
    if stat == "failure_ratio":
        return entry.failures / entry.count if entry.count else None
    if stat == "rps":
        return entry.count / seconds if seconds > 0 else None
    return _stat(entry, stat)


def _worse(rule: Rule, a: float | None, b: float | None) -> bool:
    if a is None:
        return False
    if b is None:
        return True
    return a > b if rule.op in ("<", "<=") else a < b


def _judged(rule: Rule, value: float | None, entry: str) -> SloFigure:
    held = None if value is None else bool(_OPS[rule.op](value, rule.value))
    return SloFigure(rule.id, rule.text(), value, held, entry, limit=rule.value, op=rule.op)


@dataclass(frozen=True)
class StepResult:
    """One step of the search: its target, what it achieved, each SLO's figure and the verdict."""

    number: int
    target_rate: float
    achieved_rate: float
    started: int
    dropped: int
    seconds: float
    slos: tuple[SloFigure, ...]
    good: bool
    reasons: tuple[str, ...]
    """Why the step is past the knee (empty for a good step)."""
    generator_limited: str | None = None
    """Why the step measured the load generator, not the backend (the search is then invalid)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.number,
            "target_rate": round(self.target_rate, 4),
            "achieved_rate": round(self.achieved_rate, 4),
            "started": self.started,
            "dropped": self.dropped,
            "judged_seconds": round(self.seconds, 3),
            "verdict": "invalid" if self.generator_limited else ("good" if self.good else "broken"),
            "reasons": list(self.reasons),
            "generator_limited": self.generator_limited,
            "slos": [s.as_dict() for s in self.slos],
            "corrected_p95_ms": self.latency("p95"),
            "corrected_p99_ms": self.latency("p99"),
            "goodput": self.goodput,
            "step_goodput": {step: round(value, 6) for step, value in self.step_goodput.items()},
        }

    # Filled by judge_step: the corrected p95/p99 over every request, and the journey goodput.
    extra: Mapping[str, float | None] = field(default_factory=dict)
    step_goodput: Mapping[str, float] = field(default_factory=dict)
    """Each journey step's goodput (the lowest under the goodput SLOs), by step name."""

    def latency(self, stat: str) -> float | None:
        return self.extra.get(f"corrected_{stat}")

    @property
    def goodput(self) -> float | None:
        return self.extra.get("goodput")


def judge_step(
    number: int,
    target_rate: float,
    old: Snapshot,
    new: Snapshot,
    spec: CapacitySpec,
    pool: int,
    iterations: tuple[int, int, float] | None = None,
    journeys: JourneyCounts | None = None,
) -> StepResult:
    """Judge one step from two snapshots taken at the start and end of its judged window.

    `iterations` (started, dropped, seconds) of the whole step, when known, give the achieved rate
    and the drops instead of the window's counts: at a low rate a window of a few seconds holds a
    handful of slots (and each worker its own share of them), so its count can be off by a slot a
    process, a fifth of the rate at 1/s in a 3.75 s window, where the whole step's is exact.
    `journeys` counts the iterations due in the judged window (goodput, late starts); None where
    nobody counted them."""
    seconds = max(new.at - old.at, 1e-9)
    started = new.started - old.started
    dropped_entry = [e.minus(old.entries.get(k)) for k, e in new.entries.items() if k[0] == DROPPED_TYPE]
    dropped = sum(e.count for e in dropped_entry)
    achieved = started / seconds
    if iterations is not None:
        started, dropped, whole = iterations
        achieved = started / whole if whole > 0 else 0.0
    figures = tuple(_slo_figure(rule, old, new, seconds, journeys) for rule in spec.slos)
    s = spec.search
    reasons = [f"{f.slo}: {f.text} broken ({_show(f)})" for f in figures if f.held is False]
    late = []
    if achieved < s.min_achieved * target_rate:
        late.append(f"achieved {achieved:.2f}/s, behind the target {target_rate:.2f}/s")
    if dropped > s.max_dropped_ratio * max(started + dropped, 1):
        late.append(f"{dropped} iterations dropped of {started + dropped}")
    reasons += late
    if journeys is not None and journeys.seen and journeys.late > LATE_SHARE * journeys.seen:
        late.append(f"{journeys.late} of {journeys.seen} iterations started over {LATE_START_MS:g} ms late")

    generator = None
    if new.loadgen_cpu > s.max_loadgen_cpu:
        generator = (
            f"a load-generator process ran at {new.loadgen_cpu:.0f}% CPU (limit {s.max_loadgen_cpu:g}%)"
        )
    elif late and reasons:
        generator = _generator_limited(spec, old, new, seconds, pool)
        if generator is not None:
            generator += f" ({'; '.join(late)})"

    every = {
        k: e.minus(old.entries.get(k)) for k, e in new.entries.items() if k[0].endswith(CORRECTED_SUFFIX)
    }
    pooled_corrected = _pooled(list(every.values()))
    goodputs: list[float] = []
    step_goodput: dict[str, float] = {}
    if journeys is not None:
        for rule in spec.slos:
            if rule.metric != "goodput":
                continue
            if (journey := journeys.goodput(rule.id)) is not None:
                goodputs.append(journey)
            for each in journeys.step_goodput(rule.id):
                step_goodput[each.step] = min(each.goodput, step_goodput.get(each.step, 1.0))
    extra = {
        "corrected_p95": _stat(pooled_corrected, "p95"),
        "corrected_p99": _stat(pooled_corrected, "p99"),
        "goodput": min(goodputs, default=None),
    }
    return StepResult(
        number=number,
        target_rate=target_rate,
        achieved_rate=achieved,
        started=started,
        dropped=dropped,
        seconds=seconds,
        slos=figures,
        good=not reasons and generator is None,
        reasons=tuple(reasons),
        generator_limited=generator,
        extra=extra,
        step_goodput=step_goodput,
    )


def _generator_limited(
    spec: CapacitySpec,
    old: Snapshot,
    new: Snapshot,
    seconds: float,
    pool: int,
) -> str | None:
    """Why a step whose iterations fell behind or were dropped measured the generator: the backend's
    own (uncorrected) latency met every latency SLO and no request failed more than the SLOs allow.
    Corrected latency alone proves nothing here: in a journey of several requests it also counts the
    journey's own earlier requests."""
    latency_rules = [r for r in spec.slos if r.metric.startswith("corrected") or _is_plain_latency(r.metric)]
    if not latency_rules:
        return None
    for rule in spec.slos:
        measured = rule
        if rule.metric.startswith("corrected"):
            measured = replace(rule, metric=rule.metric.partition(".")[2] or "mean")
        elif rule.metric == "goodput":
            continue  # judged on corrected latency: late starts break it whoever caused them
        figure = _slo_figure(measured, old, new, seconds, None)
        if figure.held is False:
            return None  # the backend itself broke an SLO: a real knee
    return (
        "iterations started late, fell behind the target rate or were dropped while the backend's own "
        "latency met every SLO: the "
        f"load generator (its CPU, or a pool of {pool} users too small for this rate) could not keep up"
    )


def _is_plain_latency(metric: str) -> bool:
    return metric in LATENCY_STATS or _percent(metric) is not None


def _show(f: SloFigure) -> str:
    value = "n/a" if f.value is None else f"{f.value:,.4g}"
    return f"{value} at {f.entry}" if f.entry else value


def describe_goodput(step: Mapping[str, Any]) -> str | None:
    """ "goodput 93.1% (GET /a 100.0%, POST /b 93.1%)" of one step of `capacity.json` (None without
    a goodput SLO): which journey step lost the iterations."""
    journey = step.get("goodput")
    steps = step.get("step_goodput") or {}
    if journey is None and not steps:
        return None
    text = "goodput " + ("n/a" if journey is None else f"{journey:.1%}")
    if steps:
        text += " (" + ", ".join(f"{name} {value:.1%}" for name, value in steps.items()) + ")"
    return text


# --- the search -------------------------------------------------------------------------------------


@dataclass
class CapacitySearch:
    """Which rate to try next, from the verdicts so far: double from `start_rate` until a step breaks
    (never above `max_rate`), then bisect between the last good and the first broken rate."""

    settings: SearchSettings
    steps: list[StepResult] = field(default_factory=list)
    good: float | None = None
    broken: float | None = None
    stopped_because: str = ""

    def next_rate(self) -> float | None:
        """The next step's target rate, or None when the search is over (`stopped_because` says why)."""
        s = self.settings
        if not self.steps:
            return min(s.start_rate, s.max_rate)
        if any(step.generator_limited for step in self.steps):
            return self._stop("the load generator could not keep up; the result is invalid")
        if len(self.steps) >= s.max_steps:
            return self._stop(f"max_steps ({s.max_steps}) reached")
        if self.broken is None:
            assert self.good is not None
            if self.good >= s.max_rate:
                return self._stop(f"the ceiling max_rate {s.max_rate:g}/s still met every SLO")
            return min(self.good * 2, s.max_rate)
        if self.good is None:
            rate = self.broken / 2
            if rate < s.start_rate / 8:
                return self._stop(f"even {self.broken:g}/s broke an SLO")
            return rate
        if (self.broken - self.good) / self.good <= s.precision:
            return self._stop(f"good {self.good:g}/s and broken {self.broken:g}/s within {s.precision:.0%}")
        return (self.good + self.broken) / 2

    def record(self, step: StepResult) -> None:
        self.steps.append(step)
        if step.generator_limited:
            return
        if step.good:
            self.good = max(self.good or 0.0, step.target_rate)
        else:
            self.broken = step.target_rate if self.broken is None else min(self.broken, step.target_rate)

    def _stop(self, why: str) -> float | None:
        self.stopped_because = why
        return None

    def result(self, workflow: str, profile: str, ended_early: str | None = None) -> CapacityResult:
        limited = next((s for s in self.steps if s.generator_limited), None)
        invalid = [limited.generator_limited] if limited and limited.generator_limited else []
        if not self.steps:
            invalid.append(ended_early or "no step of the search was judged")
        elif ended_early and not self.stopped_because:
            invalid.append(f"the search did not finish: {ended_early}")
        knee = min(
            (s for s in self.steps if not s.good and not s.generator_limited),
            key=lambda s: s.target_rate,
            default=None,
        )
        first: dict[str, Any] | None = None
        if knee is not None:
            broken = [f for f in knee.slos if f.held is False]
            if broken:
                worst = max(broken, key=lambda f: f.excess)
                first = {"step": knee.number, "target_rate": knee.target_rate, **worst.as_dict()}
            else:
                first = {
                    "step": knee.number,
                    "target_rate": knee.target_rate,
                    "slo": None,
                    "rule": "; ".join(knee.reasons),
                }
        return CapacityResult(
            workflow=workflow,
            profile=profile,
            sustained_rate=(self.good or 0.0) if not invalid else None,
            ceiling=self.settings.max_rate,
            knee_rate=knee.target_rate if knee else None,
            first_broken=first,
            valid=not invalid,
            invalid_reasons=tuple(invalid),
            stopped_because=self.stopped_because or (ended_early or ""),
            steps=tuple(self.steps),
        )


@dataclass(frozen=True)
class CapacityResult:
    """What a search found; `capacity.json` is `as_dict()`."""

    workflow: str
    profile: str
    sustained_rate: float | None
    """The highest target rate whose step met every SLO (None when the result is invalid)."""
    ceiling: float
    knee_rate: float | None
    """The lowest target rate that broke."""
    first_broken: Mapping[str, Any] | None
    valid: bool
    invalid_reasons: tuple[str, ...]
    stopped_because: str
    steps: tuple[StepResult, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "profile": self.profile,
            "valid": self.valid,
            "invalid_reasons": list(self.invalid_reasons),
            "sustained_rate": None if self.sustained_rate is None else round(self.sustained_rate, 4),
            "ceiling_rate": self.ceiling,
            "at_ceiling": self.sustained_rate is not None and self.sustained_rate >= self.ceiling,
            "knee_rate": self.knee_rate,
            "first_broken": dict(self.first_broken) if self.first_broken else None,
            "stopped_because": self.stopped_because,
            "steps": [s.as_dict() for s in self.steps],
        }

    def summary(self) -> str:
        if not self.valid:
            return f"capacity search of {self.workflow}: INVALID: {'; '.join(self.invalid_reasons)}"
        rate = f"{self.sustained_rate:g}/s" if self.sustained_rate else "0/s (every step broke)"
        line = f"capacity of {self.workflow}: sustained rate {rate}"
        if self.first_broken:
            line += (
                f"; first broken at {self.first_broken['target_rate']:g}/s: {self.first_broken.get('rule')}"
            )
        return line + f" ({len(self.steps)} steps; {self.stopped_because})"


# --- outputs ----------------------------------------------------------------------------------------


def write_outputs(result: CapacityResult, run_dir: Path) -> tuple[Path, Path]:
    """Write `capacity.json` and `capacity.svg` into the run folder, each atomically."""
    run_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (
        (CAPACITY_JSON, json.dumps(result.as_dict(), indent=2) + "\n"),
        (CAPACITY_SVG, render_svg(result)),
    ):
        path = run_dir / name
        tmp = path.with_name(temporary_name(name))
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)
    return written[0], written[1]


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def render_svg(result: CapacityResult) -> str:
    """A chart against the target rate: achieved rate and goodput (left axis: rate; goodput scaled to
    the rate axis' top), corrected p95/p99 (right axis, ms), the knee and the sustained rate marked."""
    w, h, left, right, top, bottom = 720, 400, 60, 60, 40, 50
    steps = sorted(result.steps, key=lambda s: s.target_rate)
    xmax = max([s.target_rate for s in steps] + [1.0]) * 1.05
    ymax = max([s.achieved_rate for s in steps] + [s.target_rate for s in steps] + [1.0]) * 1.05
    lat = [v for s in steps for v in (s.latency("p95"), s.latency("p99")) if v is not None]
    lmax = max([*lat, 1.0]) * 1.1

    def x(v: float) -> float:
        return left + (w - left - right) * v / xmax

    def y(v: float, top_value: float) -> float:
        return h - bottom - (h - top - bottom) * v / top_value

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        'font-family="sans-serif" font-size="11">',
        f"<title>{_esc(result.summary())}</title>",
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{left}" y="20" font-size="13">{_esc(result.summary()[:110])}</text>',
        f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="black"/>',
        f'<line x1="{w - right}" y1="{top}" x2="{w - right}" y2="{h - bottom}" stroke="black"/>',
        f'<text x="{(w) / 2}" y="{h - 12}" text-anchor="middle">target rate (iterations/s)</text>',
        f'<text x="12" y="{top - 8}">rate /s</text>',
        f'<text x="{w - right - 20}" y="{top - 8}">ms</text>',
    ]
    for i in range(6):
        xv, yv, lv = xmax * i / 5, ymax * i / 5, lmax * i / 5
        out.append(f'<text x="{x(xv):.1f}" y="{h - bottom + 15}" text-anchor="middle">{xv:.3g}</text>')
        out.append(f'<text x="{left - 5}" y="{y(yv, ymax) + 4:.1f}" text-anchor="end">{yv:.3g}</text>')
        out.append(f'<text x="{w - right + 5}" y="{y(lv, lmax) + 4:.1f}">{lv:.3g}</text>')
    out.append(
        f'<line x1="{x(0):.1f}" y1="{y(0, ymax):.1f}" x2="{x(xmax):.1f}" y2="{y(xmax, ymax):.1f}" '
        'stroke="#bbb" stroke-dasharray="4 3"/>'
    )
    series: list[tuple[str, str, list[tuple[float, float | None]], float]] = [
        ("achieved rate", "#1f77b4", [(s.target_rate, s.achieved_rate) for s in steps], ymax),
        (
            "goodput (x top of rate axis)",
            "#2ca02c",
            [(s.target_rate, None if s.goodput is None else s.goodput * ymax) for s in steps],
            ymax,
        ),
        ("corrected p95 (ms)", "#ff7f0e", [(s.target_rate, s.latency("p95")) for s in steps], lmax),
        ("corrected p99 (ms)", "#d62728", [(s.target_rate, s.latency("p99")) for s in steps], lmax),
    ]
    for n, (label, colour, points, scale) in enumerate(series):
        pts = [(x(a), y(b, scale)) for a, b in points if b is not None]
        if pts:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
            out.extend(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>' for px, py in pts)
        out.append(f'<rect x="{left + 10 + n * 160}" y="{top + 4}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{left + 24 + n * 160}" y="{top + 13}">{_esc(label)}</text>')
    for rate, label, colour in (
        (result.knee_rate, "knee", "#d62728"),
        (result.sustained_rate, "sustained", "#2ca02c"),
    ):
        if rate is not None:
            out.append(
                f'<line x1="{x(rate):.1f}" y1="{top + 20}" x2="{x(rate):.1f}" y2="{h - bottom}" '
                f'stroke="{colour}" stroke-dasharray="6 3"/>'
            )
            out.append(
                f'<text x="{x(rate) + 3:.1f}" y="{top + 32}" fill="{colour}">{label} {rate:.3g}/s</text>'
            )
    for s in steps:
        mark = "✓" if s.good else ("?" if s.generator_limited else "✗")
        out.append(
            f'<text x="{x(s.target_rate):.1f}" y="{h - bottom - 4}" text-anchor="middle">{mark}</text>'
        )
    out.append("</svg>\n")
    return "\n".join(out)
