"""Has an entry become slower than in the baseline run(s)?

With raw samples on both sides (the exact request record), each entry is compared on three metrics,
all on log latency (a slowdown is a ratio, and latency is skewed):

- p50: the Hodges-Lehmann shift (the median of all pairwise differences current - baseline) with its
  rank-based 95% interval (the inversion of the Mann-Whitney test). For the same precision it needs about two
  thirds of the samples a difference of two sample medians needs (normal log latency: 3/pi vs 2/pi).
- p95 and p99: the log ratio of the two sample quantiles; each side's standard error comes from its
  distribution-free order-statistic interval, and the two are added in quadrature (subtracting the
  two intervals' ends from each other, as a bound, throws most of the power away).

A metric regressed when its one-sided p-value (estimate / standard error) is under `alpha` / 3 AND
its estimated change is at least `min_effect`: significance and a minimum effect, as pyperf and asv
decide. The entry regressed when any metric did; dividing `alpha` among the three metrics
(Bonferroni) keeps an entry's false-alarm rate under `alpha`.

Several baseline runs: their samples are pooled for the estimate, and the between-run variance of
each metric (DerSimonian-Laird estimate over the baseline runs' own estimates) enters the standard
error as tau^2 * (1 + 1/k): the current run carries its own run effect, the baseline mean of k runs
a k-th of it. A noisy machine therefore widens the interval instead of raising an alarm. With one
baseline run the between-run variance cannot be seen; the report says so. Above `max_samples` per
side, the p50 shift and its interval come from a seeded subsample of that size.

Without raw samples on either side, the relative change of the mean is compared with
`aggregate_min_effect` (default 20%) and labelled "aggregate delta (no raw samples)": no test, so a
wider margin. Power, measured: bench/bench_regression.py.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from analysis._stats import EntryKey, RunStats, entry_label, quantile_sorted
from analysis._thresholds import RegressionSettings

FloatArray = npt.NDArray[np.float64]
Method = Literal["rank-shift", "aggregate", "insufficient"]
Z_95 = 1.959963984540054
TAIL_QUANTILES = (0.95, 0.99)
METRIC_COUNT = 1 + len(TAIL_QUANTILES)
# Response times of 0 ms exist (rounded timers); the log needs a floor well under any real latency.
_FLOOR_MS = 1e-3
_SEED = 20240601


@dataclass(frozen=True)
class MannWhitney:
    u: float
    z: float
    p_greater: float
    n_current: int
    n_baseline: int


@dataclass(frozen=True)
class Shift:
    """The change of one metric of one entry, current against baseline."""

    metric: str
    """p50 (Hodges-Lehmann shift) or p95 / p99 (quantile ratio)."""
    baseline_value: float
    current_value: float
    change: float
    """Relative change: +0.10 is 10% slower."""
    low: float
    high: float
    """The 95% interval of `change`, between-run variance included."""
    p_value: float
    """One-sided: the probability of a change this large if nothing got slower."""
    regressed: bool


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
    baseline_runs: int = 1
    current_runs: int = 1
    interval_high: float | None = None
    """With `effect_lower_bound`: the 95% interval of the median's relative change."""
    shifts: tuple[Shift, ...] = ()
    """Every metric compared (p50, p95, p99)."""


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
    return quantile_interval(sorted_values, 0.5, z)


def quantile_interval(sorted_values: FloatArray, q: float, z: float = Z_95) -> tuple[float, float]:
    """Distribution-free confidence interval of the q-quantile: order statistics at ranks
    n*q -+ z*sqrt(n*q*(1-q)) (the binomial count of samples under the true quantile)."""
    n = len(sorted_values)
    half = z * math.sqrt(n * q * (1 - q))
    lo = min(n - 1, max(0, math.floor(n * q - half)))
    hi = min(n - 1, max(0, math.ceil(n * q + half) - 1))
    return float(sorted_values[lo]), float(sorted_values[hi])


