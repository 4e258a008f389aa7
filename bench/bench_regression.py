"""Benchmark: the power of the regression comparison, from simulated samples and from real short runs.

    python bench/bench_regression.py [--repeats 200] [--samples-60s 2000] [--sigma 0.5] [--seed 1]
                                     [--pairs 5] [--run-seconds 10] [--users 8] [--delay-ms 20]

Every comparison goes through the analysis's own `compare_samples` with the shipped settings (alpha
0.01, minimum effect 5%), at the sample sizes of the library's normal mix (`locust --headless -u 20 -r 5
-t 60s`, measured): its busiest entry, GET /api/evidence, holds 2,000 samples after the 4-second spawn
phase of a 60-second run, and at that rate about 10,600 in a 5-minute run. Entries with fewer requests
need proportionally longer runs.

Simulated: each run of one entry is lognormal latency (median 100 ms, log-sigma `--sigma`), compared
`--repeats` times with fresh seeds:

- A/A: both runs from the same distribution; any verdict "regressed" is a false alarm.
- median slowdown s: every latency times (1 + s), so p50, p95 and p99 all move by s.
- p95 slowdown s: the log-sigma widened so that p95 moves by s and the median not at all (the tail
  spreads, which users feel first).
- a noisy machine: each run's latencies also times exp(N(0, 3%)), A/A and 10% slower, with one
  baseline run and with five (the between-run variance then enters the interval).
- the shortest run, at the busiest entry's rate, that meets all three goals.

Real: the reference backend started five times with a seeded lognormal delay (`CGPT_DELAY_MEDIAN_MS`,
`CGPT_DELAY_SIGMA`): as set, median and p95 each 10% and 20% slower. Each round runs, in an order
rotated round by round, two runs of the unchanged backend and one of each slower one: short headless
Locust runs of `--users` users without think time on `GET /health`, with the library's exact record.
Each run's samples (spawn phase left out, as the analysis does) are cut to the sizes above by a seeded
random subsample and compared with the round's first unchanged run (A/A: the second with the first).
Prints, per condition, the share caught next to the simulated one, the pairs and samples per side, and
the change the runs really showed (median and min-max over the pairs: the delay comes on top of the
backend's and Locust's own few milliseconds, which dilute it a little).

Goals of the issue, at the size of a 60-second 20-user run: >= 95% of 10% median slowdowns and >= 90%
of 10% p95 slowdowns caught, <= 5% A/A false alarms. Each is printed with "met" or "below goal".
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis import (
    RegressionSettings,
    compare_samples,
    compute_stats,
    load_run,
    quantile_sorted,
    without_warmup,
)
from compliance_loadtest.backend import BackendProcess, launch_backend

SETTINGS = RegressionSettings()
MEDIAN_MS = 100.0
GOAL_MEDIAN, GOAL_P95, GOAL_AA = 0.95, 0.90, 0.05
Z_P95 = 1.6448536269514722
RUN_NOISE = 0.03
# Measured: `locust --headless -u 20 -r 5 -t 60s` (the normal mix, the seven user classes, against the
# embedded backend on two shared cores): its busiest entry, GET /api/evidence, made 2,156 requests,
# 2,000 after the 4-second spawn phase the analysis leaves out. Longer runs collect at its rate.
SAMPLES_60S = 2000
SPAWN_S = 4

Sampler = Callable[[np.random.Generator, int], np.ndarray]


def scale(s: float, sigma: float) -> Sampler:
    return lambda rng, n: np.sort(rng.lognormal(math.log(MEDIAN_MS * (1 + s)), sigma, n))


def wider(s: float, sigma: float) -> float:
    """The log-sigma that puts p95 (1 + s) times higher with the median unchanged:
    exp(mu + z95 * sigma') = (1 + s) exp(mu + z95 * sigma)."""
    return sigma + math.log1p(s) / Z_P95


def tail(s: float, sigma: float) -> Sampler:
    return lambda rng, n: np.sort(rng.lognormal(math.log(MEDIAN_MS), wider(s, sigma), n))


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
    return f"  {label:<32} {rate:6.1%} {interval(rate, repeats):<16} ({by})"


def verdict(ok: bool) -> str:
    return "met" if ok else "below goal"


def goals_line(median: float, p95: float, aa: float) -> str:
    ok = median >= GOAL_MEDIAN and p95 >= GOAL_P95 and aa <= GOAL_AA
    return (
        f"  goal: median +10% caught >= {GOAL_MEDIAN:.0%} ({median:.1%}, {verdict(median >= GOAL_MEDIAN)}), "
        f"p95 +10% caught >= {GOAL_P95:.0%} ({p95:.1%}, {verdict(p95 >= GOAL_P95)}), "
        f"A/A <= {GOAL_AA:.0%} ({aa:.1%}, {verdict(aa <= GOAL_AA)}): {verdict(ok)}"
    )


# --- simulated ------------------------------------------------------------------------------------

SLOWDOWNS = (("median", 0.10), ("median", 0.20), ("p95", 0.10), ("p95", 0.20))


def simulated(args: argparse.Namespace, rng: np.random.Generator) -> dict[tuple[int, str], float]:
    """The power table at 60 s and 5 min; returns the rates by (samples, condition label)."""
    sig, reps = args.sigma, args.repeats
    rates: dict[tuple[int, str], float] = {}
    print(
        f"SIMULATED: lognormal latency, median {MEDIAN_MS:.0f} ms, log-sigma {sig}; "
        f"alpha {SETTINGS.alpha}, minimum effect {SETTINGS.min_effect:.0%}; {reps} repeats per cell"
    )
    for seconds in (60, 300):
        n = sizes(args)[seconds]
        print(f"\n{seconds} s at 20 users: {n} samples per entry and side   rate caught  95% interval")
        aa, aa_m = rate_of(scale(0, sig), scale(0, sig), n, reps, rng)
        rates[(n, "A/A")] = aa
        print(line("A/A (false alarms)", aa, aa_m, reps))
        for kind, s in (("median", 0.05), *SLOWDOWNS[:2], ("p95", 0.05), *SLOWDOWNS[2:]):
            make = scale if kind == "median" else tail
            r, m = rate_of(make(s, sig), scale(0, sig), n, reps, rng)
            rates[(n, f"{kind} +{s:.0%}")] = r
            print(line(f"{kind} +{s:.0%}", r, m, reps))
        print(goals_line(rates[(n, "median +10%")], rates[(n, "p95 +10%")], aa))
    return rates


def shortest(args: argparse.Namespace, rng: np.random.Generator) -> int | None:
    """The shortest run (20 users, the busiest entry's rate) that meets all three goals."""
    rate = args.samples_60s / (60 - SPAWN_S)
    print(
        f"\nshortest run that meets all three goals (20 users, {rate:.1f} samples/s of the busiest entry "
        f"after a {SPAWN_S} s spawn phase):"
    )
    for seconds in (30, 60, 90, 120, 150, 180, 240, 300):
        n = samples_in(seconds, args)
        aa, _ = rate_of(scale(0, args.sigma), scale(0, args.sigma), n, args.repeats, rng)
        med, _ = rate_of(scale(0.10, args.sigma), scale(0, args.sigma), n, args.repeats, rng)
        p95, _ = rate_of(tail(0.10, args.sigma), scale(0, args.sigma), n, args.repeats, rng)
        ok = med >= GOAL_MEDIAN and p95 >= GOAL_P95 and aa <= GOAL_AA
        print(
            f"  {seconds:>3} s, {n:>6} samples: median +10% {med:6.1%}  p95 +10% {p95:6.1%}  A/A {aa:5.1%}"
            f"  {verdict(ok)}"
        )
        if ok:
            return seconds
    return None


def noisy(args: argparse.Namespace, rng: np.random.Generator) -> None:
    n, sig, reps = sizes(args)[60], args.sigma, args.repeats
    print(f"\nnoisy machine: each run times exp(N(0, {RUN_NOISE:.0%})), {n} samples per run")
    for runs in (1, 5):
        aa, aa_m = rate_of(scale(0, sig), scale(0, sig), n, reps, rng, runs, RUN_NOISE)
        med, med_m = rate_of(scale(0.10, sig), scale(0, sig), n, reps, rng, runs, RUN_NOISE)
        print(line(f"A/A, {runs} baseline run(s)", aa, aa_m, reps))
        print(line(f"median +10%, {runs} baseline run(s)", med, med_m, reps))


# --- real runs ------------------------------------------------------------------------------------

PROBE = """
import locust_scenarios  # noqa: F401  (the library's plugin: --run-dir and the exact record)
from locust import FastHttpUser, constant, task


class Probe(FastHttpUser):
    wait_time = constant(0)

    @task
    def health(self):
        self.client.get("/health")
"""
ENTRY = ("GET", "/health")


@dataclass(frozen=True)
class Backend:
    label: str
    median_ms: float
    sigma: float


def backends(args: argparse.Namespace) -> list[Backend]:
    m, sig = args.delay_ms, args.sigma
    return [
        Backend("unchanged", m, sig),
        Backend("median +10%", m * 1.1, sig),
        Backend("median +20%", m * 1.2, sig),
        Backend("p95 +10%", m, wider(0.10, sig)),
        Backend("p95 +20%", m, wider(0.20, sig)),
    ]


def real_run(url: str, folder: Path, args: argparse.Namespace) -> np.ndarray:
    """One headless Locust run against `url`; the sorted response times of GET /health after the
    spawn phase, read from its exact record by the analysis."""
    cmd = [
        sys.executable, "-m", "locust", "-f", "probe.py", "--headless", "-u", str(args.users),
        "-r", str(args.users), "-t", f"{args.run_seconds}s", "--host", url, "--run-dir", folder.name,
        "--only-summary", "--stop-timeout", "2", "--loglevel", "WARNING",
    ]  # fmt: skip
    r = subprocess.run(cmd, cwd=folder.parent, capture_output=True, text=True, timeout=args.run_seconds + 90)
    if not (folder / "run.json").exists():
        raise SystemExit(f"the run in {folder} left no run.json (exit {r.returncode}):\n{r.stderr[-3000:]}")
    run, _ = without_warmup(load_run(folder))
    values = compute_stats(run, with_timeline=False).response[ENTRY].sorted_values
    assert values is not None
    return values


def cut(values: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """A seeded random subsample of n of a run's sorted samples, still sorted."""
    return values[np.sort(rng.choice(len(values), size=n, replace=False))]


def spread(xs: list[float], fmt: str = "{:+.1%}") -> str:
    return f"{fmt.format(float(np.median(xs)))} ({fmt.format(min(xs))} to {fmt.format(max(xs))})"


def real(
    args: argparse.Namespace, sim: dict[tuple[int, str], float], rng: np.random.Generator
) -> dict[str, float] | None:
    """The real rounds; the rates caught at the 60-second size (None when no run holds that many)."""
    kinds = backends(args)
    print(
        f"\nREAL: reference backend with a lognormal delay, median {args.delay_ms:g} ms, log-sigma "
        f"{args.sigma}; {args.pairs} rounds of 6 runs ({args.users} users, {args.run_seconds} s each, "
        f"GET /health, no think time), order rotated each round"
    )
    labels = ["A", "A'", *(b.label for b in kinds[1:])]
    runs: dict[str, list[np.ndarray]] = {label: [] for label in labels}
    with tempfile.TemporaryDirectory(prefix="bench-regression-") as tmp:
        root = Path(tmp)
        (root / "probe.py").write_text(PROBE)
        started: list[BackendProcess] = []
        try:
            for i, b in enumerate(kinds):
                settings = {
                    "CGPT_DELAY_MEDIAN_MS": f"{b.median_ms:.6f}",
                    "CGPT_DELAY_SIGMA": f"{b.sigma:.6f}",
                    "CGPT_DELAY_SEED": str(args.seed * 100 + i),
                }
                started.append(launch_backend(data_dir=root / f"backend-{i}", settings=settings))
            url = {b.label: p.url for b, p in zip(kinds, started, strict=True)}
            url["A"] = url["A'"] = url["unchanged"]
            for r in range(args.pairs):
                order = labels[r % len(labels) :] + labels[: r % len(labels)]
                for label in order:
                    folder = root / f"round{r}-run{labels.index(label)}"
                    runs[label].append(real_run(url[label], folder, args))
                sizes_now = ", ".join(f"{k} {len(runs[k][-1])}" for k in labels)
                print(f"  round {r + 1}: samples per run {sizes_now}")
        finally:
            for p in started:
                p.stop()

    counts = [len(v) for vs in runs.values() for v in vs]
    print(f"  samples per run after the spawn phase: {spread([float(c) for c in counts], '{:.0f}')}")
    caught_10: dict[str, float] = {}
    for seconds, n in sizes(args).items():
        if n > min(counts):
            print(f"\n  {seconds} s at 20 users ({n} samples): more than the shortest run holds, skipped")
            continue
        print(
            f"\n  {seconds} s at 20 users: {n} samples per side, {args.pairs} pairs"
            f"{'':<6}caught  simulated   change p50 / p95 really shown, median (min to max)"
        )
        for label in labels[1:]:
            current = "A'" if label == "A'" else label
            hits, p50s, p95s = 0, [], []
            for r in range(args.pairs):
                cur, base = cut(runs[current][r], n, rng), cut(runs["A"][r], n, rng)
                hits += compare_samples("GET /health", cur, base, SETTINGS).regressed
                p50s.append(quantile_sorted(cur, 0.5) / quantile_sorted(base, 0.5) - 1)
                p95s.append(quantile_sorted(cur, 0.95) / quantile_sorted(base, 0.95) - 1)
            name = "A/A" if label == "A'" else label
            rate = hits / args.pairs
            if seconds == 60:
                caught_10[name] = rate
            print(
                f"  {name:<14} {hits}/{args.pairs} = {rate:6.1%}   {sim.get((n, name), math.nan):6.1%}"
                f"      p50 {spread(p50s)}  p95 {spread(p95s)}"
            )
        if seconds == 60:
            print(goals_line(caught_10["median +10%"], caught_10["p95 +10%"], caught_10["A/A"]))
    return caught_10 or None


def samples_in(seconds: float, args: argparse.Namespace) -> int:
    """Samples of the busiest entry in a run of `seconds` at 20 users, spawn phase left out."""
    per_second: float = args.samples_60s / (60 - SPAWN_S)
    return round(per_second * (seconds - SPAWN_S))


def sizes(args: argparse.Namespace) -> dict[int, int]:
    return {60: samples_in(60, args), 300: samples_in(300, args)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=200, help="simulated comparisons per cell")
    ap.add_argument(
        "--samples-60s",
        type=int,
        default=SAMPLES_60S,
        help="samples of one entry in a 60-second 20-user run (default: the busiest entry of the normal "
        f"mix, measured: {SAMPLES_60S})",
    )
    ap.add_argument("--sigma", type=float, default=0.5, help="log-sigma of the latency, simulated and real")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pairs", type=int, default=5, help="rounds of real runs (0: none)")
    ap.add_argument("--run-seconds", type=int, default=10, help="length of each real run")
    ap.add_argument("--users", type=int, default=8, help="users of each real run")
    ap.add_argument("--delay-ms", type=float, default=20.0, help="median delay of the unchanged backend")
    args = ap.parse_args()
    # Each line as soon as it is measured, also into a file: the whole benchmark takes minutes.
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    sim = simulated(args, rng)
    fastest = shortest(args, rng)
    print(f"  shortest: {fastest} s" if fastest else "  not met within 300 s")
    noisy(args, rng)
    found = real(args, sim, rng) if args.pairs else None
    n = sizes(args)[60]
    print(f"\n60 s at 20 users ({n} samples), simulated:")
    print(goals_line(sim[(n, "median +10%")], sim[(n, "p95 +10%")], sim[(n, "A/A")]))
    if found is not None:
        print(f"60 s at 20 users ({n} samples), real runs ({args.pairs} pairs):")
        print(goals_line(found["median +10%"], found["p95 +10%"], found["A/A"]))
    print(f"wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
