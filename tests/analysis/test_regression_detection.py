"""Regression detection: known slowdowns give the documented verdicts, noise does not fail builds.

Seeded lognormal samples (median 100 ms, sigma 0.5, 10,000 requests per side). A metric is flagged when
its one-sided p-value is under 0.01 AND its estimated change is at least 5%:
- A/A and faster runs: never flagged.
- 10% and 20% slower (every latency scaled): p50 flagged, its 95% interval around the true shift.
- 5% slower: right at the minimum effect, flagged about half the time; the interval holds 5%.
- tail only (p95 10% slower, median unchanged): p95 flagged, p50 not.
- several baseline runs that disagree: the interval widens and a 10% slowdown inside that noise is
  not an alarm; runs that agree leave it as narrow as one run.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from analysis import (
    RegressionResult,
    RegressionSettings,
    _regression,
    compare_runs,
    compare_samples,
    compute_stats,
    load_run,
    mann_whitney_greater,
)
from analysis._regression import between_run_variance, hodges_lehmann
from tests.analysis.runs import Entry, lognormal, simple_run, write_stats_csv

SETTINGS = RegressionSettings()
N = 10_000


def sample(slowdown: float, seed: int, n: int = N) -> np.ndarray:
    return np.sort(lognormal(n, 100.0 * (1 + slowdown), 0.5, seed))


def tail_sample(p95_slowdown: float, seed: int) -> np.ndarray:
    """The median stays 100 ms; the log-sigma widens so that p95 is `p95_slowdown` higher."""
    sigma = 0.5 + math.log1p(p95_slowdown) / 1.6448536269514722
    return np.sort(lognormal(N, 100.0, sigma, seed))


def flagged(r: RegressionResult) -> set[str]:
    return {s.metric for s in r.shifts if s.regressed}


@pytest.mark.parametrize("seed", range(5))
def test_a_a_runs_are_not_flagged(seed: int) -> None:
    r = compare_samples("GET /x", sample(0.0, 1000 + seed), sample(0.0, seed), SETTINGS)
    assert r.method == "rank-shift"
    assert [s.metric for s in r.shifts] == ["p50", "p95", "p99"]
    assert not r.regressed and r.status == "pass", r.message
    assert "no regression" in r.message


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("slowdown", [0.10, 0.20])
def test_injected_slowdowns_are_flagged_with_an_interval_around_them(slowdown: float, seed: int) -> None:
    r = compare_samples("GET /x", sample(slowdown, 1000 + seed), sample(0.0, seed), SETTINGS)
    assert r.regressed and r.status == "fail", r.message
    assert "p50" in flagged(r)
    assert r.relative_change == pytest.approx(slowdown, abs=0.03)
    assert r.effect_lower_bound is not None and r.interval_high is not None
    assert r.effect_lower_bound < slowdown < r.interval_high
    assert r.message.startswith("slower: p50")
    assert "samples 10000 current, 10000 baseline (1 baseline run" in r.message


def test_a_slowdown_at_the_minimum_effect_is_measured_not_promised() -> None:
    verdicts = []
    for seed in range(10):
        r = compare_samples("GET /x", sample(0.05, 1000 + seed), sample(0.0, seed), SETTINGS)
        p50 = r.shifts[0]
        assert p50.low < 0.05 < p50.high
        assert p50.p_value < SETTINGS.alpha  # significant every time; large enough about half the time
        verdicts.append("p50" in flagged(r))
    assert 0 < sum(verdicts) < 10


@pytest.mark.parametrize("seed", range(5))
def test_a_tail_only_slowdown_is_flagged_on_the_tail(seed: int) -> None:
    r = compare_samples("GET /x", tail_sample(0.10, 1000 + seed), sample(0.0, seed), SETTINGS)
    assert r.regressed, r.message
    assert "p95" in flagged(r) and "p50" not in flagged(r)
    assert abs(r.shifts[0].change) < 0.03
    assert r.shifts[1].change == pytest.approx(0.10, abs=0.05)


def test_faster_is_never_a_regression() -> None:
    r = compare_samples("GET /x", sample(-0.3, 7), sample(0.0, 8), SETTINGS)
    assert not r.regressed and r.p_value is not None and r.p_value > 0.99


def test_hodges_lehmann_is_the_median_of_pairwise_differences() -> None:
    rng = np.random.default_rng(5)
    cur, base = np.sort(rng.normal(0.2, 1, 301)), np.sort(rng.normal(0, 1, 257))
    diffs = np.sort((cur[:, None] - base[None, :]).ravel())
    est, lo, hi = hodges_lehmann(cur, base)
    assert est == pytest.approx(float(np.median(diffs)), abs=1e-5)
    # The rank-based interval: the k-th smallest and largest differences.
    k = math.floor(len(diffs) / 2 - 1.96 * math.sqrt(301 * 257 * (301 + 257 + 1) / 12))
    assert lo == pytest.approx(float(diffs[k - 1]), abs=1e-5)
    assert hi == pytest.approx(float(diffs[len(diffs) - k]), abs=1e-5)


@pytest.mark.parametrize("rounded", [False, True])
def test_bracketed_counts_find_what_counting_every_pair_finds(
    rounded: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past 1,000 x 1,000 pairs the ranks are bracketed before the bisection; its answer must be the
    one counting every pair at each step gives, on continuous and on rounded (tied) response times."""
    current, baseline = lognormal(12_000, 110.0, 0.6, 21), lognormal(11_000, 100.0, 0.6, 22)
    if rounded:
        current, baseline = np.round(current), np.round(baseline)
    cur, base = (np.sort(np.log(np.maximum(v, 1e-3))) for v in (current, baseline))
    bracketed = hodges_lehmann(cur, base)
    monkeypatch.setattr(_regression, "_BRACKET_FROM", 10**12)
    assert hodges_lehmann(cur, base) == bracketed


