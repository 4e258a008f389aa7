"""From loaded runs to a verdict: thresholds, regressions, issues, validity. No file is written here."""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from analysis._load import RunData
from analysis._regression import RegressionResult, compare_runs
from analysis._stats import RunStats, compute_stats, entry_label
from analysis._system import SystemMetrics, system_metrics
from analysis._thresholds import (
    Rule,
    ThresholdResult,
    Thresholds,
    config_rules,
    evaluate,
    stopped_result,
    worst_first,
)
from analysis.errors import EXIT_FAIL, EXIT_INVALID_RUN, EXIT_PASS, UsageError
from compliance_loadtest.run_folder import RunInfo

BUSIEST_LOAD_GENERATOR = "CPU of the busiest load-generator process"
"""How a resource-cpu issue about the load generator begins: one process per core, so its busiest
process, not the sum over them, says whether it kept up."""


class Verdict(enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    INVALID = "invalid"

    @property
    def exit_code(self) -> int:
        return {Verdict.PASS: EXIT_PASS, Verdict.FAIL: EXIT_FAIL, Verdict.INVALID: EXIT_INVALID_RUN}[self]


@dataclass(frozen=True)
class Issue:
    """A finding of the seed's issue detection. Issues inform; thresholds and regressions decide, except
    an invalid run, which is never a pass."""

    kind: str
    severity: Literal["critical", "warning", "info"]
    message: str
    entry: str | None = None


@dataclass(frozen=True)
class Warmup:
    """The start of a run left out of every statistic: requests that started in its first `seconds`."""

    seconds: float
    reason: str
    """Where the window comes from: `--warmup`, the spawn phase, or why there is none."""
    excluded: int = 0
    """Requests of the exact record left out (benchmark rounds never are: they warm up on their own)."""
    kept_all: bool = False
    """True when the window could not be applied (no exact record): the statistics include the start."""


# Benchmark rounds run after warm-up iterations of their own (`compliance_loadtest.benchmark`).
WARMUP_EXEMPT_TYPE = "BENCH"


def spawn_phase(info: RunInfo | None) -> tuple[float, str]:
    """Seconds the users took to start (users / spawn rate, from run.json's options), and why."""
    if info is None:
        return 0.0, "no warm-up excluded: no run.json says how the users were started"
    if info.load_profile:
        return 0.0, f"no warm-up excluded: load profile {info.load_profile!r} shapes the ramp itself"
    users, rate = info.options.get("num_users"), info.options.get("spawn_rate")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (users, rate))
    if not numbers or not users or not rate or users <= 0 or rate <= 0:
        return 0.0, "no warm-up excluded: run.json's options give no user count and spawn rate"
    return float(users) / float(rate), f"spawn phase: {users:g} users at {rate:g}/s"


