"""Has an entry become slower than in the baseline run(s)?

With raw samples on both sides (the exact request record), an entry is a regression when BOTH hold:

1. Significance: a one-sided Mann-Whitney U test (current slower than baseline), normal approximation
   with tie correction and continuity correction, gives p < `alpha` (default 0.01).
2. Effect size: a conservative lower bound on the relative shift of the median is at least
   `min_effect` (default 5%). The bound divides the lower end of the current median's 95% confidence
   interval by the upper end of the baseline's (distribution-free intervals from order statistics:
   ranks n/2 -+ 1.96 sqrt(n)/2). So a 5% slowdown is not flagged (its lower bound is below 5%), while
   10% and 30% slowdowns are once each side has a few thousand samples; noise does not fail builds.

Several baselines are pooled (their samples concatenated per entry). Above `max_samples` per side, a
seeded random subsample of that size feeds the rank test (the medians use every sample).
Without raw samples on either side, the relative change of the mean is compared with
`aggregate_min_effect` (default 20%) and labelled "aggregate delta (no raw samples)": no test, so a
wider margin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from analysis._stats import EntryKey, RunStats, entry_label, quantile_sorted
from analysis._thresholds import RegressionSettings

FloatArray = npt.NDArray[np.float64]
Method = Literal["mann-whitney", "aggregate", "insufficient"]
Z_95 = 1.959963984540054


@dataclass(frozen=True)
class MannWhitney:
    u: float
    z: float
    p_greater: float
    n_current: int
    n_baseline: int


@dataclass(frozen=True)
class RegressionResult:
    entry: str
    method: Method
    baseline_count: int
    current_count: int
    baseline_median: float | None
    current_median: float | None
    baseline_mean: float | None
    current_mean: float | None
    relative_change: float | None
    effect_lower_bound: float | None
    p_value: float | None
    regressed: bool
    status: Literal["pass", "fail", "warn", "no-data"]
    message: str


def _norm_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def mann_whitney_greater(current: FloatArray, baseline: FloatArray) -> MannWhitney:
    """One-sided Mann-Whitney U: is `current` stochastically greater than `baseline`?

    U counts pairs (c, b) with c > b, ties counting one half. Normal approximation with the tie
    correction of the variance and a continuity correction of 0.5.
    """
    n1, n2 = len(current), len(baseline)
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need at least one value")
    b = baseline if bool(np.all(baseline[:-1] <= baseline[1:])) else np.sort(baseline)
    below = np.searchsorted(b, current, side="left")
    at_or_below = np.searchsorted(b, current, side="right")
    u = float(below.sum()) + 0.5 * float((at_or_below - below).sum())
    _, tie_counts = np.unique(np.concatenate([current, baseline]), return_counts=True)
    t = tie_counts.astype(np.float64)
    n = n1 + n2
    tie_term = float((t**3 - t).sum()) / (n * (n - 1)) if n > 1 else 0.0
    var = n1 * n2 / 12.0 * ((n + 1) - tie_term)
    mean_u = n1 * n2 / 2.0
    if var <= 0:
        return MannWhitney(u, 0.0, 1.0 if u <= mean_u else 0.0, n1, n2)
    z = (u - mean_u - 0.5) / math.sqrt(var)
    return MannWhitney(u, z, _norm_sf(z), n1, n2)


def median_interval(sorted_values: FloatArray, z: float = Z_95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median from order statistics."""
    n = len(sorted_values)
    half = z * math.sqrt(n) / 2.0
    lo = max(0, math.floor(n / 2.0 - half))
    hi = min(n - 1, math.ceil(n / 2.0 + half) - 1)
    return float(sorted_values[lo]), float(sorted_values[hi])


def _subsample(values: FloatArray, limit: int, rng: np.random.Generator) -> FloatArray:
    """A seeded random subsample of a sorted array, still sorted."""
    if len(values) <= limit:
        return values
    return values[np.sort(rng.choice(len(values), size=limit, replace=False))]


