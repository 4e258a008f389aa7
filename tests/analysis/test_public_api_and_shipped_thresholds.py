"""The package's public API, its independence from Locust, and the thresholds it ships."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import analysis
from analysis import (
    Distribution,
    compute_stats,
    config_rules,
    evaluate,
    load_run,
    load_thresholds,
    system_metrics,
)
from tests.analysis.runs import Entry, simple_run


def test_all_lists_exactly_the_public_names() -> None:
    public = {n for n in vars(analysis) if not n.startswith("_") and n != "annotations"}
    modules = {n for n in public if type(getattr(analysis, n)).__name__ == "module"}
    assert sorted(analysis.__all__) == sorted(public - modules)
    for name in analysis.__all__:
        assert getattr(analysis, name) is not None


def test_the_analysis_never_imports_locust_or_gevent(tmp_path: Path) -> None:
    run = simple_run(tmp_path, [Entry("GET", "/x", [1.0, 2.0, 3.0])])
    code = (
        "import sys; from analysis.__main__ import main; "
        f"rc = main([{str(run)!r}, '--report', 'json,md,junit,html', '--out', {str(tmp_path / 'out')!r}]); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent', 'scipy')); "
        "print(rc, bad)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "0 []", r.stderr


def test_histogram_percentiles_follow_locusts_rule() -> None:
    """Percentiles from locust.json histograms equal what Locust itself reports for the same buckets."""
    hist = {1: 5, 2: 40, 3: 30, 5: 10, 20: 10, 110: 4, 1200: 1}
    qs = [0.5, 0.66, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0]
    code = (
        "import json; from locust.stats import calculate_response_time_percentile as f; "
        f"h = {hist!r}; print(json.dumps([f(h, sum(h.values()), q) for q in {qs!r}]))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    expected = json.loads(r.stdout)
    values = np.array(sorted(hist), dtype=np.float64)
    counts = np.array([hist[int(v)] for v in values], dtype=np.int64)
    d = Distribution("histogram", bucket_values=values, bucket_counts=counts, count=int(counts.sum()))
    assert [d.quantile(q) for q in qs] == expected


def test_shipped_thresholds_encode_the_seed() -> None:
    t = load_thresholds()
    by_id = {r.id: r for r in t.rules}
    seed = {
        "api.authentication.mean": ("mean", "<", 500.0),
        "api.evidence_creation.mean": ("mean", "<", 1000.0),
        "api.search.mean": ("mean", "<", 800.0),
        "api.dashboard.mean": ("mean", "<", 1500.0),
        "api.ai_response.mean": ("mean", "<", 3000.0),
        "db.simple_query.mean": ("mean", "<", 200.0),
        "db.complex_query.mean": ("mean", "<", 2000.0),
        "db.aggregation.mean": ("mean", "<", 300.0),
        "bulk_100_items.mean": ("mean", "<", 2000.0),
        "load.failure_ratio": ("failure_ratio", "<", 0.05),
        "load.mean": ("mean", "<", 2000.0),
        "resources.memory_increase": ("memory_increase_mb", "<", 100.0),
        "resources.cpu": ("cpu_percent", "<", 80.0),
        "bench.api.authentication.max": ("max", "<", 2000.0),
        "bench.api.ai_chat.max": ("max", "<", 8000.0),
        "bench.api.peak_usage.max": ("max", "<", 30000.0),
        "bench.db.indexed_query.mean": ("mean", "<", 200.0),
        "bench.db.connection_pool.success": ("failure_ratio", "<=", 0.10),
        "bench.db.concurrent_write.success": ("failure_ratio", "<=", 0.20),
        "bench.db.large_result_memory.max": ("max", "<", 10000.0),
    }
    for rule_id, (metric, op, value) in seed.items():
        r = by_id[rule_id]
        assert (r.metric, r.op, r.value) == (metric, op, value), rule_id
    assert (t.regression.alpha, t.regression.min_effect) == (0.01, 0.05)
    assert (t.issues.slow_mean_ms, t.issues.failure_ratio, t.issues.cpu_percent, t.issues.memory_percent) == (
        2000.0,
        0.05,
        80.0,
        85.0,
    )


def test_shipped_thresholds_select_the_scenarios_stat_names(tmp_path: Path) -> None:
    """Stat names as the scenarios and benchmark users name them; each seed rule finds its entry."""
    run = simple_run(
        tmp_path,
        [
            Entry("POST", "/api/auth/login", [100.0] * 5),
            Entry("POST", "/api/evidence", [100.0] * 5),
            Entry("GET", "/api/evidence/search", [100.0] * 5),
            Entry("GET", "/api/users/dashboard", [100.0] * 5),
            Entry("POST", "/api/chat/send", [100.0] * 5),
            Entry("LLM", "sse total", [100.0] * 5),
            Entry("SQL", "hot rows (pick)", [10.0] * 5),
            Entry("SQL", "connect", [10.0] * 5),  # opening a connection: no query
            Entry("SQL", "hot evidence update (row lock)", [10.0] * 5),
            Entry("SQL", "evidence by framework (join)", [10.0] * 5),
            Entry("SQL", "evidence stats by status and type (aggregate)", [10.0] * 5),
            Entry("POST", "/api/evidence/bulk", [100.0] * 5),
            Entry("BENCH", "api.authentication", [100.0] * 5, group="bench-api"),
            Entry("BENCH", "db.indexed_query", [300.0] * 5, group="bench-db"),
        ],
    )
    data = load_run(run)
    results = evaluate(compute_stats(data), system_metrics(data.resources), load_thresholds().rules)
    entries = {}
    for r in results:
        entries.setdefault(r.rule.id, set()).add(r.entry)
    assert entries["api.authentication.mean"] == {"POST /api/auth/login"}
    assert entries["api.ai_response.mean"] == {"POST /api/chat/send", "LLM sse total"}
    assert entries["db.simple_query.mean"] == {"SQL hot rows (pick)"}
    assert entries["db.aggregation.mean"] == {"SQL evidence stats by status and type (aggregate)"}
    assert entries["db.complex_query.mean"] == {"SQL evidence by framework (join)"}
    assert entries["bulk_100_items.mean"] == {"POST /api/evidence/bulk"}
    status = {(r.rule.id, r.entry): r.status for r in results}
    assert status[("bench.api.authentication.mean", "BENCH api.authentication")] == "pass"
    assert status[("bench.db.indexed_query.mean", "BENCH db.indexed_query")] == "fail"
    # The seed's load thresholds pool every non-benchmark entry.
    load = next(r for r in results if r.rule.id == "load.mean")
    assert load.entry == "all of 12 selected"


def test_performance_config_thresholds_become_rules(tmp_path: Path) -> None:
    rules = config_rules(
        {"thresholds": {"api_response_time": 2.0, "database_query_time": 1.0, "memory_increase_mb": 100}}
    )
    assert [(r.id, r.metric, r.value) for r in rules] == [
        ("config.api_response_time", "mean", 2000.0),
        ("config.database_query_time", "mean", 1000.0),
        ("config.memory_increase_mb", "memory_increase_mb", 100.0),
    ]
    run = simple_run(tmp_path, [Entry("GET", "/api/evidence", [2500.0] * 5), Entry("SQL", "q", [10.0] * 5)])
    (run / "performance_config.json").write_text(json.dumps({"thresholds": {"api_response_time": 2.0}}))
    a = analysis.analyse(load_run(run), load_thresholds())
    failed = [(r.rule.id, r.entry) for r in a.results if r.status == "fail"]
    assert ("config.api_response_time", "GET /api/evidence") in failed
    assert a.exit_code == 1


@pytest.mark.parametrize("q", [0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0])
def test_exact_percentiles_are_numpy_higher(q: float) -> None:
    values = np.sort(np.random.default_rng(5).lognormal(3, 1, 1001))
    assert analysis.quantile_sorted(values, q) == np.quantile(values, q, method="higher")
    assert analysis.PERCENTILE_METHOD == "higher"
