"""From loaded runs to a verdict: thresholds, regressions, issues, validity. No file is written here."""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from analysis._load import RunData
from analysis._regression import RegressionResult, compare_runs
from analysis._stats import RunStats, compute_stats, entry_label
from analysis._system import SystemMetrics, system_metrics
from analysis._thresholds import Rule, ThresholdResult, Thresholds, config_rules, evaluate
from analysis.errors import EXIT_FAIL, EXIT_INVALID_RUN, EXIT_PASS


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


def invalid_reasons(run: RunData, stats: RunStats) -> tuple[str, ...]:
    """Why a run cannot be judged: a run.json never finalised or ended for no known reason, an output
    that failed to write, a record that disagrees with Locust, a lost worker, an unreachable target,
    no requests, a saturated load generator."""
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
        reasons.append("the run made zero requests")
    if (unreachable := unreachable_reason(run, stats)) is not None:
        reasons.append(unreachable)
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
) -> tuple[Issue, ...]:
    s = t.issues
    issues: list[Issue] = []
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
        for label, v in (("target", system.target_cpu_max), ("load generator", system.loadgen_cpu_max)):
            if not math.isnan(v) and v > s.cpu_percent:
                issues.append(
                    Issue(
                        "resource-cpu", "warning", f"{label} CPU peaked at {v:.0f}% (> {s.cpu_percent:.0f}%)"
                    )
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
    if run.exceptions is not None and len(run.exceptions):
        n = int(run.exceptions["count"].sum())
        issues.append(
            Issue("exceptions", "warning", f"{n} exception(s) in user code (see locust_exceptions.csv)")
        )
    for reason in invalid_reasons(run, stats):
        issues.append(Issue("invalid-run", "critical", reason))
    return tuple(issues)


def analyse(
    run: RunData,
    thresholds: Thresholds,
    baselines: Sequence[RunData] = (),
    extra_rules: Sequence[Rule] = (),
    now: datetime | None = None,
) -> Analysis:
    """The whole analysis of one run against thresholds and (optionally) pooled baseline runs."""
    stats = compute_stats(run)
    base_stats = [compute_stats(b, with_timeline=False) for b in baselines]
    system = system_metrics(run.resources, run.run_info)
    rules = (*thresholds.rules, *config_rules(run.perf_config), *extra_rules)
    results = evaluate(stats, system, rules)
    regressions = compare_runs(stats, base_stats, thresholds.regression) if base_stats else ()
    issues = detect_issues(run, stats, system, regressions, thresholds)
    invalid = invalid_reasons(run, stats)
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
        baselines=tuple(b.label for b in baselines),
        generated_at=now or datetime.now(UTC),
    )


def summary_counts(a: Analysis) -> Mapping[str, Any]:
    def count(items: Sequence[Any], status: str) -> int:
        return sum(1 for r in items if r.status == status)

    return {
        "thresholds": {s: count(a.results, s) for s in ("pass", "fail", "warn", "no-data")},
        "regressions": {s: count(a.regressions, s) for s in ("pass", "fail", "warn")},
    }
