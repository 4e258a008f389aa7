"""The history of many runs: per entry and metric, the trend with its change points, and whether the
newest run starts a regression.

A slow drift passes every pairwise test; a series of runs shows it. Per entry, each metric (p50, p95,
p99, failure ratio, rps, and for AI entries the median time to first token and inter-token latency)
is one value per run, in the runs' start order. Change points come from E-divisive means (Matteson
and James 2014; the method of Apache Otava / Hunter and of MongoDB's performance CI): the split that
maximises the energy distance between the runs before and after it, kept when a permutation test
finds it significant, repeated inside each side. Latency and rate metrics are compared on the log
scale, so a step of +10% weighs the same at 5 ms as at 500 ms.

Whether the newest run starts a regression is the pairwise comparison of `_regression.py`: its raw
samples against the runs of the last stable stretch before it (since the last change point, at most
`BASELINE_RUNS` runs), several runs per side, so the between-run variance widens the interval.

Nothing here writes a file; `history_command` is the thin command line over `history`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis._load import RunData, load_run, resolve_run
from analysis._regression import RegressionResult, compare_samples
from analysis._stats import EntryKey, RunStats, compute_stats, entry_label
from analysis._svg import Series, line_chart
from analysis._thresholds import RegressionSettings, load_thresholds
from analysis.errors import EXIT_FAIL, EXIT_PASS, UsageError
from compliance_loadtest import run_folder as rf
from compliance_loadtest.redact import redact_text

FloatArray = npt.NDArray[np.float64]
METRICS = ("p50", "p95", "p99", "failure_ratio", "rps", "ttft_p50", "itl_p50")
LOWER_IS_WORSE = frozenset({"rps"})
LOG_SCALE = frozenset({"p50", "p95", "p99", "rps", "ttft_p50", "itl_p50"})
MIN_CHANGE_POINT_RUNS = 4
"""Values of a series below which no change point is looked for: a split needs two on each side."""
BASELINE_RUNS = 10
"""The newest run is compared with at most this many runs of the stretch before it."""
FAILURE_STEP = 0.01
"""A failure ratio step counts as worse from one percentage point up (a relative step of 0 is
undefined)."""


@dataclass(frozen=True)
class ChangePoint:
    index: int
    """The first run of the new stretch (0-based, in start order)."""
    run: str
    before: float
    after: float
    """Medians of the metric over the stretches before and after."""
    change: float
    """Relative change of the medians (failure ratio: the difference)."""
    p_value: float
    worse: bool


@dataclass(frozen=True)
class Trend:
    entry: str
    metric: str
    values: tuple[float | None, ...]
    """One per run of the history; None where the run has no value for it."""
    change_points: tuple[ChangePoint, ...]


@dataclass(frozen=True)
class History:
    runs: tuple[str, ...]
    started_at: tuple[str | None, ...]
    trends: tuple[Trend, ...]
    newest: tuple[RegressionResult, ...]
    """The newest run against the stable stretch before it, per entry with raw samples."""

    @property
    def regressed(self) -> tuple[RegressionResult, ...]:
        return tuple(r for r in self.newest if r.status == "fail")

    @property
    def exit_code(self) -> int:
        return EXIT_FAIL if self.regressed else EXIT_PASS


# --------------------------------------------------------------------------------------------------
# Finding runs


def is_run_folder(path: Path) -> bool:
    return path.is_dir() and any(
        (path / name).exists()
        for name in (
            rf.RUN_JSON,
            rf.REQUESTS_DIR,
            rf.LOCUST_JSON,
            rf.locust_csv(rf.STATS_CSV_SUFFIX),
            rf.BENCHMARK_RESULTS_JSON,  # the benchmarks' baseline of `--benchmark-compare`
        )
    )


def find_runs(paths: Sequence[Path | str], leave_out: Path | str | None = None) -> list[Path]:
    """Each path is a run folder, or a folder holding run folders at any depth (CI artifacts as the
    workflow stores them: one folder per run); a Locust --csv prefix passes through as given. Each run
    is listed once, however many of the paths lead to it.

    `leave_out` is the run being analysed when the paths are its baselines: a folder of runs that holds
    it (the artifacts folder it was written into) gives the others, and a path that is that run is an
    error, as a run compared with itself can show no regression."""
    skip = _identity(leave_out) if leave_out is not None else None
    found: dict[tuple[Path, str | None], Path] = {}
    for given in paths:
        p = Path(given)
        if is_run_folder(p) or not p.is_dir():
            key = _identity(p)
            if key == skip:
                raise UsageError("is the run being analysed: give --baseline an earlier run", file=p)
            found.setdefault(key, p)
            continue
        inside = sorted(d for d in p.rglob("*") if is_run_folder(d))
        # A run folder's own subfolders (requests/, report/) are not runs of their own.
        runs = [d for d in inside if not any(o in d.parents for o in inside)]
        if not runs:
            raise UsageError(
                "is not a run folder and holds none (no run.json, requests/, locust_stats.csv or "
                "benchmark_results.json)",
                file=p,
            )
        others = {key: d for d in runs if (key := _identity(d)) != skip}
        if not others:
            raise UsageError(
                "holds no run but the one being analysed: give --baseline an earlier run", file=p
            )
        for key, d in others.items():
            found.setdefault(key, d)
    return list(found.values())


def _identity(run: Path | str) -> tuple[Path, str | None]:
    """What makes two spellings of a run the same run: its folder, resolved, and its CSV prefix."""
    folder, prefix = resolve_run(run)
    return folder.resolve(), prefix


def _start_order(runs: Sequence[RunData]) -> list[RunData]:
    """By the start time in run.json when every run has one, else in the order given."""
    starts = [r.run_info.started_at if r.run_info is not None else None for r in runs]
    if all(s is not None for s in starts):
        return [r for _, r in sorted(zip(starts, runs, strict=True), key=lambda t: str(t[0]))]
    return list(runs)


# --------------------------------------------------------------------------------------------------
# E-divisive means


def _split_statistics(
    x: FloatArray, min_size: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], FloatArray]:
    """For every stretch x[i:j] (the ordinary splits are i = 0 or j = len, the others a stretch in the
    middle against the rest, as circular binary segmentation does): Q = k (m - k) / m times the energy
    distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| between the stretch and the rest, from 2-D prefix sums
    of the distance matrix (O(m^2) for all of them)."""
    m = len(x)
    d = np.abs(x[:, None] - x[None, :])
    p = np.zeros((m + 1, m + 1))
    p[1:, 1:] = d.cumsum(0).cumsum(1)
    i, j = np.triu_indices(m + 1, 1)
    k = j - i
    keep = (k >= min_size) & (m - k >= min_size)
    i, j, k = i[keep], j[keep], k[keep]
    o = m - k
    inside = p[j, j] - p[i, j] - p[j, i] + p[i, i]
    rows = p[j, m] - p[i, m]
    across = rows - inside
    outside = p[m, m] - 2 * rows + inside
    energy = 2 * across / (k * o) - inside / (k * (k - 1)) - outside / (o * (o - 1))
    return i, j, k * o / m * energy


def e_divisive(
    values: Sequence[float] | FloatArray,
    significance: float = 0.05,
    min_size: int = 2,
    permutations: int = 199,
    seed: int = 1,
) -> list[tuple[int, float]]:
    """Change points of a series as (index of the first value after the change, p-value), in order.

    Hierarchical: the best split over all current stretches is tested by permuting the values of its
    stretch (`permutations` times, seeded); significant splits are kept and the search goes on, the
    first non-significant one ends it.
    """
    x = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    bounds = [0, len(x)]
    found: list[tuple[int, float]] = []
    while True:
        best: tuple[float, int, int, list[int]] | None = None
        for a, b in itertools.pairwise(bounds):
            if b - a < 2 * min_size:
                continue
            i, j, q = _split_statistics(x[a:b], min_size)
            n = int(np.argmax(q))
            if best is None or q[n] > best[0]:
                cuts = [a + int(c) for c in (i[n], j[n]) if 0 < c < b - a]
                best = (float(q[n]), a, b, cuts)
        if best is None or best[0] <= 0:
            return sorted(found)
        q_obs, a, b, cuts = best
        segment = x[a:b].copy()
        exceed = 0
        for _ in range(permutations):
            rng.shuffle(segment)
            exceed += float(_split_statistics(segment, min_size)[2].max()) >= q_obs - 1e-12
        p = (exceed + 1) / (permutations + 1)
        if p >= significance:
            return sorted(found)
        found += [(c, p) for c in cuts]
        bounds = sorted({*bounds, *cuts})


# --------------------------------------------------------------------------------------------------
# Series per entry and metric


def _metric(stats: RunStats, key: EntryKey, metric: str) -> float | None:
    row = stats.rows.get(key)
    if row is None:
        return None
    if metric in ("ttft_p50", "itl_p50"):
        dist = (stats.ttft if metric == "ttft_p50" else stats.itl).get(key)
        v = dist.quantile(0.5) if dist is not None else None
    else:
        v = row.get({"p50": "median"}.get(metric, metric))
    if v is None or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def _trend(
    entry: str, metric: str, values: Sequence[float | None], runs: Sequence[str], settings: RegressionSettings
) -> Trend:
    where = [i for i, v in enumerate(values) if v is not None and (metric not in LOG_SCALE or v > 0)]
    present = np.array([values[i] for i in where], dtype=np.float64)
    scaled = np.log(present) if metric in LOG_SCALE else present
    points = []
    cuts = e_divisive(scaled) if len(present) >= MIN_CHANGE_POINT_RUNS else []
    edges = [0, *(c for c, _ in cuts), len(present)]
    for n, (cut, p) in enumerate(cuts):
        before = float(np.median(present[edges[n] : cut]))
        after = float(np.median(present[cut : edges[n + 2]]))
        if metric == "failure_ratio":
            change = after - before
            worse = change >= FAILURE_STEP
        else:
            change = after / before - 1 if before > 0 else math.inf
            worse = (
                change <= -settings.min_effect if metric in LOWER_IS_WORSE else change >= settings.min_effect
            )
        index = where[cut]
        points.append(ChangePoint(index, runs[index], before, after, change, p, worse))
    return Trend(entry, metric, tuple(values), tuple(points))


def history(runs: Sequence[RunData], settings: RegressionSettings | None = None) -> History:
    """The trends of every entry over `runs` (ordered by their start) and the newest run's verdict."""
    if len(runs) < 2:
        raise UsageError(f"a history needs at least two runs, got {len(runs)}", key="RUNS")
    settings = settings or RegressionSettings()
    ordered = _start_order(runs)
    labels = [r.label for r in ordered]
    stats = [compute_stats(r, keep_record=False, with_timeline=False) for r in ordered]
    keys = list(dict.fromkeys(k for s in stats for k in s.key_list()))
    trends = []
    newest: list[RegressionResult] = []
    for key in keys:
        label = entry_label(key)
        for metric in METRICS:
            values = [_metric(s, key, metric) for s in stats]
            if sum(v is not None for v in values) >= 2:
                trends.append(_trend(label, metric, values, labels, settings))
        result = _newest_against_stretch(label, key, stats, settings)
        if result is not None:
            newest.append(result)
    started = tuple(r.run_info.started_at if r.run_info is not None else None for r in ordered)
    return History(tuple(labels), started, tuple(trends), tuple(newest))


