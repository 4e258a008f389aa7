"""Per-entry statistics of a run, from the best source the run left.

Sources, best first: the exact request record (every response time, exact percentiles), Locust's
`--json-file` histograms (response times rounded to about two significant digits), Locust's
`_stats.csv` percentile columns (only the percentiles Locust was asked to report), and
`benchmark_results.json` (pytest-benchmark statistics; exact percentiles only if raw data was saved).

Streams: time to first token, inter-token latency and tokens per second come, in the exact record, from
the rows of whole streamed replies (`ttft_ms` and `tokens` set, request type not `LLM`) and nowhere else;
without the record, the `LLM ... time to first token` and `... inter-token latency` entries stand in.

Percentile definition for exact samples: numpy's "higher" method, i.e. the sorted sample at index
ceil(q * (n - 1)). It is always a response time that was actually observed, never an interpolation
between two, and at least a share q of the requests took no longer than it, so "p95 < 800 ms" held on
the report means at least 95% of the requests really finished within 800 ms. Histogram percentiles use
Locust's own rule (the bucket reached after int(n * q) requests), so they match Locust's reports.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis._load import RunData
from compliance_loadtest.run_folder import default_group

FloatArray = npt.NDArray[np.float64]
EntryKey = tuple[str, str]
SourceKind = Literal["exact", "histogram", "csv", "benchmark"]

PERCENTILE_METHOD = "higher"
TIMELINE_SAMPLES = 500_000
TIMELINE_BINS = 20_000
SOURCE_LABELS: Mapping[str, str] = {
    "exact": "exact request record (numpy 'higher': an observed sample, at index ceil(q*(n-1)))",
    "histogram": "Locust --json-file histograms (response times rounded to ~2 significant digits)",
    "csv": "Locust _stats.csv percentile columns (only the percentiles Locust reported)",
    "benchmark": "benchmark_results.json (pytest-benchmark statistics)",
}

# The request type of the measures derived from a streamed reply (docs/run-folder.md): an `LLM` row
# is never itself a stream, whatever an older writer left in its `ttft_ms` and `tokens`.
DERIVED_TYPE = "LLM"
# What an entry's "response time" field measures, from the stat names of docs/run-folder.md; an
# older run's `tokens/s` entry is a rate, kept out of every response-time rule and aggregate.
MEASURE_SUFFIXES = (
    ("time to first token", "ttft"),
    ("inter-token latency", "itl"),
    ("tokens/s", "tokens_per_s"),
)


def measure_of(name: str) -> str:
    low = name.lower()
    for suffix, measure in MEASURE_SUFFIXES:
        if low.endswith(suffix):
            return measure
    return "response_time"


def entry_label(key: EntryKey) -> str:
    return f"{key[0]} {key[1]}".strip()


@dataclass(frozen=True)
class Distribution:
    """The values of one measure of one entry, in whichever form the source gives them."""

    kind: SourceKind
    sorted_values: FloatArray | None = None
    bucket_values: FloatArray | None = None
    bucket_counts: npt.NDArray[np.int64] | None = None
    percentiles: Mapping[float, float] = field(default_factory=dict)
    count: int = 0

    def quantile(self, q: float) -> float | None:
        """The q-quantile (0..1), or None when the source cannot give this one."""
        if self.count == 0:
            return None
        if self.sorted_values is not None:
            return quantile_sorted(self.sorted_values, q)
        if self.bucket_values is not None and self.bucket_counts is not None:
            return histogram_quantile(self.bucket_values, self.bucket_counts, q)
        for p, v in self.percentiles.items():
            if math.isclose(p, q, abs_tol=1e-9):
                return v
        return None

    def share_at_most(self, limit: float) -> float | None:
        if self.count == 0:
            return None
        if self.sorted_values is not None:
            return float(np.searchsorted(self.sorted_values, limit, side="right")) / self.count
        if self.bucket_values is not None and self.bucket_counts is not None:
            return float(self.bucket_counts[self.bucket_values <= limit].sum()) / self.count
        return None


def quantile_sorted(values: FloatArray, q: float) -> float:
    """numpy's 'higher' quantile of an already sorted array, in O(1)."""
    n = len(values)
    return float(values[min(n - 1, math.ceil(q * (n - 1) - 1e-12))])


