"""Benchmark: analyse an exact record of 1 and of 10 million requests across 50 entries against a
baseline of the same size, in a child process, and print its wall time and peak memory against the
goals (1M: <= 0.5 s; 10M: <= 3 s and <= 1 GB), median and spread over the rounds.

    python bench/bench_analysis.py [--sizes 1000000 10000000] [--parts 20] [--per-second 5000]
                                   [--rounds 3] [--entries 50] [--keep DIR]

The record is written as the library writes it (`record.PARQUET_OPTIONS`): parquet parts under
`requests/`, one string column per label (the analysis reads them back as categoricals, and only the
columns it needs). Each size is written as `--parts` large parts; the largest size is also written
as a run writes it (`record.part_interval_s`: a part a second for the first minute, then one every
ten seconds) at `--per-second` requests a second (10M at 5,000/s: 254 parts), where each part's fixed
cost shows. The child is `python -m analysis RUN --baseline BASE --report json`:
loading, percentiles per entry, the shipped thresholds plus per-entry p95/p99 rules, the regression
comparison per entry (p50 shift on a seeded subsample of at most 50,000 requests per side, p95/p99
on every sample), and the JSON report. The current run is 10% slower on one entry in five (10 of
50), so the comparison has something to find.
Each size first runs one unmeasured round, so every measured round finds the package's modules
compiled, as an installed package has them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# The writer's own schema (that module imports no Locust), so the synthetic record is the real layout.
from compliance_loadtest.plugin.record import PARQUET_OPTIONS, part_sizes
from compliance_loadtest.plugin.record import SCHEMA as RECORD_SCHEMA

# rows per run -> (wall seconds, peak MB) of the whole `python -m analysis` command, from the
# performance issue; a size without a memory goal has None there.
GOALS: dict[int, tuple[float | None, float | None]] = {1_000_000: (0.5, None), 10_000_000: (3.0, 1024.0)}


THRESHOLDS = """
rules:
  - {id: p95, metric: p95, op: "<", value: 2s}
  - {id: p99, metric: p99, op: "<", value: 5s}
  - {id: p99_9, metric: p99.9, op: "<", value: 10s}
  - {id: failures, per: all, metric: failure_ratio, op: "<", value: 5%}
  - {id: goodput, per: all, metric: goodput, limits: {response_time_ms: 1000}, op: ">", value: 0.5}