def _newest_against_stretch(
    label: str, key: EntryKey, stats: Sequence[RunStats], settings: RegressionSettings
) -> RegressionResult | None:
    def samples(s: RunStats) -> FloatArray | None:
        d = s.response.get(key)
        return d.sorted_values if d is not None and d.kind == "exact" and d.count else None

    current = samples(stats[-1])
    if current is None:
        return None
    earlier = [(i, v) for i, s in enumerate(stats[:-1]) if (v := samples(s)) is not None]
    if not earlier:
        return None
    medians = [float(np.log(max(np.median(v), 1e-3))) for _, v in earlier]
    cuts = e_divisive(medians) if len(medians) >= MIN_CHANGE_POINT_RUNS else []
    start = cuts[-1][0] if cuts else 0
    stretch = [v for _, v in earlier[start:]][-BASELINE_RUNS:]
    pooled = np.sort(np.concatenate(stretch))
    return compare_samples(label, current, pooled, settings, stretch if len(stretch) > 1 else ())


# --------------------------------------------------------------------------------------------------
# Reports and the command line


def history_document(h: History) -> dict[str, Any]:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        if isinstance(v, str):
            return redact_text(v)
        return v

    doc: dict[str, Any] = clean(
        {
            "runs": [{"run": r, "started_at": s} for r, s in zip(h.runs, h.started_at, strict=True)],
            "trends": [asdict(t) for t in h.trends],
            "newest": [asdict(r) for r in h.newest],
            "verdict": {
                "exit_code": h.exit_code,
                "newest_run_regressed": [r.entry for r in h.regressed],
            },
        }
    )
    return doc