def hodges_lehmann(
    current_log: FloatArray, baseline_log: FloatArray, z: float = Z_95
) -> tuple[float, float, float]:
    """The two-sample Hodges-Lehmann shift (current - baseline) and its rank-based interval.

    Both arrays sorted. The n1*n2 pairwise differences are never built: the k-th smallest is found by
    bisection on its value, counting the differences at or below a candidate (all three ranks at
    once), to 1e-6 on the log scale. `_PairCounts` answers each count exactly, mostly without
    counting (see there).
    """
    n1, n2 = len(current_log), len(baseline_log)
    total = n1 * n2
    half = z * math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12.0)
    k_lo = max(1, math.floor(total / 2.0 - half))
    ranks = np.array([k_lo, (total + 1) / 2.0, max(k_lo, total - k_lo + 1)], dtype=np.float64)
    lo = np.full(3, float(current_log[0] - baseline_log[-1]) - 1e-9)
    hi = np.full(3, float(current_log[-1] - baseline_log[0]) + 1e-9)
    # Up to about 1,000 samples a side a full count is cheap enough: bracketing would cost more.
    counts = _PairCounts(current_log, baseline_log, ranks) if total > _BRACKET_FROM else None
    while float((hi - lo).max()) > 1e-6:
        mid = (lo + hi) / 2.0
        if counts is not None:
            enough = counts.at_least(mid)
        else:
            # differences <= d: for each current x, the baseline values y >= x - d.
            idx = np.searchsorted(baseline_log, current_log[None, :] - mid[:, None], side="left")
            enough = n2 * n1 - idx.sum(axis=1) >= ranks
        hi = np.where(enough, mid, hi)
        lo = np.where(enough, lo, mid)
    return float(hi[1]), float(hi[0]), float(hi[2])


_BRACKET_FROM = 1_000 * 1_000
"""Pairs from which `_PairCounts` brackets the ranks instead of counting every pair at each step."""