def histogram_quantile(values: FloatArray, counts: npt.NDArray[np.int64], q: float) -> float:
    """Locust's rule (stats.calculate_response_time_percentile) on a histogram sorted by value."""
    n = int(counts.sum())
    target = int(n * q)
    # Walking down from the largest bucket, the answer is the first bucket after which at most
    # `target` requests remain; i.e. the smallest value whose cumulative count exceeds target.
    cum = np.cumsum(counts)
    idx = int(np.searchsorted(cum, target, side="right"))
    return float(values[min(idx, len(values) - 1)])


@dataclass(frozen=True)
class RunStats:
    """One run's entries (a DataFrame, one row per request type + name) and their distributions."""

    entries: pd.DataFrame
    response: Mapping[EntryKey, Distribution]
    ttft: Mapping[EntryKey, Distribution]
    itl: Mapping[EntryKey, Distribution]
    tokens_per_s: Mapping[EntryKey, Distribution]
    percentile_source: SourceKind | None
    total_count: int
    total_failures: int
    duration_s: float | None
    timeline: pd.DataFrame
    record: pd.DataFrame | None = None
    indices: Mapping[EntryKey, npt.NDArray[np.intp]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    extras: Mapping[EntryKey, Mapping[str, float]] = field(default_factory=dict)
    """Numeric measures benchmarks reported in benchmark_results.json (`extra_info`), per BENCH entry."""
    corrected: Mapping[EntryKey, Distribution] = field(default_factory=dict)
    """Arrival-rate runs: latency corrected for coordinated omission,
    `(timestamp - intended_start) * 1000 + response_time_ms`, per entry."""

    def key_list(self) -> list[EntryKey]:
        return list(zip(self.entries["request_type"], self.entries["name"], strict=True))

    @cached_property
    def rows(self) -> Mapping[EntryKey, Mapping[str, Any]]:
        """Each entry's row as a dict, looked up by (request type, name)."""
        return {
            (str(r["request_type"]), str(r["name"])): {str(k): v for k, v in r.items()}
            for r in self.entries.to_dict("records")
        }


ENTRY_COLUMNS = [
    "request_type",
    "name",
    "group",
    "tags",
    "measure",
    "source",
    "count",
    "failures",
    "failure_ratio",
    "mean",
    "median",
    "min",
    "max",
    "p95",
    "p99",
    "rps",
]


def compute_stats(run: RunData, keep_record: bool = True, with_timeline: bool = True) -> RunStats:
    """Statistics per entry from the best source present (see the module docstring)."""
    notes: list[str] = []
    if run.record is not None and len(run.record):
        st = _from_record(run.record, keep_record)
    elif run.record is not None:
        # The record is the source even when none of its requests counts (all of them started within
        # the warm-up): Locust's outputs would bring back the requests the warm-up left out.
        st = _empty()
    elif run.locust_json is not None:
        st = _from_locust_json(run.locust_json)
    elif run.stats is not None:
        st = _from_stats_csv(run.stats)
    else:
        st = _empty()
    if (
        run.record is None
        and run.locust_json is None
        and run.stats is not None
        and st.percentile_source == "csv"
    ):
        notes.append("percentiles from Locust's CSV columns only: other percentiles cannot be evaluated")
    if run.stats is not None and st.percentile_source in ("exact", "histogram"):
        agg = run.stats[run.stats["name"] == "Aggregated"]
        csv_total = int(agg["count"].iloc[0]) if len(agg) else int(run.stats["count"].sum())
        if csv_total != st.total_count:
            better = "exact record" if st.percentile_source == "exact" else "locust.json"
            notes.append(
                f"locust_stats.csv counts {csv_total} requests, the {better} {st.total_count}: "
                "Locust rewrites its CSV every second, not at shutdown, so its last second can be "
                f"missing; the {better} is used"
            )
    bench = _from_benchmarks(run.benchmarks) if run.benchmarks is not None and len(run.benchmarks) else None
    timeline = _timeline(run, st) if with_timeline else pd.DataFrame()
    entries = st.entries
    response = dict(st.response)
    source = st.percentile_source
    if bench is not None:
        # Benchmark rounds are also BENCH requests of the exact record: the record's samples win.
        extra = bench.entries[
            [
                (rt, n) not in response
                for rt, n in zip(bench.entries["request_type"], bench.entries["name"], strict=True)
            ]
        ]
        if len(extra):
            entries = pd.concat([entries, extra], ignore_index=True) if len(entries) else extra
            response.update({k: v for k, v in bench.response.items() if k not in response})
        source = source or "benchmark"
    if len(entries):
        # Locust's own order (stats.sort_stats): by name, then request type.
        entries = entries.sort_values(["name", "request_type"], kind="stable")
    return RunStats(
        entries=entries.reset_index(drop=True),
        response=response,
        ttft=st.ttft,
        itl=st.itl,
        tokens_per_s=st.tokens_per_s,
        percentile_source=source,
        total_count=st.total_count,
        total_failures=st.total_failures,
        duration_s=st.duration_s,
        timeline=timeline,
        record=st.record,
        indices=st.indices,
        notes=(*st.notes, *notes),
        corrected=st.corrected,
        extras=(
            {
                ("BENCH", str(n)): dict(x)
                for n, x in zip(run.benchmarks["name"], run.benchmarks["extra"], strict=True)
            }
            if run.benchmarks is not None
            else {}
        ),
    )


def _empty() -> RunStats:
    return RunStats(
        entries=pd.DataFrame(columns=ENTRY_COLUMNS),
        response={},
        ttft={},
        itl={},
        tokens_per_s={},
        percentile_source=None,
        total_count=0,
        total_failures=0,
        duration_s=None,
        timeline=pd.DataFrame(),
    )


def _entries_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=ENTRY_COLUMNS)
    frame["failure_ratio"] = np.where(
        frame["count"] > 0, frame["failures"] / frame["count"].clip(lower=1), 0.0
    )
    return frame