def change_points_summary(h: History) -> str:
    """How many change points the history has, how many worse; when none, why there can be none."""
    points = [c for t in h.trends for c in t.change_points]
    if points:
        worse = sum(c.worse for c in points)
        return f"{len(points)} change point(s), {worse} of them worse"
    if len(h.runs) < MIN_CHANGE_POINT_RUNS:
        return (
            f"no change points: looking for one needs at least {MIN_CHANGE_POINT_RUNS} runs of an "
            f"entry, and there are {len(h.runs)}"
        )
    return "no change points: no entry's trend steps significantly (p < 0.05) across these runs"


def to_history_html(h: History) -> str:
    newest = h.runs[-1]
    verdict = (
        f"the newest run starts a regression ({len(h.regressed)} of {len(h.newest)} entries)"
        if h.regressed
        else "the newest run starts no regression"
    )
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Run history</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse}td,th{border:1px solid #cbd5e1;padding:4px 8px;font-size:13px}"
        ".fail{background:#fee2e2}.muted{color:#64748b}</style></head><body>",
        f"<h1>Run history: {escape(verdict)}</h1>",
        f"<p class='muted'>{len(h.runs)} runs, oldest first; newest {escape(redact_text(newest))}. "
        "Change points by E-divisive means (permutation test, p &lt; 0.05); the 'stretch median' line is the "
        "median of each stretch between change points.</p>",
        "<h2>The newest run against the stable stretch before it</h2><table>",
        "<tr><th>entry</th><th>verdict</th></tr>",
    ]
    for r in h.newest:
        cls = " class='fail'" if r.status == "fail" else ""
        parts.append(
            f"<tr{cls}><td>{escape(redact_text(r.entry))}</td><td>{escape(redact_text(r.message))}</td></tr>"
        )
    parts.append("</table><h2>Change points</h2>")
    if any(t.change_points for t in h.trends):
        parts.append(
            "<table><tr><th>entry</th><th>metric</th><th>at run</th><th>before</th><th>after</th>"
            "<th>change</th><th>p</th></tr>"
        )
        for t in h.trends:
            for c in t.change_points:
                cls = " class='fail'" if c.worse else ""
                change = f"{c.change:+.3f}" if t.metric == "failure_ratio" else f"{c.change:+.1%}"
                parts.append(
                    f"<tr{cls}><td>{escape(redact_text(t.entry))}</td><td>{t.metric}</td>"
                    f"<td>{c.index + 1}: {escape(redact_text(c.run))}</td><td>{c.before:.4g}</td>"
                    f"<td>{c.after:.4g}</td><td>{change}</td><td>{c.p_value:.2g}</td></tr>"
                )
        parts.append("</table>")
    else:
        parts.append(f"<p class='muted'>{escape(change_points_summary(h), quote=False)}</p>")
    parts.append("<h2>Trends</h2>")
    for t in h.trends:
        xs = [float(i + 1) for i, v in enumerate(t.values) if v is not None]
        ys = [float(v) for v in t.values if v is not None]
        steps = _stretch_medians(t)
        series = [Series(t.metric, xs, ys), Series("stretch median", xs, steps)]
        title = redact_text(f"{t.entry}: {t.metric} by run")
        parts.append(line_chart(title, series, y_label=t.metric, x_label="run"))
    parts.append("</body></html>")
    return "\n".join(parts)