def _start_epoch(run: RunData) -> float | None:
    info = run.run_info
    if info is not None and info.started_at:
        try:
            return datetime.fromisoformat(info.started_at.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    if run.record is not None and len(run.record):
        return float(run.record["timestamp"].min())
    return None


def without_warmup(run: RunData, seconds: float | None = None) -> tuple[RunData, Warmup]:
    """The run without the requests that started within the warm-up: `seconds` given (`--warmup`),
    else the spawn phase. Only the exact record knows when each request started; without it the run
    is judged whole, and `Warmup.kept_all` says so."""
    if seconds is None:
        seconds, reason = spawn_phase(run.run_info)
    else:
        reason = f"--warmup {seconds:g}s" if seconds else "no warm-up excluded (--warmup 0)"
    if seconds <= 0:
        return run, Warmup(0.0, reason)
    start = _start_epoch(run)
    if run.record is None or not len(run.record) or start is None:
        return run, Warmup(seconds, reason, kept_all=True)
    rec = run.record
    keep = (rec["timestamp"].to_numpy(dtype="float64") >= start + seconds) | (
        rec["request_type"] == WARMUP_EXEMPT_TYPE
    ).to_numpy(dtype=bool)
    excluded = int(len(rec) - keep.sum())
    if not excluded:
        return run, Warmup(seconds, reason)
    trimmed = replace(run, record=rec[keep].reset_index(drop=True))
    return trimmed, Warmup(seconds, reason, excluded=excluded)


@dataclass(frozen=True)
class Analysis:
    run: RunData
    stats: RunStats
    system: SystemMetrics
    thresholds: Thresholds
    rules: tuple[Rule, ...]
    results: tuple[ThresholdResult, ...]
    regressions: tuple[RegressionResult, ...]
    issues: tuple[Issue, ...]
    invalid_reasons: tuple[str, ...]
    verdict: Verdict
    baselines: tuple[str, ...]
    generated_at: datetime
    warmup: Warmup = Warmup(0.0, "")
    baseline_stats: tuple[RunStats, ...] = ()
    """The baselines' statistics, for reports that show their percentiles next to this run's."""

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code

    @property
    def failed(self) -> tuple[ThresholdResult, ...]:
        return tuple(r for r in self.results if r.status == "fail")


# Failure texts of a request that never reached the target (FastHttpUser, HttpUser, aiohttp, sockets).
CONNECTION_ERROR = re.compile(
    r"connection ?refused|errno 111|newconnectionerror|connecterror|connectionerror|"
    r"name or service not known|no route to host|network is unreachable|connect(?:ion)? ?timed? ?out",
    re.IGNORECASE,
)


def unreachable_reason(run: RunData, stats: RunStats) -> str | None:
    """`target unreachable: N connection errors` when every request failed and every failure was a
    connection error, with the first such error, so the reason names the true cause."""
    failures = run.failures
    if not stats.total_count or stats.total_failures < stats.total_count or failures is None:
        return None
    errors = failures["error"].astype(str)
    connecting = errors.str.contains(CONNECTION_ERROR)
    if not len(failures) or not bool(connecting.all()):
        return None
    n = int(failures["occurrences"].sum())
    return f"target unreachable: {n} connection errors, no request succeeded (first: {errors.iloc[0]})"


def invalid_reasons(run: RunData, stats: RunStats, warmup: Warmup | None = None) -> tuple[str, ...]:
    """Why a run cannot be judged: a run.json never finalised or ended for no known reason, an output
    that failed to write, a record that disagrees with Locust, a lost worker, an unreachable target,
    no requests (or none after the warm-up), a saturated load generator."""
    reasons = []
    info = run.run_info
    if info is not None and (info.exit_code is None or info.ended_at is None):
        # Its worker lists are the start's: nothing else it says can be trusted.
        return (
            "run.json was never finalised: the run (or its master) was killed before it could end; "
            "its outputs are incomplete",
        )
    has_bench = bool(len(stats.entries)) and bool((stats.entries["source"] == "benchmark").any())
    if stats.total_count == 0 and not has_bench:
        if warmup is not None and warmup.excluded:
            reasons.append(
                f"all {warmup.excluded:,} requests started within the warm-up (the first "
                f"{warmup.seconds:g} s, {warmup.reason}): run longer, or pass --warmup 0"
            )
        else:
            reasons.append("the run made zero requests")
    if run.capacity is not None and not run.capacity.valid:
        reasons.append("the capacity search is invalid: " + "; ".join(run.capacity.invalid_reasons))
    if (unreachable := unreachable_reason(run, stats)) is not None:
        reasons.append(unreachable)
    if run.exceptions is not None and len(run.exceptions) and (n := int(run.exceptions["count"].sum())):
        # A step ends its task with StepFailed, a failed request already in the stats; an exception is
        # a locustfile's bug, and the load it cut short is not the load the run meant to make.
        first = str(run.exceptions["message"].iloc[0])
        reasons.append(
            f"user code raised {n:,} exception(s), so the run did not make the load it meant to "
            f"(first: {first}); see locust_exceptions.csv"
        )
    if info is None:
        return tuple(reasons)
    if info.ended_by is None:
        reasons.append("run.json does not say how the run ended (ended_by is null)")
    reasons.extend(f"the run reports: {problem}" for problem in info.problems)
    if info.record.agrees_with_locust is False and not any("record" in p for p in info.problems):
        reasons.append("the exact record's totals differ from Locust's")
    workers = info.workers
    if workers.lost:
        reasons.append(f"worker(s) lost during the run: {', '.join(workers.lost)}")
    if len(workers.seen) < workers.expected:
        reasons.append(f"only {len(workers.seen)} of {workers.expected} expected workers took part")
    if not info.complete and not (info.problems or workers.lost):
        reasons.append("run.json says the run is incomplete")
    if info.load_generator_saturated:
        reasons.append(
            "the load generator was saturated (CPU-bound): the latencies measure it, not the target"
        )
    return tuple(reasons)


def detect_issues(
    run: RunData,
    stats: RunStats,
    system: SystemMetrics,
    regressions: Sequence[RegressionResult],
    t: Thresholds,
    warmup: Warmup | None = None,
) -> tuple[Issue, ...]:
    s = t.issues
    issues: list[Issue] = []
    if warmup is not None and warmup.kept_all:
        issues.append(
            Issue(
                "warm-up",
                "warning",
                f"warm-up of {warmup.seconds:g} s ({warmup.reason}) not excluded: without the exact "
                "record the run's statistics include its start",
            )
        )
    elif warmup is not None and warmup.excluded:
        issues.append(
            Issue(
                "warm-up",
                "info",
                f"{warmup.excluded:,} requests that started in the first {warmup.seconds:g} s "
                f"({warmup.reason}) are left out of every statistic; --warmup 0 keeps them",
            )
        )
    e = stats.entries
    for rec in e.to_dict("records"):
        label = entry_label((str(rec["request_type"]), str(rec["name"])))
        mean = float(rec["mean"])
        if rec["measure"] != "tokens_per_s" and not math.isnan(mean) and mean > s.slow_mean_ms:
            issues.append(
                Issue("slow-response", "warning", f"mean {mean:,.0f} ms > {s.slow_mean_ms:,.0f} ms", label)
            )
        if int(rec["count"]) and float(rec["failure_ratio"]) > s.failure_ratio:
            issues.append(
                Issue(
                    "high-failure-rate",
                    "warning",
                    f"{float(rec['failure_ratio']):.1%} of {int(rec['count'])} requests failed "
                    f"(> {s.failure_ratio:.0%})",
                    label,
                )
            )
    if stats.total_count and stats.total_failures / stats.total_count > s.failure_ratio:
        ratio = stats.total_failures / stats.total_count
        issues.append(
            Issue(
                "high-failure-rate",
                "critical",
                f"{ratio:.1%} of all {stats.total_count} requests failed (> {s.failure_ratio:.0%})",
            )
        )
    if system.sampled:
        cpu_peaks = (
            ("target CPU", system.target_cpu_max),
            (BUSIEST_LOAD_GENERATOR, system.loadgen_cpu_max),
        )
        for what, v in cpu_peaks:
            if not math.isnan(v) and v > s.cpu_percent:
                issues.append(
                    Issue("resource-cpu", "warning", f"{what} peaked at {v:.0f}% (> {s.cpu_percent:.0f}%)")
                )
        m = system.target_memory_percent_max
        if not math.isnan(m) and m > s.memory_percent:
            issues.append(
                Issue(
                    "resource-memory",
                    "warning",
                    f"target memory peaked at {m:.0f}% (> {s.memory_percent:.0f}%)",
                )
            )
    for r in regressions:
        if r.regressed:
            issues.append(
                Issue("regression", "critical" if r.status == "fail" else "warning", r.message, r.entry)
            )
    info = run.run_info
    if info is not None and (not info.complete or info.ended_by not in (None, "normal")):
        how = info.ended_by or "an unknown cause (run.json never finalised)"
        if info.complete:
            # Stopped early by a signal, but every output was written and agrees.
            message = f"the run was stopped by {how}; its outputs are complete"
        else:
            message = f"the run ended by {how} and is incomplete; analysed with what exists" + (
                f" (missing: {', '.join(run.missing)})" if run.missing else ""
            )
        issues.append(Issue("interrupted-run", "warning", message))
    if isinstance(run.arrival, Mapping | list):
        stages = run.arrival.get("stages", []) if isinstance(run.arrival, Mapping) else run.arrival
        for i, st in enumerate(stages if isinstance(stages, list) else []):
            if isinstance(st, Mapping) and isinstance(st.get("dropped"), int | float) and st["dropped"] > 0:
                issues.append(
                    Issue(
                        "arrival-dropped",
                        "warning",
                        f"arrival stage {i + 1} (target {st.get('target_rate')}/s) dropped "
                        f"{st['dropped']} iterations: "
                        "the load generator could not start them on time",
                    )
                )
    for reason in invalid_reasons(run, stats, warmup):
        issues.append(Issue("invalid-run", "critical", reason))
    return tuple(issues)


@dataclass(frozen=True)
class Baseline:
    """A baseline run reduced to what the comparison needs: its label and its statistics (each entry's
    sorted samples), without its record."""

    label: str
    stats: RunStats


def reduce_baseline(run: RunData, warmup_s: float | None = None) -> Baseline:
    """A baseline's label and statistics, without its record (a baseline is only compared). The
    warm-up is the baseline's own: `warmup_s`, else its spawn phase."""
    stats = compute_stats(without_warmup(run, warmup_s)[0], keep_record=False, with_timeline=False)
    if not len(stats.entries):
        raise UsageError(
            "has nothing to compare: no request in its record, Locust statistics or benchmark "
            "results (a baseline must be a finished run)",
            file=run.label,
            key="--baseline",
        )
    return Baseline(run.label, stats)


def analyse(
    run: RunData,
    thresholds: Thresholds,
    baselines: Iterable[RunData | Baseline] = (),
    extra_rules: Sequence[Rule] = (),
    now: datetime | None = None,
    warmup_s: float | None = None,
) -> Analysis:
    """The whole analysis of one run against thresholds and (optionally) pooled baseline runs.

    Requests that started within the warm-up (`warmup_s`, else each run's spawn phase) are left out
    of the run's and the baselines' statistics alike (see `without_warmup`). Baselines may come from a
    generator: each is reduced to the sorted samples the comparison needs before the next is taken,
    so only one baseline's record is ever held; a `Baseline` already reduced (`reduce_baseline`) is
    taken as it is."""
    run, warmup = without_warmup(run, warmup_s)
    compared = [b if isinstance(b, Baseline) else reduce_baseline(b, warmup_s) for b in baselines]
    # No report draws `RunStats.timeline`: the HTML report bins the record itself (`_timeseries`).
    stats = compute_stats(run, with_timeline=False)
    base_stats = [b.stats for b in compared]
    system = system_metrics(run.resources, run.run_info)
    if run.capacity is not None and run.capacity.sustained_rate is not None:
        system = replace(system, capacity_rate=run.capacity.sustained_rate)
    rules = (*thresholds.rules, *config_rules(run.perf_config), *extra_rules)
    results = evaluate(stats, system, rules, thresholds.min_samples)
    if run.run_info is not None and run.run_info.stopped_by is not None:
        results = (*results, stopped_result(rules, run.run_info.stopped_by))
    results = worst_first(results)
    regressions = compare_runs(stats, base_stats, thresholds.regression) if base_stats else ()
    issues = detect_issues(run, stats, system, regressions, thresholds, warmup)
    invalid = invalid_reasons(run, stats, warmup)
    if invalid:
        verdict = Verdict.INVALID
    elif any(r.status == "fail" for r in results) or any(r.status == "fail" for r in regressions):
        verdict = Verdict.FAIL
    else:
        verdict = Verdict.PASS
    return Analysis(
        run=run,
        stats=stats,
        system=system,
        thresholds=thresholds,
        rules=tuple(rules),
        results=results,
        regressions=regressions,
        issues=issues,
        invalid_reasons=invalid,
        verdict=verdict,
        baselines=tuple(b.label for b in compared),
        generated_at=now or datetime.now(UTC),
        warmup=warmup,
        baseline_stats=tuple(base_stats),
    )


def summary_counts(a: Analysis) -> Mapping[str, Any]:
    def count(items: Sequence[Any], status: str) -> int:
        return sum(1 for r in items if r.status == status)

    return {
        "thresholds": {s: count(a.results, s) for s in ("pass", "fail", "warn", "no-data")},
        "regressions": {s: count(a.regressions, s) for s in ("pass", "fail", "warn")},
    }
