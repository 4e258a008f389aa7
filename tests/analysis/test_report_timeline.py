"""The per-second series the HTML report draws: every second of the run has a value, from run.json's
start to its end, and a second without a request is a zero, never a line drawn across it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis import compute_stats, load_run
from analysis._timeseries import error_kind, timeline
from tests.analysis.runs import START, Entry, record_frame, write_record, write_run_json


@pytest.fixture
def run_with_a_stall(tmp_path: Path) -> Path:
    """20 requests/s for 20 s, none from 5 s to 9 s, and run.json saying the run lasted 20.4 s."""
    frame = record_frame([Entry("GET", "/health", np.full(400, 10.0), failures=3)], duration_s=20.0)
    since = frame["timestamp"] - START
    frame = frame[(since < 5.0) | (since >= 9.0)].reset_index(drop=True)
    frame.loc[frame.index[-1], "response_time_ms"] = 300.0  # one slow request in the last second
    write_record(tmp_path, frame)
    write_run_json(tmp_path, started_at="2026-09-21T14:13:20+00:00", ended_at="2026-09-21T14:13:40.400+00:00")
    return tmp_path


def test_idle_seconds_are_zeros_and_the_series_span_the_whole_run(run_with_a_stall: Path) -> None:
    run = load_run(run_with_a_stall)
    tl = timeline(run, compute_stats(run))
    assert tl is not None and tl.source == "record"
    assert tl.seconds.tolist() == [float(s) for s in range(21)]  # 20.4 s: 21 bins, the last partial
    assert tl.rps[5:9].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert tl.rps[:5].tolist() == [20.0] * 5 and tl.rps[9:20].tolist() == [20.0] * 11
    assert tl.rps[20] == 0.0  # the run went on for 0.4 s after the last request started
    assert tl.fail_rps[0] == 3.0 and tl.fail_rps[1:].sum() == 0.0
    for name in ("p50", "p95", "p99", "max"):
        assert np.isnan(tl.percentiles[name][5:9]).all(), name  # no request: no percentile, a gap
    assert tl.percentiles["max"][19] == 300.0 and tl.percentiles["p50"][19] == 10.0
    assert tl.percentiles["p99"][19] == 300.0  # 20 requests: p99 is the slowest observed
    assert list(tl.errors) == ["HTTPError('500 Server Error')"]


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("HTTPError('500 Server Error')", "HTTPError('500 Server Error')"),
        ("404 Client Error for url: /api/evidence/12345", "404 Client Error for url: /api/evidence/#"),
        ("object 3f2a9c1e-77aa-4b1c-9d2e-0a1b2c3d4e5f missing", "object # missing"),
        ("", "unknown error"),
    ],
)
def test_one_cause_is_one_kind_of_error(message: str, kind: str) -> None:
    assert error_kind(message) == kind


def test_a_subsample_never_hides_the_slowest_request() -> None:
    from analysis._timeseries import bin_quantiles

    rng = np.random.default_rng(3)
    index = rng.integers(0, 10, 50_000).astype(np.int64)
    values = rng.uniform(1.0, 100.0, 50_000)
    values[12_345] = 9_999.0
    p50, top = bin_quantiles(index, values, 10, [0.5, 1.0], max_samples=1_000)
    assert top[index[12_345]] == 9_999.0
    assert top.tolist() == [float(values[index == b].max()) for b in range(10)]
    assert np.all((p50 > 30.0) & (p50 < 70.0))  # the median of a uniform 1..100, from the subsample