def _stretch_medians(t: Trend) -> list[float]:
    present = [(i, v) for i, v in enumerate(t.values) if v is not None]
    cuts = [
        0,
        *(next(n for n, (i, _) in enumerate(present) if i == c.index) for c in t.change_points),
        len(present),
    ]
    out: list[float] = []
    for a, b in itertools.pairwise(cuts):
        m = float(np.median([v for _, v in present[a:b]]))
        out += [m] * (b - a)
    return out


def _free_path(folder: Path, name: str) -> Path:
    stem, suffix = name.split(".", 1)
    path, n = folder / name, 1
    while path.exists():
        path, n = folder / f"{stem}-{n}.{suffix}", n + 1
    return path


def history_command(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="compliance-analysis history",
        description="Trends and change points over many runs, and whether the newest run starts a "
        "regression. Exit 0 no, 1 yes, 2 bad input.",
    )
    p.add_argument("runs", metavar="RUN", nargs="+", help="run folders, or folders holding run folders")
    p.add_argument(
        "--out",
        metavar="DIR",
        default=".",
        help="folder for history.json and history.html (default: the current folder)",
    )
    p.add_argument("--thresholds", metavar="FILE", default=None, help="its regression block decides")
    args = p.parse_args(argv)
    settings = load_thresholds(args.thresholds).regression
    h = history([load_run(r) for r in find_runs(args.runs)], settings)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in (
            ("history.json", json.dumps(history_document(h), indent=2)),
            ("history.html", to_history_html(h)),
        ):
            path = _free_path(out, name)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
            print(f"wrote {path}")
    except OSError as exc:
        raise UsageError(
            f"cannot write the history: {exc.strerror or exc}", file=exc.filename or out
        ) from None
    for r in h.regressed:
        print(redact_text(f"regression in the newest run: {r.entry}: {r.message}"))
    print(f"{len(h.runs)} runs; {change_points_summary(h)}")
    if not h.regressed:
        print("the newest run starts no regression")
    return h.exit_code