class _PairCounts:
    """Whether at least `ranks[r]` differences `current - baseline` are at most `x`, where a pair counts
    when `baseline_j >= current_i - x` in floating point.

    Counting all pairs at one `x` is one binary search per current value; a bisection of twenty-odd
    steps over three ranks would pay that about seventy times. Instead, a few counts at points guessed
    from a subsample and then by Newton steps bracket each rank tightly, `a < x* <= b`. A step outside
    its bracket needs no count; one inside it counts only the pairs whose difference lies between `a`
    and `b`, and keeps the half that lies inside the narrowed bracket. Every answer is the exact
    count's, so the bisection takes the same steps as with a full count each time.
    """

    BAND = 32_000
    """Pairs between a rank's bracket ends few enough to keep and count directly. The Newton round
    narrows a bracket to a few times `BAND / 8` pairs as cheaply as to a few hundred thousand, and the
    bisection then steps through a band this small in microseconds: 8 ms at 20,000 samples a side,
    21 ms at 50,000 (22 and 35 with 400,000)."""

    def __init__(self, current: FloatArray, baseline: FloatArray, ranks: FloatArray):
        self.c, self.b, self.ranks = current, baseline, ranks
        n1, n2 = len(current), len(baseline)
        self.total = n1 * n2
        # Per rank: the bracket ends, their exact counts and their search positions.
        self.a = [-math.inf] * 3
        self.fa = [0] * 3
        self.pa = [np.full(n1, n2, dtype=np.intp)] * 3
        self.bx = [math.inf] * 3
        self.fb = [self.total] * 3
        self.pb = [np.zeros(n1, dtype=np.intp)] * 3
        self.band: list[tuple[FloatArray, FloatArray] | None] = [None] * 3
        if self.total > self.BAND:
            self._bracket()
        self._keep_bands()

    def _count(self, xs: Sequence[float]) -> None:
        """Count exactly at each point and narrow every rank's bracket with the result."""
        x = np.asarray(xs, dtype=np.float64)
        pos = np.searchsorted(self.b, self.c[None, :] - x[:, None], side="left")
        below = self.total - pos.sum(axis=1)
        for k in range(len(x)):
            for r in range(3):
                if below[k] >= self.ranks[r]:
                    if x[k] < self.bx[r]:
                        self.bx[r], self.fb[r], self.pb[r] = float(x[k]), int(below[k]), pos[k]
                elif x[k] > self.a[r]:
                    self.a[r], self.fa[r], self.pa[r] = float(x[k]), int(below[k]), pos[k]

    def _bracket(self) -> None:
        n1, n2 = len(self.c), len(self.b)
        # First guesses: the ranks' quantiles among the differences of evenly spaced order statistics.
        m = 200
        cs = self.c[np.linspace(0, n1 - 1, min(m, n1)).astype(np.intp)]
        bs = self.b[np.linspace(0, n2 - 1, min(m, n2)).astype(np.intp)]
        diffs = (cs[:, None] - bs[None, :]).ravel()
        kth = np.clip((self.ranks / self.total * (len(diffs) - 1)).astype(np.intp), 0, len(diffs) - 1)
        guesses = np.partition(diffs, kth)[kth]
        self._count([float(g) for g in guesses])
        points = {float(g): 0 for g in guesses}
        for _ in range(4):
            wide = [r for r in range(3) if self.fb[r] - self.fa[r] > self.BAND]
            if not wide:
                return
            new: list[float] = []
            for r in wide:
                a, b = self.a[r], self.bx[r]
                slope = self._slope(r)
                if slope <= 0:
                    return
                # Newton from the nearer exact end, then a step either side that the guess's error
                # (the curvature over the distance it moved, at least a few hundred pairs) should not
                # exceed.
                nearer_a = self.ranks[r] - self.fa[r] < self.fb[r] - self.ranks[r]
                if math.isfinite(a) and (not math.isfinite(b) or nearer_a):
                    guess = a + (self.ranks[r] - self.fa[r]) / slope
                    moved = self.ranks[r] - self.fa[r]
                else:
                    guess = b - (self.fb[r] - self.ranks[r]) / slope
                    moved = self.fb[r] - self.ranks[r]
                step = max(self.BAND / 8.0, 0.01 * moved) / slope
                new += [p for p in (guess - step, guess + step) if a < p < b]
            new = [p for p in dict.fromkeys(new) if p not in points]
            if not new:
                return
            self._count(new)
            points.update(dict.fromkeys(new, 0))

    def _slope(self, r: int) -> float:
        """Pairs per unit of difference near rank r: from the bracket's ends when both are counted,
        else from the two counted points around the ranks."""
        a, b = self.a[r], self.bx[r]
        if math.isfinite(a) and math.isfinite(b):
            return (self.fb[r] - self.fa[r]) / (b - a)
        lo = [(self.a[k], self.fa[k]) for k in range(3) if math.isfinite(self.a[k])]
        hi = [(self.bx[k], self.fb[k]) for k in range(3) if math.isfinite(self.bx[k])]
        known = sorted({*lo, *hi})
        if len(known) < 2 or known[-1][0] <= known[0][0]:
            return 0.0
        return (known[-1][1] - known[0][1]) / (known[-1][0] - known[0][0])

    def _keep_bands(self) -> None:
        n1 = len(self.c)
        for r in range(3):
            if self.fb[r] - self.fa[r] <= self.BAND:
                pa, pb = self.pa[r], self.pb[r]
                lengths = pa - pb
                rows = np.repeat(np.arange(n1), lengths)
                offsets = np.cumsum(lengths) - lengths
                cols = pb[rows] + (np.arange(len(rows)) - offsets[rows])
                self.band[r] = (self.c[rows], self.b[cols])
        del self.pa, self.pb

    def at_least(self, xs: FloatArray) -> npt.NDArray[np.bool_]:
        out = np.zeros(3, dtype=bool)
        for r in range(3):
            x = float(xs[r])
            if x <= self.a[r]:
                continue
            if x >= self.bx[r]:
                out[r] = True
                continue
            band = self.band[r]
            if band is None:
                pos = np.searchsorted(self.b, self.c - x, side="left")
                out[r] = self.total - int(pos.sum()) >= self.ranks[r]
                continue
            # Pairs between the ends that do not count at x yet: f(x) = f(b) - their number.
            later = band[1] < band[0] - x
            below = self.fb[r] - int(np.count_nonzero(later))
            out[r] = below >= self.ranks[r]
            if out[r]:
                self.bx[r], self.fb[r] = x, below
                self.band[r] = (band[0][~later], band[1][~later])
            else:
                self.a[r], self.fa[r] = x, below
                self.band[r] = (band[0][later], band[1][later])
        return out


