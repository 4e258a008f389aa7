"""The series the HTML report draws over time, from the exact record (or Locust's history CSV).

Every second of the run has a bin, from the run's start to its end, so a second in which no request
started reads as zero requests/s: a stall shows as a gap to zero, never as a straight line across it.
A run longer than `MAX_BINS` seconds gets wider bins. Per-bin percentiles come from at most
`MAX_SAMPLES` requests (a seeded random subsample of a bigger record), so a chart never costs a sort of
ten million rows; the per-bin maximum always comes from every request. Nothing here decides a
verdict: thresholds use `_stats`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis._load import RunData
from analysis._stats import EntryKey, RunStats
from compliance_loadtest.run_folder import REQUESTS_DIR

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MAX_BINS = 2_000
MAX_SAMPLES = 500_000
MAX_ENTRY_SAMPLES = 100_000
PERCENTILES: tuple[tuple[str, float], ...] = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))
ERROR_KINDS = 5


@dataclass(frozen=True)
class Timeline:
    """Per-bin series of one run; `seconds` is each bin's start in seconds since the run's start."""

    seconds: FloatArray
    width: float
    start: float
    """The run's start (epoch seconds): bin 0 begins here."""
    end: float
    rps: FloatArray
    fail_rps: FloatArray
    users: FloatArray | None
    percentiles: Mapping[str, FloatArray]
    """p50, p95, p99 and max of the response times of the requests started in each bin (NaN: none)."""
    errors: Mapping[str, FloatArray] = field(default_factory=dict)
    """Failures/s per kind of error (the most frequent kinds; the rest as `other`)."""
    source: str = "record"

    def __len__(self) -> int:
        return len(self.seconds)


@dataclass(frozen=True)
class _Bins:
    start: float
    width: float
    index: IntArray
    """Each record row's bin."""
    lengths: FloatArray
    """Each bin's length in seconds (the last one may be partial)."""