"""


# A finished run: the analysis calls a run.json without an end (exit_code, ended_at) a killed run.
RUN_JSON = {
    "started_at": "2026-09-21T12:00:00Z",
    "ended_at": "2026-09-21T12:08:20Z",
    "ended_by": "normal",
    "exit_code": 0,
    "complete": True,
    "workers": {"expected": 0, "lost": []},
}


def labels(codes: np.ndarray, values: list[str]) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(values)).cast(pa.string())


def write_run(folder: Path, sizes: list[int], entries: int, seed: int, slowdown: float) -> None:
    rng = np.random.default_rng(seed)
    kinds = ["GET", "POST", "PATCH", "SQL"]
    types = [kinds[i % len(kinds)] for i in range(entries)]
    names = [
        f"/api/endpoint-{i:02d}/[id]" if t != "SQL" else f"query {i:02d} (join)" for i, t in enumerate(types)
    ]
    groups = ["db" if t == "SQL" else "api" for t in types]
    medians = np.geomspace(5.0, 800.0, entries)
    factor = np.where(np.arange(entries) % 5 == 0, 1.0 + slowdown, 1.0)
    req = folder / "requests"
    req.mkdir(parents=True)
    t0 = 1_790_000_000.0
    first = 0
    for p, n in enumerate(sizes):
        e = rng.integers(0, entries, n)
        rt = medians[e] * factor[e] * np.exp(rng.normal(0.0, 0.6, n))
        ok = rng.random(n) > 0.01
        table = pa.table(
            {
                "timestamp": t0 + (first + np.arange(n)) / 20_000.0,
                "request_type": labels(e, types),
                "name": labels(e, names),
                "response_time_ms": rt,
                "response_length": np.full(n, 512, dtype=np.int64),
                "success": ok,
                "error": np.where(ok, "", "HTTPError('500 Server Error')"),
                "user_class": pa.array(["BenchUser"] * n),
                "worker": pa.array(["local"] * n),
                "group": labels(e, groups),
                "ttft_ms": np.full(n, np.nan),
                "tokens": np.full(n, np.nan),
                "intended_start": np.full(n, np.nan),
                "tags": pa.array([""] * n),
            },
            schema=RECORD_SCHEMA,
        )
        pq.write_table(table, req / f"part-{p:06d}.parquet", **PARQUET_OPTIONS)
        first += n
    (folder / "run.json").write_text(json.dumps(RUN_JSON))


def even_sizes(rows: int, parts: int) -> list[int]:
    per_part = rows // parts
    return [per_part] * (parts - 1) + [rows - per_part * (parts - 1)]


def analyse_once(root: Path) -> tuple[float, float, int, str]:
    """One `python -m analysis` child: its wall time (s), its own peak RSS (MB, from `wait4`), its exit
    code and its stderr."""
    cmd = [
        sys.executable, "-m", "analysis", str(root / "current"), "--baseline", str(root / "baseline"),
        "--thresholds", str(root / "thresholds.yaml"), "--report", "json", "--out", str(root / "out"),
    ]  # fmt: skip
    # As installed, the command runs from compiled modules: a shell that forbids writing them
    # (PYTHONDONTWRITEBYTECODE) would add the compilation of every module of the package to each round.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - t
        child.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return wall, usage.ru_maxrss / 1024.0, child.returncode, err.read()


def start_up_once() -> float:
    """Wall time (s) of a child that only starts Python and imports what `python -m analysis` imports
    (numpy, pyarrow, pandas and the package): the part of each round no record size changes."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import analysis.__main__"], check=True, env=env)
    return time.perf_counter() - t


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} (min {min(values):.2f}, max {max(values):.2f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=sorted(GOALS), help="rows per run")
    ap.add_argument("--entries", type=int, default=50)
    ap.add_argument("--parts", type=int, default=20, help="large parts per run")
    ap.add_argument(
        "--per-second",
        type=int,
        default=5000,
        help="requests a second of the largest size written as a run writes it (0: not written)",
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep", type=Path, default=None, help="write the runs here and keep them")
    args = ap.parse_args()
    root_all = args.keep or Path(tempfile.mkdtemp(prefix="bench-analysis-"))
    cases = [(rows, even_sizes(rows, args.parts), f"{args.parts} parts") for rows in args.sizes]
    if args.per_second > 0:
        rows = max(args.sizes)
        sizes = part_sizes(rows, args.per_second)
        layout = f"written as a run at {args.per_second:,} requests/s writes it: {len(sizes):,} parts"
        cases.append((rows, sizes, layout))
    met = True
    try:
        for rows, sizes, layout in cases:
            root = root_all / f"{rows}-{len(sizes)}"
            t = time.perf_counter()
            for name, seed, slowdown in (("baseline", 1, 0.0), ("current", 2, 0.10)):
                if not (root / name).exists():
                    write_run(root / name, sizes, args.entries, seed, slowdown)
            (root / "thresholds.yaml").write_text(THRESHOLDS)
            took = time.perf_counter() - t
            print(
                f"{rows:,} rows + a {rows:,}-row baseline, {args.entries} entries, {layout} "
                f"(written in {took:.1f} s)"
            )
            walls, peaks, starts = [], [], []
            analyse_once(root)  # compiles the package's modules and warms the page cache
            for i in range(args.rounds):
                wall, peak, code, stderr = analyse_once(root)
                starts.append(start_up_once())
                reports = list((root / "out").glob("*.json"))
                if code not in (0, 1) or not reports:
                    print(stderr, file=sys.stderr)
                    return 2
                report = json.loads(max(reports).read_text())
                flagged = sum(r["regressed"] for r in report["regressions"])
                print(
                    f"  round {i + 1}: {wall:.2f} s, peak {peak:.0f} MB; exit {code}, "
                    f"{report['summary']['total_requests']:,} requests, {len(report['regressions'])} "
                    f"regression checks ({flagged} flagged)"
                )
                walls.append(wall)
                peaks.append(peak)
            rest = [w - s for w, s in zip(walls, starts, strict=True)]
            print(
                f"  of which start-up and imports alone (python -c 'import analysis.__main__', after "
                f"each round): {spread(starts)} s; the rest: {spread(rest)} s"
            )
            goal_s, goal_mb = GOALS.get(rows, (None, None))
            for label, values, goal, unit in (
                ("wall time", walls, goal_s, "s"),
                ("peak RSS", peaks, goal_mb, "MB"),
            ):
                if goal is None:
                    print(f"  {label}: {spread(values)} {unit}")
                    continue
                ok = statistics.median(values) <= goal
                met = met and ok
                verdict = "met" if ok else "below goal"
                print(f"  {label}: {spread(values)} {unit}; goal <= {goal:g} {unit}: {verdict}")
        return 0 if met else 1
    finally:
        if args.keep is None:
            shutil.rmtree(root_all, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