def _subsample(values: FloatArray, limit: int, rng: np.random.Generator) -> FloatArray:
    """A seeded random subsample of a sorted array, still sorted."""
    if len(values) <= limit:
        return values
    return values[np.sort(rng.choice(len(values), size=limit, replace=False))]


def _log(values: FloatArray) -> FloatArray:
    return np.log(np.maximum(values, _FLOOR_MS))


def _se_from_interval(lo: float, hi: float) -> float:
    return (hi - lo) / (2.0 * Z_95)


def _log_quantile(sorted_values: FloatArray, q: float) -> tuple[float, float]:
    """log of the q-quantile and its standard error (from the order-statistic interval)."""
    lo, hi = quantile_interval(sorted_values, q)
    return math.log(max(quantile_sorted(sorted_values, q), _FLOOR_MS)), _se_from_interval(
        math.log(max(lo, _FLOOR_MS)), math.log(max(hi, _FLOOR_MS))
    )


def between_run_variance(estimates: Sequence[tuple[float, float]]) -> float:
    """DerSimonian-Laird tau^2: the variance between runs beyond what each run's own standard error
    explains. `estimates` are (value, standard error) per run; 0 for fewer than two runs."""
    if len(estimates) < 2:
        return 0.0
    y = np.array([e[0] for e in estimates])
    se = np.array([max(e[1], 1e-12) for e in estimates])
    w = 1.0 / se**2
    mean = float((w * y).sum() / w.sum())
    q = float((w * (y - mean) ** 2).sum())
    c = float(w.sum() - (w**2).sum() / w.sum())
    return max(0.0, (q - (len(y) - 1)) / c) if c > 0 else 0.0


def _run_estimates(runs: Sequence[FloatArray], q: float) -> list[tuple[float, float]]:
    return [_log_quantile(r, q) for r in runs if len(r) >= 2]


def _shift(
    metric: str,
    estimate: float,
    se_within: float,
    tau2: float,
    baseline_runs: int,
    values: tuple[float, float],
    settings: RegressionSettings,
) -> Shift:
    se = math.sqrt(se_within**2 + tau2 * (1.0 + 1.0 / baseline_runs))
    # No spread at all (every sample tied): any positive shift is certain.
    p = _norm_sf(estimate / se) if se > 0 else (0.0 if estimate > 1e-6 else 1.0)
    change = math.expm1(estimate)
    # alpha is per entry: each of its metrics is tested at alpha / their number (Bonferroni).
    regressed = p < settings.alpha / METRIC_COUNT and change >= settings.min_effect
    return Shift(
        metric=metric,
        baseline_value=values[0],
        current_value=values[1],
        change=change,
        low=math.expm1(estimate - Z_95 * se),
        high=math.expm1(estimate + Z_95 * se),
        p_value=p,
        regressed=regressed,
    )