def _iso_seconds(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _span(run: RunData, stamps: FloatArray, ends: FloatArray) -> tuple[float, float]:
    """The run's start and end: run.json's when they enclose the record, else the record's own."""
    first, last = float(stamps.min()), float(ends.max())
    info = run.run_info
    start = _iso_seconds(info.started_at) if info is not None else None
    end = _iso_seconds(info.ended_at) if info is not None else None
    # run.json's times are the master's; a worker's clock or a late flush may lie outside them.
    start = first if start is None or start > first or first - start > 3600 else start
    end = last if end is None or end < last or end - last > 3600 else end
    return start, max(end, start + 1e-3)


def _bins(start: float, end: float, stamps: FloatArray) -> _Bins:
    width = float(max(1, math.ceil((end - start) / MAX_BINS)))
    n = max(1, math.ceil((end - start) / width - 1e-9))
    index = np.clip(((stamps - start) // width).astype(np.int64), 0, n - 1)
    starts = start + width * np.arange(n)
    lengths = np.minimum(width, end - starts).astype(np.float64)
    return _Bins(start, width, index, np.maximum(lengths, 1e-3))


def bin_quantiles(
    index: IntArray,
    values: FloatArray,
    n_bins: int,
    qs: Sequence[float],
    seed: int = 7,
    max_samples: int = MAX_SAMPLES,
) -> list[FloatArray]:
    """numpy 'higher' quantiles of `values` per bin (NaN for an empty bin), from a seeded subsample of
    at most `max_samples` values; the maximum (q = 1) always from every value, since a subsample would
    miss the one slow request a reader looks for."""
    keep = ~np.isnan(values)
    index, values = index[keep], values[keep]
    out = [np.full(n_bins, np.nan) for _ in qs]
    if not len(values):
        return out
    exact_max = None
    if len(values) > max_samples:
        if 1.0 in qs:
            exact_max = pd.Series(values).groupby(index).max()
        pick = np.sort(np.random.default_rng(seed).choice(len(values), max_samples, replace=False))
        index, values = index[pick], values[pick]
    order = np.lexsort((values, index))
    idx_s, val_s = index[order], values[order]
    uniq, first, counts = np.unique(idx_s, return_index=True, return_counts=True)
    for arr, q in zip(out, qs, strict=True):
        if q == 1.0 and exact_max is not None:
            arr[exact_max.index.to_numpy()] = exact_max.to_numpy()
        else:
            arr[uniq] = val_s[first + np.ceil(q * (counts - 1) - 1e-12).astype(np.int64)]
    return out


_VOLATILE = re.compile(r"0x[0-9a-f]+|[0-9a-f]{8,}(-[0-9a-f]{4,})*|\b\d{4,}\b", re.IGNORECASE)


def error_kind(message: str) -> str:
    """A failure's kind: its message with ids, addresses and long numbers replaced, cut to 60
    characters, so one cause is one series however many requests it hit."""
    text = _VOLATILE.sub("#", message.strip().splitlines()[0] if message.strip() else "unknown error")
    return text[:60]


def failed_errors(run: RunData) -> tuple[FloatArray, list[str]]:
    """Start time and error message of every failed request of the record. The analysis loads the
    record without its `error` column (ten million strings nobody needs for a verdict); the few failed
    rows' messages are read here, with a filter on `success`, when a chart needs them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    stamps: list[FloatArray] = []
    messages: list[str] = []
    for part in sorted((run.path / REQUESTS_DIR).glob("*.parquet")):
        try:
            if "error" not in pq.read_schema(part).names:
                continue
            table = pq.read_table(part, columns=["timestamp", "error"], filters=[("success", "==", False)])
        except (pa.ArrowException, OSError):
            continue  # the loader already vouched for the part; a chart never fails the analysis
        stamps.append(table.column("timestamp").to_numpy(zero_copy_only=False).astype(np.float64))
        messages += [str(m) if m is not None else "" for m in table.column("error").to_pylist()]
    return (np.concatenate(stamps) if stamps else np.array([], dtype=np.float64)), messages


def _aggregated_history(run: RunData) -> pd.DataFrame | None:
    """The `Aggregated` rows of Locust's stats history, one per timestamp in time order; None if none."""
    h = run.history
    if h is None or not len(h):
        return None
    agg = h[h["name"] == "Aggregated"].drop_duplicates("timestamp").sort_values("timestamp")
    return agg if len(agg) else None


def _users(run: RunData, start: float, n: int, width: float) -> FloatArray | None:
    agg = _aggregated_history(run)
    if agg is None:
        return None
    at = start + width * np.arange(n) + width / 2
    pos = np.searchsorted(agg["timestamp"].to_numpy(dtype=np.float64), at, side="right") - 1
    users = agg["users"].to_numpy(dtype=np.float64)
    return np.where(pos >= 0, users[np.clip(pos, 0, None)], 0.0)


def timeline(run: RunData, stats: RunStats) -> Timeline | None:
    """The run's series over time, or None when the run left neither a record nor a history."""
    rec = stats.record
    if rec is None or not len(rec):
        return _history_timeline(run)
    stamps = rec["timestamp"].to_numpy(dtype=np.float64)
    rt = rec["response_time_ms"].to_numpy(dtype=np.float64)
    ok = rec["success"].to_numpy(dtype=bool)
    start, end = _span(run, stamps, stamps + np.nan_to_num(rt) / 1000.0)
    b = _bins(start, end, stamps)
    n = len(b.lengths)
    counts = np.bincount(b.index, minlength=n).astype(np.float64)
    fails = np.bincount(b.index[~ok], minlength=n).astype(np.float64)
    qs = bin_quantiles(b.index, rt, n, [q for _, q in PERCENTILES])
    errors: dict[str, FloatArray] = {}
    if (~ok).any():
        fail_stamps, messages = failed_errors(run)
        if len(fail_stamps):
            index = _bins(start, end, fail_stamps).index
            kinds = pd.Series(messages).map(error_kind)
            top = list(kinds.value_counts().index[:ERROR_KINDS])
            for kind in top:
                rows = (kinds == kind).to_numpy()
                errors[str(kind)] = np.bincount(index[rows], minlength=n) / b.lengths
            rest = ~kinds.isin(top).to_numpy()
            if rest.any():
                errors["other"] = np.bincount(index[rest], minlength=n) / b.lengths
    return Timeline(
        seconds=b.width * np.arange(n, dtype=np.float64),
        width=b.width,
        start=start,
        end=end,
        rps=counts / b.lengths,
        fail_rps=fails / b.lengths,
        users=_users(run, start, n, b.width),
        percentiles={name: arr for (name, _), arr in zip(PERCENTILES, qs, strict=True)},
        errors=errors,
    )


def _history_timeline(run: RunData) -> Timeline | None:
    """From Locust's `_stats_history.csv` (one row a second while the run lasted): its rates are
    averages over the last seconds and its percentiles cumulative unless `--csv-full-history`."""
    agg = _aggregated_history(run)
    if agg is None:
        return None
    ts = agg["timestamp"].to_numpy(dtype=np.float64)
    pct = {}
    for name, col in (("p50", "p50"), ("p95", "p95"), ("p99", "p99"), ("max", "p100")):
        if col in agg:
            pct[name] = agg[col].to_numpy(dtype=np.float64)
    return Timeline(
        seconds=ts - ts[0],
        width=1.0,
        start=float(ts[0]),
        end=float(ts[-1]) + 1.0,
        rps=agg["rps"].to_numpy(dtype=np.float64),
        fail_rps=agg["fail_rps"].to_numpy(dtype=np.float64),
        users=agg["users"].to_numpy(dtype=np.float64),
        percentiles=pct,
        source="history",
    )


def entry_percentiles(stats: RunStats, tl: Timeline, key: EntryKey) -> Mapping[str, FloatArray] | None:
    """p50/p95/p99/max per bin of one entry, on the bins of `tl`; None without a record."""
    rec = stats.record
    idx = stats.indices.get(key)
    if rec is None or idx is None or not len(idx) or tl.source != "record":
        return None
    stamps = rec["timestamp"].to_numpy(dtype=np.float64)
    rt = rec["response_time_ms"].to_numpy(dtype=np.float64)
    start, end = tl.start, tl.end
    b = _bins(start, end, stamps[idx])
    qs = bin_quantiles(
        b.index, rt[idx], len(b.lengths), [q for _, q in PERCENTILES], seed=11, max_samples=MAX_ENTRY_SAMPLES
    )
    return {name: arr for (name, _), arr in zip(PERCENTILES, qs, strict=True)}


def stream_percentiles(stats: RunStats, tl: Timeline) -> Mapping[str, Mapping[str, FloatArray]]:
    """Time to first token and inter-token latency per bin (p50, p95) of every streamed reply in the
    record: `{"ttft": {"p50": ..., "p95": ...}, "itl": {...}}`; empty without stream rows."""
    rec = stats.record
    if rec is None or not len(rec) or "ttft_ms" not in rec or tl.source != "record":
        return {}
    stamps = rec["timestamp"].to_numpy(dtype=np.float64)
    rt = rec["response_time_ms"].to_numpy(dtype=np.float64)
    ttft = rec["ttft_ms"].to_numpy(dtype=np.float64)
    streamed = ~np.isnan(ttft)
    if not streamed.any():
        return {}
    b = _bins(tl.start, tl.end, stamps)
    n = len(b.lengths)
    out: dict[str, Mapping[str, FloatArray]] = {}
    sel = np.flatnonzero(streamed)
    p50, p95 = bin_quantiles(b.index[sel], ttft[sel], n, [0.5, 0.95])
    out["ttft"] = {"p50": p50, "p95": p95}
    if "tokens" in rec:
        tokens = rec["tokens"].to_numpy(dtype=np.float64)
        multi = np.flatnonzero(streamed & (np.nan_to_num(tokens) > 1))
        if len(multi):
            itl = (rt[multi] - ttft[multi]) / (tokens[multi] - 1)
            p50, p95 = bin_quantiles(b.index[multi], itl, n, [0.5, 0.95])
            out["itl"] = {"p50": p50, "p95": p95}
    return out
