"""Each threshold metric and selector, evaluated on small handmade run folders whose answers are known."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analysis import (
    Analysis,
    Rule,
    Selector,
    analyse,
    compute_stats,
    evaluate,
    load_run,
    load_thresholds,
    parse_thresholds,
    report_document,
    system_metrics,
)
from compliance_loadtest.run_folder import RunInfo, System
from tests.analysis.runs import Entry, simple_run, write_resources, write_run_json


def rules(*raw: dict[str, Any]) -> tuple[Rule, ...]:
    return parse_thresholds({"rules": list(raw)}, "test.yaml").rules


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """Known values: login 1..100 ms (2 failures), evidence list 10..1000 ms, a SQL query, an LLM stream."""
    return simple_run(
        tmp_path,
        [
            Entry(
                "POST", "/api/auth/login", [float(v) for v in range(1, 101)], failures=2, tags="auth,smoke"
            ),
            Entry("GET", "/api/evidence", [float(v) * 10 for v in range(1, 101)], tags="evidence"),
            Entry("SQL", "evidence by framework (join)", [5.0] * 40 + [50.0] * 10),
            Entry(
                "POST",
                "/api/chat/stream",
                [1000.0, 2000.0, 3000.0, 4000.0],
                group="ai",
                ttft=[100.0, 200.0, 300.0, 400.0],
                tokens=[10.0, 20.0, 30.0, 40.0],
            ),
            # As an older writer left them: the derived time to first token carrying the reply's
            # `ttft_ms` and `tokens`, and a tokens/s entry (a rate among times).
            Entry(
                "LLM",
                "sse time to first token",
                [100.0, 200.0, 300.0, 400.0],
                ttft=[100.0, 200.0, 300.0, 400.0],
                tokens=[10.0, 20.0, 30.0, 40.0],
            ),
            Entry("LLM", "sse tokens/s", [50.0, 60.0, 70.0]),
        ],
    )


def values(run: Path, *raw: dict[str, Any]) -> list[tuple[str, float | None, str]]:
    data = load_run(run)
    stats = compute_stats(data)
    results = evaluate(stats, system_metrics(data.resources), rules(*raw))
    return [(r.entry, r.value, r.status) for r in results]


def one(run: Path, **raw: Any) -> float | None:
    got = values(run, {"op": "<", "value": 1e12, **raw})
    assert len(got) == 1, got
    return got[0][1]


LOGIN = {"name": "/api/auth/login"}


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("count", 100.0),
        ("failures", 2.0),
        ("failure_ratio", 0.02),
        ("mean", 50.5),
        ("median", 51.0),  # numpy 'higher': index ceil(0.5 * 99) = 50 -> 51 ms
        ("min", 1.0),
        ("max", 100.0),
        ("p95", 96.0),
        ("p99", 100.0),
        ("p99.9", 100.0),
        ("p50", 51.0),
        ("p10", 11.0),
    ],
)
def test_response_time_metrics_of_one_entry_are_exact(run: Path, metric: str, expected: float) -> None:
    assert one(run, metric=metric, select=LOGIN) == pytest.approx(expected)


def test_percentiles_match_numpy_higher_method(run: Path) -> None:
    samples = np.arange(10.0, 1001.0, 10.0)
    for q in (50, 66, 90, 95, 97.5, 99, 99.9):
        got = one(run, metric=f"p{q}", select={"name": "/api/evidence", "request_type": "GET"})
        assert got == pytest.approx(np.quantile(samples, q / 100, method="higher"))


def test_requests_per_second_uses_the_run_duration(run: Path) -> None:
    rps = one(run, metric="rps", select=LOGIN)
    assert rps is not None
    # 100 requests spread over the record's ~10 s.
    assert 9.0 < rps < 10.5


def test_stream_metrics_come_from_the_record_columns(run: Path) -> None:
    chat = {"name": "/api/chat/stream"}
    assert one(run, metric="ttft.mean", select=chat) == pytest.approx(250.0)
    assert one(run, metric="ttft.p95", select=chat) == pytest.approx(400.0)
    # Inter-token latency: (total - ttft) / (tokens - 1) = 900/9, 1800/19, 2700/29, 3600/39.
    itl = [900 / 9, 1800 / 19, 2700 / 29, 3600 / 39]
    assert one(run, metric="itl.mean", select=chat) == pytest.approx(np.mean(itl))
    # Tokens per second of the whole reply: 10 tokens in 1 s, 20 in 2 s...
    assert one(run, metric="tokens_per_s.mean", select=chat) == pytest.approx(10.0)


def test_derived_llm_rows_are_never_streams_and_an_old_tokens_per_second_entry_is_no_latency(
    run: Path,
) -> None:
    stats = compute_stats(load_run(run))
    for table in (stats.ttft, stats.itl, stats.tokens_per_s):
        assert set(table) == {("POST", "/api/chat/stream")}
    # Derived from a reply, not re-derived: its own times, no inter-token latency of -66 ms.
    ttft = {"name": "sse time to first token"}
    assert one(run, metric="mean", select=ttft) == pytest.approx(250.0)
    assert values(run, {"metric": "itl.mean", "op": "<", "value": 1, "select": ttft})[0][1] is None
    # A rate among times: no latency rule judges it, no pooled mean includes it.
    old = {"name": "sse tokens/s"}
    got = values(run, {"metric": "mean", "op": "<", "value": 1, "select": old})
    assert got[0][1] is None and got[0][2] == "warn"
    pooled = one(run, metric="mean", per="all", select={"request_type": "LLM"})
    assert pooled == pytest.approx(250.0)


def test_goodput_is_the_share_of_successful_requests_within_limits(run: Path) -> None:
    # Login: 2 failures (the first two, 1 and 2 ms), limit 50 ms -> requests 3..50 = 48 of 100.
    got = one(run, metric="goodput", limits={"response_time_ms": 50}, select=LOGIN)
    assert got == pytest.approx(0.48)
    chat = one(
        run, metric="goodput", limits={"ttft_ms": 250, "response_time_ms": "2.5s"}, select={"name": "*stream"}
    )
    assert chat == pytest.approx(0.5)


def test_memory_increase_and_cpu_come_from_the_target_samples(run: Path) -> None:
    # simple_run samples the target at 200, 210, 220, 230 MB and 30, 40, 50, 40 % CPU.
    assert one(run, metric="memory_increase_mb") == pytest.approx(30.0)
    assert one(run, metric="cpu_percent") == pytest.approx(40.0)
    assert one(run, metric="cpu_percent.max") == pytest.approx(50.0)
    assert one(run, metric="rss_mb.max") == pytest.approx(230.0)
    assert one(run, metric="loadgen_cpu_percent") == pytest.approx(20.0)


def test_memory_increase_sums_the_target_processes(tmp_path: Path) -> None:
    write_resources(tmp_path, [100.0, 150.0], [10.0, 10.0])
    extra = tmp_path / "resources.csv"
    extra.write_text(
        extra.read_text() + f"{1_790_000_000.0},target,local,5555,40.0,5.0,2,3\n"
        f"{1_790_000_001.0},target,local,5555,60.0,5.0,2,3\n"
    )
    write_run_json(tmp_path)  # resource samples alone are no run
    data = load_run(tmp_path)
    assert system_metrics(data.resources).target_memory_increase_mb == pytest.approx(70.0)


def load_generators_at(tmp_path: Path, cpu_per_worker: dict[str, Sequence[float]]) -> Analysis:
    """A run whose load generator is one process per worker, each at the given CPU every second."""
    simple_run(tmp_path, [Entry("GET", "/api/evidence", [10.0] * 20)], resources=False)
    write_resources(tmp_path, [100.0] * 4, [10.0] * 4, loadgen_cpu=0.0)
    path = tmp_path / "resources.csv"
    rows = path.read_text().splitlines()
    rows = [r for r in rows if ",load-generator," not in r]
    for n, (worker, cpus) in enumerate(cpu_per_worker.items()):
        rows += [
            f"{1_790_000_000.0 + i},load-generator,{worker},{5000 + n},80.0,{c},4,9"
            for i, c in enumerate(cpus)
        ]
    path.write_text("\n".join(rows) + "\n")
    return analyse(load_run(tmp_path), load_thresholds(None))


def test_load_generator_cpu_is_its_busiest_process_not_the_sum_of_its_workers(tmp_path: Path) -> None:
    # Three workers at 30% each: 90% summed, but no process came near a core.
    a = load_generators_at(tmp_path, {"w1": [30.0] * 4, "w2": [30.0] * 4, "w3": [30.0] * 4})
    assert a.system.loadgen_cpu_max == pytest.approx(30.0)
    assert a.system.loadgen_cpu_mean == pytest.approx(30.0)
    assert [i.message for i in a.issues if i.kind == "resource-cpu"] == []


def test_a_busy_load_generator_process_is_named_with_its_peak_and_the_advice_to_add_workers(
    tmp_path: Path,
) -> None:
    a = load_generators_at(tmp_path, {"w1": [20.0, 85.0, 60.0, 20.0], "w2": [10.0] * 4})
    assert a.system.loadgen_cpu_max == pytest.approx(85.0)
    assert a.system.loadgen_cpu_mean == pytest.approx(46.25)  # w1's mean: the busiest process on average
    assert [i.message for i in a.issues if i.kind == "resource-cpu"] == [
        "CPU of the busiest load-generator process peaked at 85% (> 80%)"
    ]
    assert any(
        "peaked at 85% (> 80%); near a whole core" in r and "add workers" in r
        for r in report_document(a)["recommendations"]
    )


def test_selectors_by_name_glob_type_group_tag_and_exclusion(run: Path) -> None:
    def entries(select: dict[str, Any]) -> list[str]:
        return sorted(
            e for e, _, _ in values(run, {"metric": "count", "op": ">", "value": 0, "select": select})
        )

    assert entries({"name": "/api/*"}) == [
        "GET /api/evidence",
        "POST /api/auth/login",
        "POST /api/chat/stream",
    ]
    assert entries({"request_type": "sql"}) == ["SQL evidence by framework (join)"]
    assert entries({"group": "ai"}) == [
        "LLM sse time to first token",
        "LLM sse tokens/s",
        "POST /api/chat/stream",
    ]
    assert entries({"tag": "smoke"}) == ["POST /api/auth/login"]
    assert entries({"tag": ["evidence", "auth"]}) == ["GET /api/evidence", "POST /api/auth/login"]
    assert entries({"name": "/API/*", "exclude_name": "*stream"}) == [
        "GET /api/evidence",
        "POST /api/auth/login",
    ]
    assert entries({"exclude_group": ["api", "ai"]}) == ["SQL evidence by framework (join)"]
    assert entries({"exclude_request_type": ["POST", "GET", "LLM"]}) == ["SQL evidence by framework (join)"]
    any_of = values(
        run, {"metric": "count", "op": ">", "value": 0, "select": [{"tag": "smoke"}, {"request_type": "SQL"}]}
    )
    assert sorted(e for e, _, _ in any_of) == ["POST /api/auth/login", "SQL evidence by framework (join)"]


def test_per_all_pools_the_selected_entries(run: Path) -> None:
    both = {"name": ["/api/auth/login", "/api/evidence"]}
    assert one(run, metric="count", select=both, per="all") == 200
    assert one(run, metric="failure_ratio", select=both, per="all") == pytest.approx(0.01)
    assert one(run, metric="mean", select=both, per="all") == pytest.approx((50.5 + 505.0) / 2)
    pooled = np.concatenate([np.arange(1.0, 101.0), np.arange(10.0, 1001.0, 10.0)])
    assert one(run, metric="p95", select=both, per="all") == pytest.approx(
        np.quantile(pooled, 0.95, method="higher")
    )


@pytest.mark.parametrize(
    ("op", "value", "status"),
    [
        ("<", 50.5, "fail"),
        ("<", 50.6, "pass"),
        ("<=", 50.5, "pass"),
        (">", 50.5, "fail"),
        (">=", 50.5, "pass"),
    ],
)
def test_comparators(run: Path, op: str, value: float, status: str) -> None:
    assert values(run, {"metric": "mean", "op": op, "value": value, "select": LOGIN})[0][2] == status


def test_a_broken_warn_rule_warns_and_a_rule_that_selects_nothing_warns_or_fails_if_required(
    run: Path,
) -> None:
    got = values(
        run,
        {"metric": "mean", "op": "<", "value": 1, "select": LOGIN, "severity": "warn"},
        {"metric": "mean", "op": "<", "value": 1, "select": {"name": "/nothing"}},
        {"metric": "mean", "op": "<", "value": 1, "select": {"name": "/nothing"}, "required": True},
    )
    assert [s for _, _, s in got] == ["warn", "warn", "fail"]
    assert got[1][1] is None


def test_system_rules_without_resource_samples_are_reported_not_passed(tmp_path: Path) -> None:
    simple_run(tmp_path, [Entry("GET", "/x", [1.0, 2.0])], resources=False)
    got = values(tmp_path, {"metric": "memory_increase_mb", "op": "<", "value": 100})
    assert got == [("target", None, "warn")]


def test_selector_matching_is_case_insensitive_on_names_and_types() -> None:
    s = Selector(names=("/api/Evidence/*",), request_types=("get",))
    assert s.matches("GET", "/api/evidence/[id]", "api", "")
    assert not s.matches("POST", "/api/evidence/[id]", "api", "")


def test_values_accept_units(run: Path) -> None:
    r = rules(
        {"metric": "mean", "op": "<", "value": "1.5s"},
        {"metric": "failure_ratio", "op": "<", "value": "5%"},
        {"metric": "cpu_percent", "op": "<", "value": "80%"},
        {"metric": "memory_increase_mb", "op": "<", "value": "100MB"},
    )
    assert [x.value for x in r] == [1500.0, 0.05, 80.0, 100.0]
    assert not math.isnan(r[0].value)


def test_latency_corrected_for_coordinated_omission(tmp_path: Path) -> None:
    """`corrected` adds how late a request started after its intended start (arrival-rate runs)."""
    simple_run(
        tmp_path,
        [
            Entry("GET", "/api/evidence", [10.0, 10.0, 10.0, 10.0], start_lag_ms=[0.0, 0.0, 500.0, 1000.0]),
            Entry("GET", "/health", [1.0, 1.0]),
        ],
    )
    assert one(tmp_path, metric="corrected.max", select={"name": "/api/evidence"}) == pytest.approx(1010.0)
    assert one(tmp_path, metric="corrected.median", select={"name": "/api/evidence"}) == pytest.approx(510.0)
    assert one(tmp_path, metric="max", select={"name": "/api/evidence"}) == pytest.approx(10.0)
    got = values(tmp_path, {"metric": "corrected.p99", "op": "<", "value": 1, "select": {"name": "/health"}})
    assert got[0][1] is None and got[0][2] == "warn"


def test_target_memory_is_judged_as_a_share_of_the_machine_that_run_json_states(tmp_path: Path) -> None:
    """The seed's "> 85% memory": the target's peak RSS against `system.memory_total_mb` in run.json."""
    write_resources(tmp_path, [100.0, 900.0], [10.0, 10.0])
    write_run_json(tmp_path)  # resource samples alone are no run
    data = load_run(tmp_path)
    assert math.isnan(system_metrics(data.resources).target_memory_percent_max)
    judged = system_metrics(data.resources, RunInfo(system=System(memory_total_mb=1000.0)))
    assert judged.target_memory_percent_max == pytest.approx(90.0)
