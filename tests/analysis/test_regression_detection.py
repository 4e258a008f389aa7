"""Regression detection: the rank test is right, noise does not fail builds, real slowdowns do.

Injected slowdowns on seeded lognormal samples (median 100 ms, sigma 0.5, 10,000 requests per side):
5% is NOT flagged, 10% and 30% are. Why: a slowdown is flagged only when it is significant (one-sided
Mann-Whitney p < 0.01) AND the 95%-confidence lower bound of the median shift reaches the minimum
effect of 5%. A true 5% shift has a lower bound below 5% (its point estimate is ~5% minus the
interval's half-width of ~2.4%), so it never clears the bar; at 10% the bound is ~+6-10%; at 30%
~+25%. A/A runs are never flagged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis import (
    RegressionSettings,
    compare_runs,
    compare_samples,
    compute_stats,
    load_run,
    mann_whitney_greater,
)
from tests.analysis.runs import Entry, lognormal, simple_run, write_stats_csv

SETTINGS = RegressionSettings()
N = 10_000


def sample(slowdown: float, seed: int) -> np.ndarray:
    return np.sort(lognormal(N, 100.0 * (1 + slowdown), 0.5, seed))


@pytest.mark.parametrize("seed", range(5))
def test_a_a_runs_are_not_flagged(seed: int) -> None:
    r = compare_samples("GET /x", sample(0.0, 1000 + seed), sample(0.0, seed), SETTINGS)
    assert r.method == "mann-whitney"
    assert not r.regressed and r.status == "pass"


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("slowdown", "flagged"), [(0.05, False), (0.10, True), (0.30, True)])
def test_injected_slowdowns(slowdown: float, flagged: bool, seed: int) -> None:
    r = compare_samples("GET /x", sample(slowdown, 1000 + seed), sample(0.0, seed), SETTINGS)
    assert r.regressed is flagged, r.message
    assert r.relative_change == pytest.approx(slowdown, abs=0.04)
    if slowdown == 0.05:
        # Significant, but not large enough to trust: the report says so.
        assert r.p_value is not None and r.p_value < SETTINGS.alpha
        assert "under the minimum effect" in r.message


def test_faster_is_never_a_regression() -> None:
    r = compare_samples("GET /x", sample(-0.3, 7), sample(0.0, 8), SETTINGS)
    assert not r.regressed and r.p_value is not None and r.p_value > 0.99


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
