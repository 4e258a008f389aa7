"""Benchmark: analyse an exact record of 10 million requests across 50 entries against a baseline of
the same size, in a child process, and print its wall time and peak memory against the targets
(< 30 s, < 4 GB).

    python bench/bench_analysis.py [--rows 10000000] [--entries 50] [--parts 20] [--keep DIR]

The record is written as the library writes it: parquet parts under `requests/`, one string column
per label (the analysis reads them back as categoricals, and only the columns it needs). The child
is `python -m analysis RUN --baseline BASE --report json`: loading, percentiles per entry, the
shipped thresholds plus per-entry p95/p99 rules, the regression comparison per entry (p50 shift on a
seeded subsample of at most 50,000 requests per side, p95/p99 on every sample), and the JSON report.
The current run is 10% slower on one entry in five (10 of 50), so the comparison has something to find.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# The writer's own schema (that module imports no Locust), so the synthetic record is the real layout.
from compliance_loadtest.plugin.record import SCHEMA as RECORD_SCHEMA

TARGET_SECONDS = 30.0
TARGET_PEAK_MB = 4096.0


THRESHOLDS = """
rules:
  - {id: p95, metric: p95, op: "<", value: 2s}
  - {id: p99, metric: p99, op: "<", value: 5s}
  - {id: p99_9, metric: p99.9, op: "<", value: 10s}
  - {id: failures, per: all, metric: failure_ratio, op: "<", value: 5%}
  - {id: goodput, per: all, metric: goodput, limits: {response_time_ms: 1000}, op: ">", value: 0.5}
"""


def labels(codes: np.ndarray, values: list[str]) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(values)).cast(pa.string())


def write_run(folder: Path, rows: int, entries: int, parts: int, seed: int, slowdown: float) -> None:
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
    per_part = rows // parts
    t0 = 1_790_000_000.0
    for p in range(parts):
        n = per_part if p < parts - 1 else rows - per_part * (parts - 1)
        e = rng.integers(0, entries, n)
        rt = medians[e] * factor[e] * np.exp(rng.normal(0.0, 0.6, n))
        ok = rng.random(n) > 0.01
        table = pa.table(
            {
                "timestamp": t0 + (p * per_part + np.arange(n)) / 20_000.0,
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
        pq.write_table(table, req / f"part-{p:06d}.parquet")
    (folder / "run.json").write_text(
        json.dumps({"ended_by": "normal", "complete": True, "workers": {"expected": 0, "lost": []}})
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--entries", type=int, default=50)
    ap.add_argument("--parts", type=int, default=20)
    ap.add_argument("--keep", type=Path, default=None, help="write the runs here and keep them")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-analysis-"))
    try:
        t = time.perf_counter()
        for name, seed, slowdown in (("baseline", 1, 0.0), ("current", 2, 0.10)):
            if not (root / name).exists():
                write_run(root / name, args.rows, args.entries, args.parts, seed, slowdown)
        took = time.perf_counter() - t
        print(f"wrote 2 x {args.rows:,} rows x {args.entries} entries in {took:.1f} s under {root}")
        (root / "thresholds.yaml").write_text(THRESHOLDS)
        cmd = [
            sys.executable, "-m", "analysis", str(root / "current"), "--baseline", str(root / "baseline"),
            "--thresholds", str(root / "thresholds.yaml"), "--report", "json", "--out", str(root / "out"),
        ]  # fmt: skip
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
        reports = list((root / "out").glob("*.json"))
        if proc.returncode not in (0, 1) or not reports:
            print(proc.stderr, file=sys.stderr)
            return 2
        report = json.loads(max(reports).read_text())
        flagged = sum(r["regressed"] for r in report["regressions"])
        print(
            f"analysis exit code {proc.returncode}: {report['summary']['total_requests']:,} requests, "
            f"{len(report['results']['entries'])} entries, {len(report['thresholds'])} threshold results, "
            f"{len(report['regressions'])} regression checks ({flagged} flagged)"
        )
        for label, got, target, unit in (
            ("wall time", wall, TARGET_SECONDS, "s"),
            ("peak RSS", peak_mb, TARGET_PEAK_MB, "MB"),
        ):
            print(
                f"{label:<10} {got:8.1f} {unit:<3} target < {target:.0f} {unit:<3} ratio {got / target:.2f}"
            )
        return 0 if wall < TARGET_SECONDS and peak_mb < TARGET_PEAK_MB else 1
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