def _from_record(record: pd.DataFrame, keep_record: bool) -> RunStats:
    ts = record["timestamp"].to_numpy(dtype=np.float64)
    rt = record["response_time_ms"].to_numpy(dtype=np.float64)
    ok = record["success"].to_numpy(dtype=bool)
    codes, keys, counts = _entry_codes(record)
    n_entries = len(counts)
    # Rows grouped by entry (a stable radix sort of small integers), then each entry's response times
    # sorted in place: one copy of the column in all, and exact percentiles.
    order = np.argsort(codes, kind="stable")
    ends = np.cumsum(counts)
    starts = ends - counts
    by_entry = _gather(rt, order)
    _sort_segments(by_entry, starts, ends)
    fails = np.bincount(codes[~ok], minlength=n_entries)
    tags = _labels_per_entry(record["tags"], codes, n_entries)
    group_col = record["group"]
    first_group = group_col.cat.codes.to_numpy()[order[starts]]
    # The first row of the latest start: the maximum, then where it is, is a third of `argmax`'s time
    # on timestamps that mostly rise (each one a new maximum).
    last = int(np.argmax(ts == ts.max()))
    start, end = float(ts.min()), float(ts[last] + rt[last] / 1000.0)
    duration = max(end - start, 1e-9)
    rows: list[dict[str, Any]] = []
    response: dict[EntryKey, Distribution] = {}
    ttft: dict[EntryKey, Distribution] = {}
    itl: dict[EntryKey, Distribution] = {}
    tps: dict[EntryKey, Distribution] = {}
    any_stream = "ttft_ms" in record
    if any_stream:
        ttft_col = record["ttft_ms"].to_numpy(dtype=np.float64)
        has_stream = ~np.isnan(ttft_col)
        tokens_col = (
            record["tokens"].to_numpy(dtype=np.float64)
            if "tokens" in record
            else np.full(len(record), np.nan)
        )
    corrected: dict[EntryKey, Distribution] = {}
    intended = record["intended_start"].to_numpy(dtype=np.float64) if "intended_start" in record else None
    indices: dict[EntryKey, npt.NDArray[np.intp]] = {}
    for c, key in keys.items():
        idx = order[starts[c] : ends[c]]
        indices[key] = idx
        values = by_entry[starts[c] : ends[c]]
        n = len(values)
        response[key] = Distribution("exact", sorted_values=values, count=n)
        group = str(group_col.cat.categories[first_group[c]]) if first_group[c] >= 0 else ""
        rows.append(
            {
                "request_type": key[0],
                "name": key[1],
                "group": group or default_group(key[0]),
                "tags": ",".join(tags[c]),
                "measure": measure_of(key[1]),
                "source": "exact",
                "count": n,
                "failures": int(fails[c]),
                "mean": float(values.mean()),
                "median": quantile_sorted(values, 0.5),
                "min": float(values[0]),
                "max": float(values[-1]),
                "p95": quantile_sorted(values, 0.95),
                "p99": quantile_sorted(values, 0.99),
                "rps": n / duration,
            }
        )
        # TTFT, ITL and tokens/s come from the rows of whole streamed replies only: the `LLM` rows
        # derived from them (time to first token, inter-token latency, an older run's tokens/s) are
        # times of their own in the table above, never streams to derive from again.
        if intended is not None:
            planned = intended[idx]
            on_plan = ~np.isnan(planned)
            if on_plan.any():
                late = (ts[idx][on_plan] - planned[on_plan]) * 1000.0 + rt[idx][on_plan]
                corrected[key] = Distribution("exact", sorted_values=np.sort(late), count=len(late))
        if any_stream and key[0] != DERIVED_TYPE:
            sidx = idx[has_stream[idx]]
            if len(sidx):
                t = ttft_col[sidx]
                ttft[key] = Distribution("exact", sorted_values=np.sort(t), count=len(t))
                tok = tokens_col[sidx]
                total = rt[sidx]
                multi = tok > 1
                if multi.any():
                    per_token = (total[multi] - t[multi]) / (tok[multi] - 1)
                    itl[key] = Distribution("exact", sorted_values=np.sort(per_token), count=len(per_token))
                pos = (tok > 0) & (total > 0)
                if pos.any():
                    rate = tok[pos] / (total[pos] / 1000.0)
                    tps[key] = Distribution("exact", sorted_values=np.sort(rate), count=len(rate))
    return RunStats(
        entries=_entries_frame(rows),
        response=response,
        ttft=ttft,
        itl=itl,
        tokens_per_s=tps,
        percentile_source="exact",
        total_count=len(record),
        total_failures=int(len(record) - ok.sum()),
        duration_s=duration,
        timeline=pd.DataFrame(),
        record=record if keep_record else None,
        indices=indices if keep_record else {},
        corrected=corrected,
    )


