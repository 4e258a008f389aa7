"""What DbBenchmarkUser measures, on SQLite and PostgreSQL side by side in one run.

    python bench/bench_benchmarks.py [--rounds 5] [--warmup 1] [--postgres URL]

Runs `locust -f locust_scenarios DbBenchmarkUser` headless once on a fresh SQLite file and once in a
fresh schema of the machine's PostgreSQL, with the same seed and configuration, and prints from each
run's `benchmark_results.json` the median of every benchmark, the PostgreSQL / SQLite ratio, how the
same query grows with the data (10k and 100k rows against 1k), and what its index buys (without /
with). Not a test: nothing here asserts timings; it prints medians and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOCUST = str(Path(sys.executable).with_name("locust"))
DEFAULT_PG = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def run(db_url: str, work: Path, rounds: int, warmup: int) -> dict[str, dict[str, Any]]:
    """One DbBenchmarkUser run on `db_url`; its benchmarks by name."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "performance_config.json"
    config.write_text(json.dumps({"warmup_iterations": warmup, "benchmark_rounds": rounds}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CGPT_", "LOCUST_"))}
    cmd = [
        LOCUST, "-f", str(ROOT / "locust_scenarios"), "DbBenchmarkUser", "--headless", "-u", "1", "-r", "1",
        "-t", "300s", "-H", "http://127.0.0.1:9", "--db-url", db_url, "--run-dir", str(work / "run"),
        "--benchmark-config", str(config), "--scenario-seed", "1", "--only-summary",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=work, timeout=600)
    if proc.returncode != 0:
        sys.exit(f"locust exited with {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    results = json.loads((work / "run" / "benchmark_results.json").read_text())
    return {b["name"]: b for b in results["benchmarks"]}


def median_ms(bench: dict[str, Any] | None) -> float:
    return float(bench["stats"]["median"]) * 1000 if bench else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--postgres", default=DEFAULT_PG, help="server URL; a schema is made and dropped in it")
    args = p.parse_args()

    import psycopg

    schema = "bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        with tempfile.TemporaryDirectory() as tmp:
            db_file = Path(tmp) / "bench.db"
            sqlite3.connect(db_file).close()
            sqlite = run(str(db_file), Path(tmp) / "sqlite", args.rounds, args.warmup)
            sep = "&" if "?" in args.postgres else "?"
            pg = run(
                f"{args.postgres}{sep}options=-csearch_path%3D{schema}",
                Path(tmp) / "pg",
                args.rounds,
                args.warmup,
            )
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    print(f"DbBenchmarkUser, {args.rounds} rounds after {args.warmup} warm-up, median per round (ms)\n")
    print(f"{'benchmark':<24}{'SQLite':>10}{'PostgreSQL':>12}{'PG/SQLite':>11}")
    for name in sorted(set(sqlite) | set(pg)):
        s, g = median_ms(sqlite.get(name)), median_ms(pg.get(name))
        print(f"{name:<24}{s:>10.2f}{g:>12.2f}{g / s:>10.1f}x")
    print()
    for label, runs in (("SQLite", sqlite), ("PostgreSQL", pg)):
        base = median_ms(runs.get("db.volume_1k"))
        growth = ", ".join(
            f"{size}: {median_ms(runs.get(f'db.volume_{size}')) / base:.1f}x" for size in ("10k", "100k")
        )
        speedup = median_ms(runs.get("db.index_without")) / median_ms(runs.get("db.index_with"))
        lines = runs["db.index_with"]["extra_info"]["query_plan"].splitlines()
        plan = next((ln.strip(" ->") for ln in lines if "Scan" in ln or "SEARCH" in ln), lines[0]).strip()
        print(
            f"{label}: filtered top 50 against 1k rows: {growth}; range query without / with index "
            f"on 100k rows: {speedup:.0f}x (plan with: {plan})"
        )


if __name__ == "__main__":
    main()
