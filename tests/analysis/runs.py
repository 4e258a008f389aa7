"""Handmade run folders for the analysis tests: an exact record written as the library writes it
(parquet parts with the documented schema), resource samples, run.json, Locust-style CSV."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

# The writer's own schema; `plugin.record` imports no Locust, so this process stays unpatched by gevent.
from compliance_loadtest.plugin.record import SCHEMA as RECORD_SCHEMA
from compliance_loadtest.run_folder import RESOURCE_COLUMN_NAMES, RunInfo, default_group

START = 1_790_000_000.0


@dataclass
class Entry:
    """One stat entry of a synthetic record: `values` are its response times in ms, in request order."""

    request_type: str
    name: str
    values: Sequence[float]
    failures: int = 0
    group: str = ""
    tags: str = ""
    ttft: Sequence[float] | None = None
    tokens: Sequence[float] | None = None
    start_lag_ms: Sequence[float] | None = None
    """Arrival-rate runs: how late each request started after its intended start."""
    extra: Mapping[str, Any] = field(default_factory=dict)


def record_frame(entries: Sequence[Entry], duration_s: float = 10.0, start: float = START) -> pd.DataFrame:
    frames = []
    for e in entries:
        n = len(e.values)
        ok = np.ones(n, dtype=bool)
        ok[: e.failures] = False
        group = e.group or default_group(e.request_type)
        frames.append(
            pd.DataFrame(
                {
                    "timestamp": start + np.linspace(0.0, duration_s, n, endpoint=False),
                    "request_type": e.request_type,
                    "name": e.name,
                    "response_time_ms": np.asarray(e.values, dtype=np.float64),
                    "response_length": np.full(n, 100, dtype=np.int64),
                    "success": ok,
                    "error": np.where(ok, "", "HTTPError('500 Server Error')"),
                    "user_class": "TestUser",
                    "worker": "local",
                    "group": group,
                    "ttft_ms": np.asarray(e.ttft, dtype=np.float64)
                    if e.ttft is not None
                    else np.full(n, np.nan),
                    "tokens": np.asarray(e.tokens, dtype=np.float64)
                    if e.tokens is not None
                    else np.full(n, np.nan),
                    "intended_start": np.full(n, np.nan)
                    if e.start_lag_ms is None
                    else start
                    + np.linspace(0.0, duration_s, n, endpoint=False)
                    - np.asarray(e.start_lag_ms) / 1000,
                    "tags": e.tags,
                }
            )
        )
    return pd.concat(frames, ignore_index=True).sort_values("timestamp", kind="stable").reset_index(drop=True)


def write_record(run_dir: Path, frame: pd.DataFrame, parts: int = 2) -> None:
    """The record as parquet parts (`requests/part-NNNNNN.parquet`), as the library flushes it."""
    folder = run_dir / "requests"
    folder.mkdir(parents=True, exist_ok=True)
    for i, chunk in enumerate(np.array_split(np.arange(len(frame)), parts)):
        part = frame.iloc[chunk].reset_index(drop=True)
        table = pa.Table.from_pandas(part, schema=RECORD_SCHEMA, preserve_index=False)
        pq.write_table(table, folder / f"part-{i:06d}.parquet")


def write_resources(
    run_dir: Path, target_rss: Sequence[float], target_cpu: Sequence[float], loadgen_cpu: float = 20.0
) -> None:
    rows = [",".join(RESOURCE_COLUMN_NAMES)]
    for i, (rss, cpu) in enumerate(zip(target_rss, target_cpu, strict=True)):
        ts = START + i
        rows.append(f"{ts},target,local,4242,{rss},{cpu},8,12")
        rows.append(f"{ts},load-generator,local,4343,80.0,{loadgen_cpu},4,9")
    (run_dir / "resources.csv").write_text("\n".join(rows) + "\n")


def write_run_json(run_dir: Path, **overrides: Any) -> dict[str, Any]:
    """A finished local run's run.json as the library writes it (`RunInfo.to_json`), keys overridden."""
    info = RunInfo(
        started_at="2026-09-21T14:13:20+00:00",
        ended_at="2026-09-21T14:13:30+00:00",
        ended_by="normal",
        exit_code=0,
        host="http://127.0.0.1:8000",
        user_classes=("TestUser",),
        locust_version="2.47.0",
        role="local",
        options={"users": 2, "run_time": 10},
        complete=True,
    ).to_json()
    info.update(overrides)
    (run_dir / "run.json").write_text(json.dumps(info))
    return info


def lognormal(n: int, median_ms: float, sigma: float = 0.5, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return median_ms * np.exp(rng.normal(0.0, sigma, n))


def simple_run(run_dir: Path, entries: Sequence[Entry], resources: bool = True, **run_info: Any) -> Path:
    write_record(run_dir, record_frame(entries))
    if resources:
        write_resources(run_dir, [200.0, 210.0, 220.0, 230.0], [30.0, 40.0, 50.0, 40.0])
    write_run_json(run_dir, **run_info)
    return run_dir


STATS_HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,"
    "Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,"
    "99.99%,100%"
)


def write_stats_csv(run_dir: Path, rows: Sequence[str], prefix: str = "locust") -> Path:
    path = run_dir / f"{prefix}_stats.csv"
    path.write_text("\n".join([STATS_HEADER, *rows]) + "\n")
    return path