def _entry_codes(
    record: pd.DataFrame,
) -> tuple[npt.NDArray[np.signedinteger[Any]], dict[int, EntryKey], npt.NDArray[np.intp]]:
    """Each row's entry as one small integer (the two categorical codes combined), the (request
    type, name) of each code that occurs, in code order, and the rows of each code up to the last that
    occurs."""
    rt = record["request_type"].astype("category")
    nm = record["name"].astype("category")
    n_names = max(len(nm.cat.categories), 1)
    n_codes = max(len(rt.cat.categories), 1) * n_names
    # Sixteen-bit codes where they fit: numpy's stable argsort sorts them by radix, in linear time.
    small = np.int16 if n_codes < np.iinfo(np.int16).max else np.int32 if n_codes < 2**31 else np.intp
    # Built in place: one array of the record's length, not one per operation.
    codes: npt.NDArray[np.signedinteger[Any]] = rt.cat.codes.to_numpy().astype(small)
    codes *= small(n_names)
    codes += nm.cat.codes.to_numpy()
    counts = np.bincount(codes)
    present = np.flatnonzero(counts)
    keys = {
        int(c): (str(rt.cat.categories[int(c) // n_names]), str(nm.cat.categories[int(c) % n_names]))
        for c in present
    }
    return codes, keys, counts


def _labels_per_entry(
    col: pd.Series, codes: npt.NDArray[np.signedinteger[Any]], n_entries: int
) -> list[list[str]]:
    """The distinct comma-separated labels (tags) among each entry's rows, sorted; from one count of
    (entry, label) code pairs, never a string per row."""
    categories = col.cat.categories
    n_labels = len(categories)
    if not n_labels:
        return [[] for _ in range(n_entries)]
    if n_labels == 1 and not bool(col.isna().any()):
        # One label on every row (a run without tags): no count needed.
        only = sorted({t.strip() for t in str(categories[0]).split(",") if t.strip()})
        return [only] * n_entries
    wide = np.int32 if n_entries * n_labels < np.iinfo(np.int32).max else np.intp
    labels = col.cat.codes.to_numpy()
    known = labels >= 0
    entry_codes: npt.NDArray[np.signedinteger[Any]] = codes.astype(wide)
    pairs = entry_codes * n_labels + labels
    if not bool(known.all()):
        pairs = pairs[known]
    seen = np.bincount(pairs, minlength=n_entries * n_labels).reshape(n_entries, n_labels)
    out = []
    for e in range(n_entries):
        values = [str(categories[int(c)]) for c in np.flatnonzero(seen[e])]
        out.append(sorted({t.strip() for v in values for t in v.split(",") if t.strip()}))
    return out


def _gather(values: FloatArray, order: npt.NDArray[np.intp]) -> FloatArray:
    """`values[order]`, its halves on two threads when there are cores for them: numpy releases the GIL
    while it gathers, and ten million rows scattered over the entries take 140 ms on one core."""
    n = len(order)
    if n < 1_000_000 or (os.cpu_count() or 1) < 2:
        return values[order]
    out = np.empty(n, dtype=values.dtype)
    half = n // 2

    def gather(part: slice) -> None:
        np.take(values, order[part], out=out[part])

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(gather, (slice(0, half), slice(half, n))))
    return out


def _sort_segments(values: FloatArray, starts: npt.NDArray[np.intp], ends: npt.NDArray[np.intp]) -> None:
    """Sort each `values[start:end]` in place, the largest first, on up to as many threads as there are
    cores: numpy releases the GIL while it sorts."""
    sizes = ends - starts
    segments = [values[starts[i] : ends[i]] for i in np.argsort(-sizes, kind="stable") if sizes[i] > 1]
    workers = min(len(segments), os.cpu_count() or 1, 4)
    if workers <= 1 or len(values) < 100_000:
        for seg in segments:
            seg.sort()
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(np.ndarray.sort, segments))


def _from_locust_json(entries: Iterable[Mapping[str, Any]]) -> RunStats:
    rows: list[dict[str, Any]] = []
    response: dict[EntryKey, Distribution] = {}
    special: dict[str, dict[EntryKey, Distribution]] = {"ttft": {}, "itl": {}, "tokens_per_s": {}}
    starts, ends = [], []
    total = fails_total = 0
    for e in entries:
        key = (str(e["method"]), str(e["name"]))
        hist: Mapping[int, int] = e["response_times"]
        values = np.array(sorted(hist), dtype=np.float64)
        counts = np.array([hist[int(v)] for v in values], dtype=np.int64)
        n = int(e["num_requests"])
        fails = int(e["num_failures"])
        dist = Distribution("histogram", bucket_values=values, bucket_counts=counts, count=int(counts.sum()))
        response[key] = dist
        start = float(e.get("start_time") or 0) or None
        last = e.get("last_request_timestamp")
        if start and last:
            starts.append(start)
            ends.append(float(last))
        span = (float(last) - start) if (start and last and float(last) > start) else None
        m = measure_of(key[1])
        if m in special:
            special[m][key] = dist
        mn = e.get("min_response_time")
        rows.append(
            {
                "request_type": key[0],
                "name": key[1],
                "group": default_group(key[0]),
                "tags": "",
                "measure": m,
                "source": "histogram",
                "count": n,
                "failures": fails,
                "mean": float(e["total_response_time"]) / n if n else math.nan,
                "median": dist.quantile(0.5) if dist.count else math.nan,
                "min": float(mn) if mn is not None else math.nan,
                "max": float(e["max_response_time"]),
                "p95": dist.quantile(0.95) if dist.count else math.nan,
                "p99": dist.quantile(0.99) if dist.count else math.nan,
                "rps": n / span if span else math.nan,
            }
        )
        total += n
        fails_total += fails
    duration = (max(ends) - min(starts)) if starts else None
    return RunStats(
        entries=_entries_frame(rows),
        response=response,
        ttft=special["ttft"],
        itl=special["itl"],
        tokens_per_s=special["tokens_per_s"],
        percentile_source="histogram",
        total_count=total,
        total_failures=fails_total,
        duration_s=duration,
        timeline=pd.DataFrame(),
    )


_PCOL = re.compile(r"^p(\d+(?:\.\d+)?)$")


def _from_stats_csv(stats: pd.DataFrame) -> RunStats:
    rows: list[dict[str, Any]] = []
    response: dict[EntryKey, Distribution] = {}
    special: dict[str, dict[EntryKey, Distribution]] = {"ttft": {}, "itl": {}, "tokens_per_s": {}}
    pcols = [(c, float(m.group(1)) / 100) for c in stats.columns if (m := _PCOL.match(str(c)))]
    total = fails_total = 0
    for rec in stats.to_dict("records"):
        key = (str(rec["request_type"]), str(rec["name"]))
        n = int(rec["count"])
        percentiles = {q: float(rec[c]) for c, q in pcols if not math.isnan(float(rec[c]))}
        if not math.isnan(float(rec["median"])):
            percentiles.setdefault(0.5, float(rec["median"]))
        dist = Distribution("csv", percentiles=percentiles, count=n)
        if key == ("", "Aggregated") or (key[1] == "Aggregated" and key[0] in ("", "nan")):
            total, fails_total = n, int(rec["failures"])
            continue
        response[key] = dist
        measure = measure_of(key[1])
        if measure in special:
            special[measure][key] = dist
        rows.append(
            {
                "request_type": key[0],
                "name": key[1],
                "group": default_group(key[0]),
                "tags": "",
                "measure": measure,
                "source": "csv",
                "count": n,
                "failures": int(rec["failures"]),
                "mean": float(rec["mean"]),
                "median": float(rec["median"]),
                "min": float(rec["min"]),
                "max": float(rec["max"]),
                "p95": percentiles.get(0.95, math.nan),
                "p99": percentiles.get(0.99, math.nan),
                "rps": float(rec["rps"]),
            }
        )
    if not total and rows:
        total = sum(int(r["count"]) for r in rows)
        fails_total = sum(int(r["failures"]) for r in rows)
    return RunStats(
        entries=_entries_frame(rows),
        response=response,
        ttft=special["ttft"],
        itl=special["itl"],
        tokens_per_s=special["tokens_per_s"],
        percentile_source="csv",
        total_count=total,
        total_failures=fails_total,
        duration_s=None,
        timeline=pd.DataFrame(),
    )


def _from_benchmarks(benchmarks: pd.DataFrame) -> RunStats:
    """Each pytest-benchmark result is an entry of request type BENCH; seconds become milliseconds."""
    rows: list[dict[str, Any]] = []
    response: dict[EntryKey, Distribution] = {}
    for b in benchmarks.to_dict("records"):
        key = ("BENCH", str(b["name"]))
        rounds = 0 if math.isnan(b["rounds"]) else int(b["rounds"])
        failed = int(b["failed_rounds"])
        data = b["data"]
        if data:
            values = np.sort(np.asarray(data, dtype=np.float64) * 1000.0)
            dist = Distribution("exact", sorted_values=values, count=len(values))
        elif rounds:
            pct = {0.0: b["min"] * 1000.0, 1.0: b["max"] * 1000.0}
            if not math.isnan(b["median"]):
                pct[0.5] = b["median"] * 1000.0
            dist = Distribution("benchmark", percentiles=pct, count=rounds)
        else:
            dist = Distribution("benchmark", count=0)
        response[key] = dist
        mean = b["mean"] * 1000.0
        rows.append(
            {
                "request_type": "BENCH",
                "name": key[1],
                "group": str(b["group"]),
                "tags": "",
                "measure": "response_time",
                "source": "benchmark",
                "count": max(rounds, dist.count) + failed,
                "failures": failed,
                "mean": mean,
                "median": b["median"] * 1000.0,
                "min": b["min"] * 1000.0,
                "max": b["max"] * 1000.0,
                "p95": dist.quantile(0.95) if dist.sorted_values is not None else math.nan,
                "p99": dist.quantile(0.99) if dist.sorted_values is not None else math.nan,
                "rps": 1000.0 / mean if mean > 0 else math.nan,
            }
        )
    return RunStats(
        entries=_entries_frame(rows),
        response=response,
        ttft={},
        itl={},
        tokens_per_s={},
        percentile_source="benchmark",
        total_count=0,
        total_failures=0,
        duration_s=None,
        timeline=pd.DataFrame(),
    )


def _timeline(run: RunData, st: RunStats) -> pd.DataFrame:
    """Per second: requests/s, failures/s, users, p50 and p95 (for charts)."""
    users = None
    if run.history is not None and len(run.history):
        agg = run.history[run.history["name"] == "Aggregated"]
        users = agg[["timestamp", "users"]].drop_duplicates("timestamp").set_index("timestamp")["users"]
    if st.record is not None and len(st.record):
        rec = st.record
        stamps = rec["timestamp"].to_numpy(dtype=np.float64)
        ok = rec["success"].to_numpy(dtype=bool)
        first = math.floor(float(stamps.min()))
        # One bin per second, or wider ones so a run never needs more than TIMELINE_BINS of them (a
        # stray timestamp far from the others must not cost an array per second in between).
        width = max(1, math.ceil((float(stamps.max()) - first + 1) / TIMELINE_BINS))
        sec = ((stamps - first) // width).astype(np.int64)
        counts = np.bincount(sec)
        fails = np.bincount(sec[~ok], minlength=len(counts))
        # Per-second percentiles for the chart: from at most TIMELINE_SAMPLES requests (a seeded random
        # subsample of a bigger record), so a chart never costs a sort of ten million rows.
        pick = np.arange(len(sec))
        if len(pick) > TIMELINE_SAMPLES:
            pick = np.sort(np.random.default_rng(7).choice(len(sec), TIMELINE_SAMPLES, replace=False))
        s_sec = sec[pick]
        s_rt = rec["response_time_ms"].to_numpy(dtype=np.float64)[pick]
        order = np.lexsort((s_rt, s_sec))
        sec_s, rt_s = s_sec[order], s_rt[order]
        uniq, start_idx, n_per = np.unique(sec_s, return_index=True, return_counts=True)
        p50 = np.full(len(counts), np.nan)
        p95 = np.full(len(counts), np.nan)
        p50[uniq] = rt_s[start_idx + np.ceil(0.5 * (n_per - 1)).astype(np.int64)]
        p95[uniq] = rt_s[start_idx + np.ceil(0.95 * (n_per - 1)).astype(np.int64)]
        present = counts > 0
        frame = pd.DataFrame(
            {
                "timestamp": (first + width * np.arange(len(counts)))[present].astype(np.float64),
                "rps": counts[present].astype(np.float64) / width,
                "fail_rps": fails[present].astype(np.float64) / width,
                "p50": p50[present],
                "p95": p95[present],
            }
        )
        # The first and last seconds are partial; drop them when there is enough to show.
        if len(frame) > 4:
            frame = frame.iloc[1:-1]
        if users is not None:
            frame["users"] = users.reindex(frame["timestamp"].to_numpy(), method="ffill").to_numpy()
        return frame.reset_index(drop=True)
    if run.history is not None and len(run.history):
        agg = run.history[run.history["name"] == "Aggregated"].drop_duplicates("timestamp")
        cols = {"timestamp": "timestamp", "rps": "rps", "fail_rps": "fail_rps", "users": "users"}
        frame = agg[list(cols)].rename(columns=cols).copy()
        for col in ("p50", "p95"):
            frame[col] = agg.get(col, np.nan)
        return frame.reset_index(drop=True)
    return pd.DataFrame()


def pooled(dists: Iterable[Distribution]) -> Distribution | None:
    """One distribution of several entries' values (exact and histogram sources only)."""
    ds = [d for d in dists if d.count]
    if not ds:
        return None
    if all(d.sorted_values is not None for d in ds):
        values = np.sort(np.concatenate([d.sorted_values for d in ds if d.sorted_values is not None]))
        return Distribution("exact", sorted_values=values, count=len(values))
    if all(d.bucket_values is not None for d in ds):
        merged: dict[float, int] = {}
        for d in ds:
            assert d.bucket_values is not None and d.bucket_counts is not None
            for v, c in zip(d.bucket_values.tolist(), d.bucket_counts.tolist(), strict=True):
                merged[v] = merged.get(v, 0) + int(c)
        values = np.array(sorted(merged), dtype=np.float64)
        counts = np.array([merged[v] for v in values.tolist()], dtype=np.int64)
        return Distribution("histogram", bucket_values=values, bucket_counts=counts, count=int(counts.sum()))
    return None


def dist_mean(d: Distribution) -> float | None:
    if d.count == 0:
        return None
    if d.sorted_values is not None:
        return float(d.sorted_values.mean())
    if d.bucket_values is not None and d.bucket_counts is not None:
        return float((d.bucket_values * d.bucket_counts).sum() / d.bucket_counts.sum())
    return None