def compare_samples(
    entry: str, current: FloatArray, baseline: FloatArray, settings: RegressionSettings
) -> RegressionResult:
    """Both arrays sorted ascending."""
    n1, n2 = len(current), len(baseline)
    cur_med, base_med = quantile_sorted(current, 0.5), quantile_sorted(baseline, 0.5)
    cur_mean, base_mean = float(current.mean()), float(baseline.mean())
    rel = (cur_med - base_med) / base_med if base_med > 0 else None
    if min(n1, n2) < settings.min_samples:
        return RegressionResult(
            entry=entry,
            method="insufficient",
            baseline_count=n2,
            current_count=n1,
            baseline_median=base_med,
            current_median=cur_med,
            baseline_mean=base_mean,
            current_mean=cur_mean,
            relative_change=rel,
            effect_lower_bound=None,
            p_value=None,
            regressed=False,
            status="warn",
            message=f"too few samples to test ({n1} current, {n2} baseline; need {settings.min_samples})",
        )
    rng = np.random.default_rng(20240601)
    mw = mann_whitney_greater(
        _subsample(current, settings.max_samples, rng), _subsample(baseline, settings.max_samples, rng)
    )
    cur_lo, _ = median_interval(current)
    _, base_hi = median_interval(baseline)
    bound = (cur_lo - base_hi) / base_hi if base_hi > 0 else None
    significant = mw.p_greater < settings.alpha
    large = bound is not None and bound >= settings.min_effect
    regressed = significant and large
    shift = "n/a" if rel is None else f"{rel:+.1%}"
    if regressed:
        msg = (
            f"median {base_med:.1f} -> {cur_med:.1f} ms ({shift}); "
            f"at least {bound:+.1%} with 95% confidence; "
            f"Mann-Whitney p={mw.p_greater:.2g}"
        )
    elif not significant:
        msg = f"median {shift}; not significant (p={mw.p_greater:.2g} >= {settings.alpha})"
    else:
        low = "n/a" if bound is None else f"{bound:+.1%}"
        msg = (
            f"median {shift}, significant (p={mw.p_greater:.2g}) but its lower bound {low} is under the "
            f"minimum effect {settings.min_effect:.0%}"
        )
    status: Literal["pass", "fail", "warn"] = settings.severity if regressed else "pass"
    return RegressionResult(
        entry=entry,
        method="mann-whitney",
        baseline_count=n2,
        current_count=n1,
        baseline_median=base_med,
        current_median=cur_med,
        baseline_mean=base_mean,
        current_mean=cur_mean,
        relative_change=rel,
        effect_lower_bound=bound,
        p_value=mw.p_greater,
        regressed=regressed,
        status=status,
        message=msg,
    )


def _entry_aggregates(stats: RunStats, key: EntryKey) -> tuple[int, float, float]:
    e = stats.entries
    row = e[(e["request_type"] == key[0]) & (e["name"] == key[1])].iloc[0]
    return int(row["count"]), float(row["mean"]), float(row["median"])


def compare_runs(
    current: RunStats, baselines: Sequence[RunStats], settings: RegressionSettings
) -> tuple[RegressionResult, ...]:
    """One result per entry present in the current run and in at least one baseline (tokens/s excluded:
    a higher rate is not a slowdown)."""
    results = []
    measures = dict(zip(current.key_list(), current.entries["measure"], strict=True))
    for key in current.key_list():
        if measures[key] == "tokens_per_s":
            continue
        present = [b for b in baselines if key in b.response]
        if not present:
            continue
        label = entry_label(key)
        cur = current.response[key]
        raw = [b.response[key].sorted_values for b in present]
        if cur.sorted_values is not None and all(r is not None for r in raw) and cur.kind == "exact":
            pooled = np.sort(np.concatenate([r for r in raw if r is not None]))
            if len(pooled) and len(cur.sorted_values):
                results.append(compare_samples(label, cur.sorted_values, pooled, settings))
                continue
        # Aggregates only: the count-weighted mean of the baselines against the current mean.
        aggs = [_entry_aggregates(b, key) for b in present]
        n_base = sum(a[0] for a in aggs)
        n_cur, cur_mean, cur_med = _entry_aggregates(current, key)
        if not n_base or not n_cur or math.isnan(cur_mean):
            continue
        base_mean = sum(a[0] * a[1] for a in aggs) / n_base
        base_meds = [a[2] for a in aggs if not math.isnan(a[2])]
        rel = (cur_mean - base_mean) / base_mean if base_mean > 0 else None
        regressed = rel is not None and rel >= settings.aggregate_min_effect
        msg = (
            f"aggregate delta (no raw samples): mean {base_mean:.1f} -> {cur_mean:.1f} ms "
            f"({'n/a' if rel is None else f'{rel:+.1%}'}; limit +{settings.aggregate_min_effect:.0%})"
        )
        results.append(
            RegressionResult(
                entry=label,
                method="aggregate",
                baseline_count=n_base,
                current_count=n_cur,
                baseline_median=float(np.median(base_meds)) if base_meds else None,
                current_median=None if math.isnan(cur_med) else cur_med,
                baseline_mean=base_mean,
                current_mean=cur_mean,
                relative_change=rel,
                effect_lower_bound=None,
                p_value=None,
                regressed=regressed,
                status=settings.severity if regressed else "pass",
                message=msg,
            )
        )
    return tuple(results)