def test_between_run_variance_is_zero_when_runs_agree_and_grows_when_they_do_not() -> None:
    assert between_run_variance([(0.0, 0.01)]) == 0.0
    assert between_run_variance([(0.0, 0.01), (0.001, 0.01), (-0.001, 0.01)]) == 0.0
    assert between_run_variance([(0.0, 0.01), (0.1, 0.01), (-0.1, 0.01)]) == pytest.approx(0.0099, rel=0.01)


def test_baseline_runs_that_disagree_widen_the_interval() -> None:
    agreeing = [sample(0.0, s, 4000) for s in range(4)]
    disagreeing = [sample(f, s, 4000) for s, f in enumerate((-0.10, 0.0, 0.10, 0.0))]
    current = sample(0.10, 99, 4000)

    def compare(runs: list[np.ndarray]) -> RegressionResult:
        return compare_samples("GET /x", current, np.sort(np.concatenate(runs)), SETTINGS, runs)

    calm, noisy = compare(agreeing), compare(disagreeing)
    width = [(r.interval_high or 0.0) - (r.effect_lower_bound or 0.0) for r in (calm, noisy)]
    assert width[1] > 2 * width[0]
    assert calm.regressed and not noisy.regressed
    assert "4 baseline runs" in noisy.message and noisy.baseline_runs == 4


def brute_force_u(current: np.ndarray, baseline: np.ndarray) -> float:
    diff = current[:, None] - baseline[None, :]
    return float((diff > 0).sum() + 0.5 * (diff == 0).sum())


def test_u_statistic_counts_pairs_with_ties_as_halves() -> None:
    rng = np.random.default_rng(3)
    cur = rng.integers(0, 20, 300).astype(float)  # many ties
    base = rng.integers(0, 18, 250).astype(float)
    mw = mann_whitney_greater(cur, base)
    assert mw.u == brute_force_u(cur, base)
    assert (mw.n_current, mw.n_baseline) == (300, 250)


@pytest.mark.parametrize("tied", [False, True])
def test_p_values_are_calibrated_under_the_null(tied: bool) -> None:
    """With the tie correction the test keeps its level even on heavily tied (rounded) data."""
    rng = np.random.default_rng(11)
    hits = 0
    trials = 400
    for _ in range(trials):
        a, b = rng.lognormal(0, 0.5, 60), rng.lognormal(0, 0.5, 60)
        if tied:
            a, b = np.round(a), np.round(b)
        hits += mann_whitney_greater(a, b).p_greater < 0.05
    assert 0.02 <= hits / trials <= 0.08


def test_too_few_samples_is_reported_not_judged() -> None:
    r = compare_samples("GET /x", np.array([1.0, 2.0]), np.array([1.0, 2.0, 3.0]), SETTINGS)
    assert r.method == "insufficient" and r.status == "warn" and not r.regressed


def test_runs_are_compared_per_entry_and_baselines_are_pooled(tmp_path: Path) -> None:
    def run(name: str, login_median: float, search_median: float, seed: int) -> Path:
        d = tmp_path / name
        d.mkdir()
        return simple_run(
            d,
            [
                Entry("POST", "/api/auth/login", lognormal(3000, login_median, 0.4, seed)),
                Entry("GET", "/api/evidence/search", lognormal(3000, search_median, 0.4, seed + 1)),
            ],
        )

    base1, base2 = run("b1", 100, 200, 1), run("b2", 100, 200, 3)
    current = run("cur", 100, 300, 5)
    results = compare_runs(
        compute_stats(load_run(current)),
        [compute_stats(load_run(base1)), compute_stats(load_run(base2))],
        SETTINGS,
    )
    by_entry = {r.entry: r for r in results}
    assert set(by_entry) == {"POST /api/auth/login", "GET /api/evidence/search"}
    assert by_entry["GET /api/evidence/search"].regressed
    assert not by_entry["POST /api/auth/login"].regressed
    assert by_entry["POST /api/auth/login"].baseline_count == 6000


def test_without_raw_samples_a_labelled_aggregate_delta_is_used(tmp_path: Path) -> None:
    rows = {
        "base": "GET,/api/evidence,100,0,100,100.0,50,300,120,10.0,0.0,"
        "100,110,120,130,150,200,250,280,300,300,300",
        "cur": "GET,/api/evidence,100,0,130,130.0,60,400,120,10.0,0.0,"
        "130,140,150,160,190,260,320,380,400,400,400",
    }
    stats = {}
    for name, row in rows.items():
        d = tmp_path / name
        d.mkdir()
        write_stats_csv(d, [row])
        stats[name] = compute_stats(load_run(d))
    (r,) = compare_runs(stats["cur"], [stats["base"]], SETTINGS)
    assert r.method == "aggregate"
    assert r.relative_change == pytest.approx(0.30)
    assert r.regressed and "aggregate delta (no raw samples)" in r.message
    (same,) = compare_runs(stats["base"], [stats["base"]], SETTINGS)
    assert not same.regressed
