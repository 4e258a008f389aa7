"""`CGPT_DELAY_MEDIAN_MS` and `CGPT_DELAY_SIGMA` give the backend's latency a known lognormal shape:
the median of many requests sits near the setting, and their spread is the setting's, not a fixed
wait's. Bounds are generous: a shared machine only adds time, and 60 requests take about 3 s."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest

from tests.backend_process import Backend, run_backend

MEDIAN_MS, SIGMA = 40.0, 0.5


@pytest.fixture(scope="module")
def delayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    settings = {
        "CGPT_DELAY_MEDIAN_MS": str(MEDIAN_MS),
        "CGPT_DELAY_SIGMA": str(SIGMA),
        "CGPT_DELAY_SEED": "3",
    }
    with run_backend(tmp_path_factory.mktemp("delayed"), settings=settings) as b:
        yield b


def latencies_ms(url: str, n: int) -> np.ndarray:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as resp:
            assert resp.status == 200
            resp.read()
        times.append((time.perf_counter() - started) * 1000)
    return np.array(times)


def test_requests_wait_the_set_lognormal_delay(delayed: Backend) -> None:
    ms = latencies_ms(delayed.url + "/health", 60)
    # lognormal(40 ms, 0.5): a sample median of 60 is within 25% of 40 ms nineteen times in twenty.
    assert 0.7 * MEDIAN_MS < float(np.median(ms)) < 2 * MEDIAN_MS + 50
    # Its p90 / p10 is exp(2.56 * 0.5) = 3.6; a fixed wait's would be near 1.
    p10, p90 = np.percentile(ms, [10, 90])
    assert p90 / p10 > 2.0
