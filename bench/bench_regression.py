"""Benchmark: the power of the regression comparison, from simulated runs with known slowdowns.

    python bench/bench_regression.py [--repeats 200] [--rate 267] [--sigma 0.5] [--seed 1]

Each simulated run of one entry is lognormal latency (median 100 ms, log-sigma `--sigma`). A run of
`seconds` at 20 users holds `rate * seconds` samples per entry; the default rate, 267 per second per
entry, is what the issue measured on loopback (about 2,000 samples per entry in 15 s at 10 users),
doubled for 20 users: a 60-second 20-user run holds 16,000. Compared, each `--repeats` times with fresh
seeds, through the analysis's own `compare_samples` with the shipped settings (alpha 0.01, minimum
effect 5%):

- A/A: both runs from the same distribution; any verdict "regressed" is a false alarm.
- median slowdown s: every latency times (1 + s), so p50, p95 and p99 all move by s.
- p95 slowdown s: the log-sigma widened so that p95 moves by s and the median not at all (the tail
  spreads, which users feel first).
- a noisy machine: each run's latencies also times exp(N(0, 3%)), A/A and 10% slower, with one
  baseline run and with five (the between-run variance then enters the interval).

Prints detection rates with their 95% interval, the goals of the issue (>= 95% of 10% median and
>= 90% of 10% p95 slowdowns caught, <= 5% A/A false alarms, at the size of a 60-second 20-user run)
and whether each is met, then the smallest run length at which all three are met.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable

import numpy as np

from analysis import RegressionSettings, compare_samples

SETTINGS = RegressionSettings()
MEDIAN_MS = 100.0
GOAL_MEDIAN, GOAL_P95, GOAL_AA = 0.95, 0.90, 0.05
Z_P95 = 1.6448536269514722
RUN_NOISE = 0.03

Sampler = Callable[[np.random.Generator, int], np.ndarray]


def scale(s: float, sigma: float) -> Sampler:
    return lambda rng, n: np.sort(rng.lognormal(math.log(MEDIAN_MS * (1 + s)), sigma, n))


def tail(s: float, sigma: float) -> Sampler:
    """p95 times (1 + s), median unchanged: exp(mu + z95 * sigma') = (1 + s) exp(mu + z95 * sigma)."""
    wider = sigma + math.log1p(s) / Z_P95
    return lambda rng, n: np.sort(rng.lognormal(math.log(MEDIAN_MS), wider, n))


def rate_of(
    current: Sampler,
    baseline: Sampler,
    n: int,
    repeats: int,
    rng: np.random.Generator,
    runs: int = 1,
    noise: float = 0.0,
) -> tuple[float, dict[str, float]]:
    """The share of comparisons that said "regressed", overall and per metric."""
    hits = 0
    per_metric: dict[str, int] = {}
    for _ in range(repeats):
        base_runs = [baseline(rng, n) * math.exp(rng.normal(0, noise)) for _ in range(runs)]
        cur = current(rng, n) * math.exp(rng.normal(0, noise))
        pooled = np.sort(np.concatenate(base_runs))
        r = compare_samples("GET /x", cur, pooled, SETTINGS, base_runs if runs > 1 else ())
        hits += r.regressed
        for s in r.shifts:
            per_metric[s.metric] = per_metric.get(s.metric, 0) + s.regressed
    return hits / repeats, {m: c / repeats for m, c in per_metric.items()}


def interval(p: float, n: int) -> str:
    """Wilson 95% interval of a rate from n trials."""
    z = 1.96
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return f"[{max(0.0, centre - half):.1%}, {min(1.0, centre + half):.1%}]"


def line(label: str, rate: float, metrics: dict[str, float], repeats: int) -> str:
    by = " ".join(f"{m} {v:.1%}" for m, v in metrics.items())
    return f"  {label:<28} {rate:6.1%} {interval(rate, repeats):<16} ({by})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--rate", type=float, default=267.0, help="samples per second per entry at 20 users")
    ap.add_argument("--sigma", type=float, default=0.5, help="log-sigma of the simulated latency")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    # Each line as soon as it is measured, also into a file: the whole benchmark takes minutes.
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    rng = np.random.default_rng(args.seed)
    sig, reps = args.sigma, args.repeats
    started = time.perf_counter()
    print(
        f"regression power: lognormal latency, median {MEDIAN_MS:.0f} ms, log-sigma {sig}; "
        f"alpha {SETTINGS.alpha}, minimum effect {SETTINGS.min_effect:.0%}; {reps} repeats per cell"
    )
    goal_met: dict[int, bool] = {}
    for seconds in (60, 300):
        n = round(args.rate * seconds)
        print(f"\n{seconds} s at 20 users: {n} samples per entry and side   rate caught  95% interval")
        aa, aa_m = rate_of(scale(0, sig), scale(0, sig), n, reps, rng)
        print(line("A/A (false alarms)", aa, aa_m, reps))
        found = {}
        for kind, make in (("median", scale), ("p95", tail)):
            for s in (0.05, 0.10, 0.20):
                r, m = rate_of(make(s, sig), scale(0, sig), n, reps, rng)
                found[(kind, s)] = r
                print(line(f"{kind} +{s:.0%}", r, m, reps))
        ok = found[("median", 0.10)] >= GOAL_MEDIAN and found[("p95", 0.10)] >= GOAL_P95 and aa <= GOAL_AA
        goal_met[seconds] = ok
        print(
            f"  goal: median +10% caught >= {GOAL_MEDIAN:.0%} ({found[('median', 0.10)]:.1%}), "
            f"p95 +10% caught >= {GOAL_P95:.0%} ({found[('p95', 0.10)]:.1%}), "
            f"A/A <= {GOAL_AA:.0%} ({aa:.1%}): {'MET' if ok else 'NOT MET'}"
        )

    print("\nshortest run that meets all three goals (20 users):")
    smallest = None
    for seconds in (5, 10, 15, 20, 30, 45, 60):
        n = round(args.rate * seconds)
        aa, _ = rate_of(scale(0, sig), scale(0, sig), n, reps, rng)
        med, _ = rate_of(scale(0.10, sig), scale(0, sig), n, reps, rng)
        p95, _ = rate_of(tail(0.10, sig), scale(0, sig), n, reps, rng)
        ok = med >= GOAL_MEDIAN and p95 >= GOAL_P95 and aa <= GOAL_AA
        print(
            f"  {seconds:>3} s, {n:>6} samples: median +10% {med:6.1%}  p95 +10% {p95:6.1%}  A/A {aa:5.1%}"
            f"  {'met' if ok else 'not met'}"
        )
        if ok and smallest is None:
            smallest = seconds
    print(f"  smallest: {smallest} s" if smallest else "  not met within 60 s")

    n = round(args.rate * 60)
    print(f"\nnoisy machine: each run times exp(N(0, {RUN_NOISE:.0%})), {n} samples per run")
    for runs in (1, 5):
        aa, aa_m = rate_of(scale(0, sig), scale(0, sig), n, reps, rng, runs, RUN_NOISE)
        med, med_m = rate_of(scale(0.10, sig), scale(0, sig), n, reps, rng, runs, RUN_NOISE)
        print(line(f"A/A, {runs} baseline run(s)", aa, aa_m, reps))
        print(line(f"median +10%, {runs} baseline run(s)", med, med_m, reps))
    print(
        f"\n60 s at 20 users meets the goals: {'yes' if goal_met[60] else 'no'}; "
        f"wall time {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