def compare_samples(
    entry: str,
    current: FloatArray,
    baseline: FloatArray,
    settings: RegressionSettings,
    baseline_runs: Sequence[FloatArray] = (),
) -> RegressionResult:
    """Both arrays sorted ascending; `baseline` pools `baseline_runs` (each sorted) when several runs
    make the baseline, whose disagreement then widens every interval."""
    n1, n2 = len(current), len(baseline)
    k = max(1, len(baseline_runs))
    cur_med, base_med = quantile_sorted(current, 0.5), quantile_sorted(baseline, 0.5)
    cur_mean, base_mean = float(current.mean()), float(baseline.mean())
    if min(n1, n2) < settings.min_samples:
        rel = (cur_med - base_med) / base_med if base_med > 0 else None
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
            baseline_runs=k,
        )
    rng = np.random.default_rng(_SEED)
    cur_log = _log(_subsample(current, settings.max_samples, rng))
    base_log = _log(_subsample(baseline, settings.max_samples, rng))
    est, lo, hi = hodges_lehmann(cur_log, base_log)
    shifts = [
        _shift(
            "p50",
            est,
            _se_from_interval(lo, hi),
            between_run_variance(_run_estimates(baseline_runs, 0.5)),
            k,
            (base_med, cur_med),
            settings,
        )
    ]
    for q in TAIL_QUANTILES:
        c, c_se = _log_quantile(current, q)
        b, b_se = _log_quantile(baseline, q)
        shifts.append(
            _shift(
                f"p{round(q * 100)}",
                c - b,
                math.hypot(c_se, b_se),
                between_run_variance(_run_estimates(baseline_runs, q)),
                k,
                (quantile_sorted(baseline, q), quantile_sorted(current, q)),
                settings,
            )
        )
    median = shifts[0]
    regressed = any(s.regressed for s in shifts)
    status: Literal["pass", "fail", "warn"] = settings.severity if regressed else "pass"
    return RegressionResult(
        entry=entry,
        method="rank-shift",
        baseline_count=n2,
        current_count=n1,
        baseline_median=base_med,
        current_median=cur_med,
        baseline_mean=base_mean,
        current_mean=cur_mean,
        relative_change=median.change,
        effect_lower_bound=median.low,
        p_value=min(s.p_value for s in shifts),
        regressed=regressed,
        status=status,
        message=_message(shifts, settings, n1, n2, k),
        baseline_runs=k,
        interval_high=median.high,
        shifts=tuple(shifts),
    )


def _message(shifts: Sequence[Shift], settings: RegressionSettings, n1: int, n2: int, k: int) -> str:
    def one(s: Shift) -> str:
        return f"{s.metric} {s.change:+.1%} [{s.low:+.1%}, {s.high:+.1%}] p={s.p_value:.2g}"

    flagged = [s.metric for s in shifts if s.regressed]
    verdict = (
        f"slower: {', '.join(flagged)}"
        if flagged
        else f"no regression (needs p < {settings.alpha / METRIC_COUNT:.2g} and +{settings.min_effect:.0%})"
    )
    runs = f"{k} baseline runs" if k > 1 else "1 baseline run, between-run noise not estimated"
    return f"{verdict}; {'; '.join(one(s) for s in shifts)}; samples {n1} current, {n2} baseline ({runs})"


def _entry_aggregates(stats: RunStats, key: EntryKey) -> tuple[int, float, float]:
    e = stats.entries
    row = e[(e["request_type"] == key[0]) & (e["name"] == key[1])].iloc[0]
    return int(row["count"]), float(row["mean"]), float(row["median"])


def compare_runs(
    current: RunStats, baselines: Sequence[RunStats], settings: RegressionSettings
) -> tuple[RegressionResult, ...]:
    """One result per entry present in the current run and in at least one baseline (tokens/s excluded:
    a higher rate is not a slowdown). Entries with raw samples are compared on as many threads as there
    are cores: their searches and sorts run in numpy, outside the GIL."""
    with ThreadPoolExecutor(max_workers=min(os.cpu_count() or 1, 4)) as pool:
        results = _compare_entries(current, baselines, settings, pool)
        return tuple(r.result() if isinstance(r, Future) else r for r in results)


def _compare_entries(
    current: RunStats, baselines: Sequence[RunStats], settings: RegressionSettings, pool: ThreadPoolExecutor
) -> list[RegressionResult | Future[RegressionResult]]:
    results: list[RegressionResult | Future[RegressionResult]] = []
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
            runs = [r for r in raw if r is not None and len(r)]
            if runs and len(cur.sorted_values):
                pooled = runs[0] if len(runs) == 1 else np.sort(np.concatenate(runs))
                results.append(pool.submit(compare_samples, label, cur.sorted_values, pooled, settings, runs))
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
                baseline_runs=len(present),
            )
        )
    return results
